"""Tests of cnnbias.baselines: masked batching equals separate training; the fast responses."""

import torch
from cnnbias import config
from cnnbias.baselines import (
    compare_models,
    conv_forward,
    conv_init,
    conv_responses,
    svm_fit_predict,
)
from cnnbias.data import patterns as P
from cnnbias.models import maxpool


def test_conv_responses_dense_and_patterns_match_core():
    g = torch.Generator().manual_seed(0)
    O = P.orthogonal_patterns(6, 8, g)
    idx, _ = P.stack_runs(P.sample_D, [g, g], m=5, n=3, l=6)
    W = torch.randn(2, 4, 8, generator=g, dtype=torch.float64)
    X = P.embed(idx, O)
    ref = maxpool.responses(W, X=X)
    assert torch.allclose(conv_responses(W, X=X), ref, atol=1e-12)
    assert torch.allclose(conv_responses(W, idx=idx, patterns=O), ref, atol=1e-12)
    assert torch.allclose(conv_responses(W, idx=idx, patterns=O.expand(2, 6, 8)), ref, atol=1e-12)


def test_padding_does_not_change_a_run():
    """A run trained with a padded, masked batch equals the same run trained alone."""
    cfg = {"m": [6, 12]}
    gens = config.generators("test_baselines", cfg, 2)
    O = P.orthogonal_patterns(6, 6, torch.Generator().manual_seed(3))
    data = [P.sample_D(m, 3, 6, torch.Generator().manual_seed(10 + m)) for m in (6, 12)]
    test = [P.sample_D(50, 3, 6, torch.Generator().manual_seed(99))] * 2
    both = compare_models(data, test, channels=8, gens=gens, epochs=20, loss_below=None, patterns=O,
                          models=("convpool", "mlp"))
    alone = compare_models(data[:1], test[:1], channels=8, gens=config.generators("test_baselines", cfg, 1),
                           epochs=20, loss_below=None, patterns=O, models=("convpool", "mlp"))
    for k in ("convpool", "mlp"):
        assert abs(float(both[k]["test_err"][0] - alone[k]["test_err"][0])) < 1e-12
    p = conv_init(4, 6, gens)
    assert conv_forward(p, idx=data[0][0].unsqueeze(0).expand(2, 6, 3), patterns=O).shape == (2, 6)


def test_svm_separates_clean_data():
    g = torch.Generator().manual_seed(5)
    O = P.orthogonal_patterns(10, 10, g)
    idx, y = P.sample_D(60, 4, 10, g)
    X = P.embed(idx, O).reshape(60, -1).numpy()
    s_tr, _ = svm_fit_predict(X, y.numpy(), X[:3])
    assert ((s_tr * y.numpy()) > 0).all()
