"""Tests for cnnbias.models.linear: 1-Layer / Conv-k / FC-2 equivalence, closed form vs batched GD."""

import pytest
import torch
from cnnbias.data import positions as P
from cnnbias.experiments import convlin as CE
from cnnbias.models import linear as L
from cnnbias.theory import convlinear as C


def _g(i):
    return torch.Generator().manual_seed(i)


def test_conv_forward_matches_definition_and_effective_weight():
    R, d, k, m = 3, 11, 4, 6
    w1 = torch.randn(R, k, generator=_g(0), dtype=torch.float64)
    w2 = torch.randn(R, d, generator=_g(1), dtype=torch.float64)
    X = torch.randn(R, m, d, generator=_g(2), dtype=torch.float64)
    # literal double sum of the paper: f = sum_i w2_i sum_j w1_j x_{i+j-1}, out-of-range terms zero
    lit = torch.zeros(R, m, dtype=torch.float64)
    for i in range(d):
        for j in range(k):
            if i + j < d:
                lit += w2[:, i, None] * w1[:, j, None] * X[:, :, i + j]
    assert torch.allclose(L.conv_forward_dense(w1, w2, X), lit, atol=1e-12)
    weff = L.conv_effective_weight(w1, w2)
    assert torch.allclose(torch.einsum("rmd,rd->rm", X, weff), lit, atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_maps_between_one_layer_and_conv(k):
    R, d = 4, 12
    w = torch.randn(R, d, generator=_g(3), dtype=torch.float64)
    X = torch.randn(R, 7, d, generator=_g(4), dtype=torch.float64)
    f = torch.einsum("rmd,rd->rm", X, w)
    w1, w2 = L.linear_to_conv(w, k)  # paper: w1 = e_1, w2 = w
    assert torch.allclose(L.conv_forward_dense(w1, w2, X), f, atol=1e-12)
    filt = torch.randn(R, k, generator=_g(5), dtype=torch.float64) + 3.0  # first entry far from 0
    w1, w2 = L.linear_to_conv(w, k, filt)
    assert torch.allclose(w1, filt)
    assert torch.allclose(L.conv_forward_dense(w1, w2, X), f, atol=1e-9)


def test_fc2_effective_weight_and_sparse_scores():
    R, d = 2, 9
    t = P.task_3rd_ctrl(d)
    p = L.init_params("fc2", d, [_g(6), _g(7)])
    w = L.effective_weight("fc2", p)
    f_dense = torch.einsum("nd,rhd,rh->rn", t.dense(), p["W1"], p["w2"])
    assert torch.allclose(L.scores(w, t), f_dense, atol=1e-12)
    idx = torch.randint(0, t.N, (R, 5), generator=_g(8))
    assert torch.allclose(L.scores(w, t, idx), torch.gather(f_dense, 1, idx), atol=1e-12)


def test_ebar_ties_and_test_error():
    m = torch.tensor([[1.0, -1.0, 0.0, 2.0]], dtype=torch.float64)
    assert L.ebar(m).tolist() == [[0.0, 1.0, 0.5, 0.0]]
    t = P.task_cls(6)
    assert L.test_error(torch.ones(1, 6, dtype=torch.float64), t).item() == 0.0
    assert L.test_error(torch.zeros(1, 6, dtype=torch.float64), t).item() == 0.5


def test_init_is_per_run_reproducible():
    a = L.init_params("conv", 10, [_g(1), _g(2)], k=3)
    b = L.init_params("conv", 10, [_g(2)], k=3)
    assert torch.equal(a["w1"][1], b["w1"][0]) and torch.equal(a["w2"][1], b["w2"][0])
    assert a["w1"].abs().max() <= 3**-0.5 and a["w2"].abs().max() <= 10**-0.5


@pytest.mark.parametrize("name", ["cls", "1stctrl", "evenodd"])
def test_one_layer_closed_form_equals_batched_gd(name):
    d = 30
    t = P.make_task(name, d)
    sizes = [3, 10, 25, 40]
    idx, mask = P.sample_training_sets(t.N, sizes, [_g(10 + i) for i in range(4)])
    p = L.init_params("1layer", d, [_g(20 + i) for i in range(4)])
    res = CE.train_hinge("1layer", t, idx, mask, p, lr=0.5, max_epochs=5000)
    assert res.stop_reason == ["loss_below"] * 4
    w, ep = C.one_layer_onehot_closed_form(t, idx, mask, p["w"], 0.5)
    assert torch.allclose(w, res.params["w"], atol=1e-10)
    assert torch.equal(ep, res.epochs)


def test_hinge_training_fits_and_masks():
    d = 20
    t = P.task_3rd_ctrl(d)
    idx, mask = P.sample_training_sets(t.N, [4, 12], [_g(30), _g(31)])
    for model in L.MODELS:
        p = L.init_params(model, d, [_g(40), _g(41)], k=3)
        res = CE.train_hinge(model, t, idx, mask, p, lr=0.2, max_epochs=20000)
        assert res.stop_reason == ["loss_below"] * 2, model
        w = L.effective_weight(model, res.params)
        z = t.y[idx] * L.scores(w, t, idx)
        assert bool((z[mask > 0] >= 1 - 1e-12).all()), model
    with pytest.raises(ValueError, match="model"):
        L.effective_weight("mlp", {})
