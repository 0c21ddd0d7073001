"""Tests of cnnbias.experiments.maxpool: masked batching equals separate training; the fast responses."""

import torch
from cnnbias import config
from cnnbias.data import patterns as P
from cnnbias.experiments.maxpool import (
    compare_models,
    conv_forward,
    conv_init,
    svm_fit_predict,
)


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


def test_pattern_and_digit_runs_and_by_size():
    from cnnbias.experiments.maxpool import by_size, digit_runs, pattern_runs

    gens = config.generators("test_runs", {}, 4)
    train, test, pats = pattern_runs([5, 9], 2, n=3, d=6, m_test=7, gens=gens)
    assert [t[1].shape[0] for t in train] == [5, 9, 5, 9] and test[0][0].shape == (7, 3)
    assert pats.shape == (4, 6, 6)
    assert torch.allclose(pats[0] @ pats[0].T, torch.eye(6, dtype=pats.dtype), atol=1e-12)
    train_n, _, none = pattern_runs([5, 9], 2, n=3, d=6, noise=0.5, m_test=7, gens=config.generators("test_runs", {}, 4))
    assert none is None and train_n[1][0].shape == (9, 3, 6)
    # same draw of patterns and labels as the clean runs (the noise is drawn afterwards)
    assert torch.equal(train_n[1][1], train[1][1])
    dtr, dte, _ = digit_runs([4, 6], 1, n=4, m_test=5, gens=config.generators("test_digits", {}, 2))
    assert dtr[1][0].shape[:2] == (6, 4) and dte[0][0].shape[:2] == (5, 4)
    mu, sd = by_size(torch.tensor([1.0, 2.0, 3.0, 4.0]), 2, 2)
    assert mu.tolist() == [2.0, 3.0] and abs(sd[0] - 2**0.5) < 1e-12


def test_layerwise_starts_from_convpool_init_and_fits(monkeypatch):
    """'layerwise' uses the same initialization as 'convpool', leaves 'convpool' unchanged, fits clean data."""
    from cnnbias.experiments import maxpool as mp

    gens = config.generators("test_layerwise", {}, 2)
    train, test, pats = mp.pattern_runs([12, 20], 1, n=4, d=6, m_test=50, gens=gens)
    seen = []
    real_init = mp.conv_init
    monkeypatch.setattr(mp, "conv_init", lambda *a, **k: seen.append(real_init(*a, **k)) or seen[-1])
    kw = dict(channels=8, patterns=pats, epochs=4, loss_below=None)
    a = mp.compare_models(train, test, gens=config.generators("t_init", {}, 2), models=("convpool", "layerwise"), **kw)
    assert len(seen) == 2 and all(torch.equal(seen[0][k], seen[1][k]) for k in ("W", "a"))
    b = mp.compare_models(train, test, gens=config.generators("t_init", {}, 2), models=("convpool",), **kw)
    assert torch.equal(a["convpool"]["test_err"], b["convpool"]["test_err"])
    c = mp.compare_models(train, test, gens=config.generators("t_init", {}, 2), models=("layerwise",),
                          channels=8, patterns=pats, epochs=400)
    assert float(c["layerwise"]["train_err"].max()) == 0.0
