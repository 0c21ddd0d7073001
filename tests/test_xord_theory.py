"""Tests for cnnbias.theory.xord: p+/p-, the k = 2 network, VC classes, Eq. 5-6 vs autograd, detection, training."""

import math

import pytest
import torch
from cnnbias.data import xord as X
from cnnbias.experiments import xord as XE
from cnnbias.models import maxpool
from cnnbias.theory import xord as T


@pytest.mark.parametrize("d", [4, 5, 6, 7])
def test_p_formulas_vs_enumeration(d):
    e = T.p_by_enumeration(d)
    assert abs(T.p_minus_paper(d) - e["minus"]) < 1e-12
    assert abs(T.p_plus_uniform_positive(d) - e["plus"]) < 1e-12
    # the paper's p+ is P[all four patterns] under the uniform law on all of {+-1}^(2d)
    assert abs(T.p_plus_paper(d) - e["all"]) < 1e-12
    assert T.p_plus_paper(d) < e["plus"]


def test_k2_network_realizes_fstar_exhaustively():
    W = T.k2_network()
    for d in (4, 5, 6):
        idx = X.all_inputs(d)
        out = maxpool.forward_fixed(W, X=X.to_dense(idx)[None])
        assert torch.equal(torch.sign(out[0]), X.fstar(idx))
    assert bool(T.realizes_fstar(W)[0])
    # a perturbation that drops the x3 detector no longer realizes f*
    W2 = W.clone()
    W2[0, 1] = torch.tensor([3.0, 3.0])
    assert not bool(T.realizes_fstar(W2)[0])


def test_network_on_sets_equals_dense_forward():
    g = torch.Generator().manual_seed(3)
    W = torch.randn(5, 6, 2, generator=g, dtype=torch.float64)
    idx = X.all_inputs(4)
    dense = maxpool.forward_fixed(W, X=X.to_dense(idx)[None].expand(5, -1, -1, -1))
    sets = T.network_on_sets(W, X.pattern_set(idx))
    assert torch.allclose(dense, sets, atol=1e-12)
    pat = XE.forward_patterns(W, X.patterns(), idx[None].expand(5, -1, -1))
    assert torch.allclose(dense, pat, atol=1e-12)


def test_vc_classes():
    cls = T.vc_pattern_functions()
    assert cls.unique().numel() == 15
    g = torch.Generator().manual_seed(0)
    W = torch.randn(20, 8, 2, generator=g, dtype=torch.float64)
    out = maxpool.forward_fixed(W, X=X.to_dense(X.all_inputs(4))[None].expand(20, -1, -1, -1))
    for c in range(15):
        col = out[:, cls == c]
        assert torch.allclose(col, col[:, :1].expand_as(col))


def _autograd_step(W, eta, gamma, d=6):
    xp, xm = X.diverse_pair(d)
    Xd = X.to_dense(torch.stack([xp, xm]))[None].expand(W.shape[0], -1, -1, -1)
    y = torch.tensor([1.0, -1.0], dtype=torch.float64).expand(W.shape[0], 2)
    Wg = W.clone().requires_grad_(True)
    out = maxpool.forward_fixed(Wg, X=Xd)
    loss = XE.eq3_loss(out, y, gamma).sum()
    (grad,) = torch.autograd.grad(loss, Wg)
    return W - eta * grad


def test_eq56_matches_autograd():
    k, c_eta, gamma = 10, 0.1, 8.0
    eta = c_eta / k
    g = torch.Generator().manual_seed(5)
    W = T.sigma_g_max(c_eta, k) * torch.randn(4, 2 * k, 2, generator=g, dtype=torch.float64)
    Wa, We = W.clone(), W.clone()
    for _ in range(40):
        Wa = _autograd_step(Wa, eta, gamma)
        We = T.eq56_step(We, eta, gamma)
        assert torch.allclose(Wa, We, atol=1e-12)
    # and far from initialization, where the indicators switch off (loss at zero for x+)
    big = torch.zeros(1, 2 * k, 2, dtype=torch.float64)
    big[0, :k] = torch.tensor([2.0, 2.0])
    big[0, k:] = torch.tensor([0.3, -0.2])
    assert torch.allclose(_autograd_step(big, eta, gamma), T.eq56_step(big, eta, gamma), atol=1e-12)


def test_eq4_sets_and_sums():
    W = T.k2_network()
    s = T.eq4_sets(W)
    assert s["Wplus"].tolist() == [[0, 2]]
    assert s["Uplus"][0, 0].item() == 3 and s["Uplus"][0, 1].item() == 1
    assert set(s["Wminus"][0].tolist()) <= {1, 3}
    assert abs(T.S_plus(W).item() - 12.0) < 1e-12
    Xp, Yp = T.XY_plus(W)
    assert torch.allclose(Xp[0], torch.tensor([6.0, 0, 6.0, 0], dtype=torch.float64))
    assert torch.allclose(Yp[0], torch.tensor([0, 2.0, 0, 2.0], dtype=torch.float64))
    npos, nneg = T.diverse_outputs(W)
    assert abs(npos.item() - 8.0) < 1e-12 and abs(nneg.item() + 4.0) < 1e-12


def test_detection_counting():
    W = T.k2_network()
    assert torch.allclose(T.detection_scores(W)[0], torch.tensor([6.0, 2.0, 6.0, 2.0], dtype=torch.float64))
    assert T.n_detected(W, 1e-4).item() == 4
    assert T.n_detected(W, 3.0).item() == 2
    W2 = W.clone()
    W2[0, 3] = torch.tensor([-1.0, 1.0])  # both u's detect x4, none x2
    assert T.n_detected(W2, 1e-4).item() == 3
    cond = T.thm53_conditions(W2)
    assert bool(cond["d"][0]) and not bool(cond["c"][0]) and bool(cond["E"][0])
    mask = torch.tensor([[1.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    assert T.n_detected(W, 1e-4, mask).item() == 2
    with pytest.raises(ValueError, match="c_d"):
        T.n_detected(W, -1.0)


def test_theorem_quantities():
    assert math.floor(T.thm41_m2_lower(0.98, 0.98, 0.05)) == 129
    assert math.floor(T.thm41_m2_lower(0.92, 0.92, 0.16)) == 17
    assert T.thm41_delta_min(0.98, 0.98) <= 0.05
    assert T.thm41_delta_min(0.92, 0.92) <= 0.16
    assert T.alpha(120) > 1 and 0 < T.thm52_confidence(120, 1 / 410) < 0.5
    assert abs(T.thm53_fraction() - 0.6875) < 1e-15
    with pytest.raises(ValueError, match="k must"):
        T.alpha(64)


def test_exact_test_error():
    W = T.k2_network()
    assert T.test_error_exact(W, 4, 0.5, 0.9).item() == 0.0
    W2 = W.clone()
    W2[0, 1] = torch.tensor([3.0, 3.0])  # x3 not detected: points whose only positive pattern is x3 are missed
    err = T.test_error_exact(W2, 4, None, None).item()
    q = X.subset_distribution(4, 1)
    miss = X.SUBSETS[:, 2] & ~X.SUBSETS[:, 0]
    out = T.network_on_sets(W2, X.SUBSETS)[0]
    # missed positive sets: {x3} alone has score exactly 0 (counted 1/2), the others score < 0
    assert out[miss].max() <= 0 and (out[miss] == 0).sum() == 1
    w = torch.where(out[miss] == 0, 0.5, 1.0)
    assert abs(err - 0.5 * (q[miss] * w).sum().item()) < 1e-12


def test_training_small_batch_independent():
    g = [torch.Generator().manual_seed(s) for s in range(3)]
    data = [X.sample_xord(2, 2, 4, gg, 1.0, 1.0) for gg in g]
    idx = torch.stack([a for a, _ in data])
    y = torch.stack([b for _, b in data])
    W0, mask = XE.init_filters([2, 5, 5], [1e-3] * 3, g)
    lr = torch.tensor([0.01, 0.004, 0.004], dtype=torch.float64)
    res = XE.train_fixed_readout(W0, mask, X.patterns(), idx, y, lr, 5.0, 3000)
    res1 = XE.train_fixed_readout(W0[1:2, :, :], mask[1:2], X.patterns(), idx[1:2], y[1:2], lr[1:2], 5.0, 3000)
    assert torch.allclose(res.params["W"][1], res1.params["W"][0], atol=1e-12)
    assert (res.params["W"] * (1 - mask[..., None])).abs().max() == 0
    assert res.final_loss[1:].max() == 0.0  # k = 5 on diverse points reaches a global minimum


def test_set_compression_gives_same_iterates():
    g = [torch.Generator().manual_seed(10 + s) for s in range(3)]
    data = [X.sample_xord(6, 6, 4, gg, 0.5, 0.9) for gg in g]
    idx = torch.stack([a for a, _ in data])
    y = torch.stack([b for _, b in data])
    W0, mask = XE.init_filters([2, 3, 4], [1e-2] * 3, g)
    lr = torch.tensor([0.01, 0.007, 0.005], dtype=torch.float64)
    a = XE.train_fixed_readout(W0, mask, X.patterns(), idx, y, lr, 5.0, 60, patience=None)
    b = XE.train_xord_sets(W0, mask, idx, y, lr, 5.0, 60, patience=None)
    assert torch.allclose(a.params["W"], b.params["W"], atol=1e-12)
    assert torch.allclose(a.final_loss, b.final_loss, atol=1e-12)


def test_sweeps_float32_path_and_shapes():
    cfg = {"d": 4, "m": 2, "p_plus": 0.5, "p_minus": 0.9, "lr_c": 0.04, "sigma_g": 1e-3, "max_epochs": 50,
           "patience": 20}
    a = XE.xord_channel_sweep("t.sweep", cfg, [4, 8], [5.0], 2, groups=[[4], [8], []])
    b = XE.xord_channel_sweep("t.sweep", cfg, [4, 8], [5.0], 2, groups=[[4, 8]])
    assert a["test_error"].shape == (4,) and torch.allclose(a["test_error"], b["test_error"])
    ocfg = {"d1": 6, "m": 3, "lr_c": 0.2, "gamma": 1.0, "sigma_g": 1e-3, "max_epochs": 30, "patience": 20, "sizes": (2, 3),
            "n_test": 20}
    o = XE.obd_channel_sweep("t.obd", ocfg, [4], 2)
    assert o["n_detected"].shape == (2,) and (o["test_error"] <= 1).all()


def test_training_float32_on_cpu_matches_float64_roughly():
    g = [torch.Generator().manual_seed(s) for s in range(2)]
    data = [X.sample_xord(3, 3, 4, gg, 0.5, 0.9) for gg in g]
    idx = torch.stack([a for a, _ in data])
    y = torch.stack([b for _, b in data])
    W0, mask = XE.init_filters([3, 3], [1e-2] * 2, g)
    lr = torch.tensor([0.01, 0.01], dtype=torch.float64)
    a = XE.train_xord_sets(W0, mask, idx, y, lr, 5.0, 40, patience=None)
    b = XE.train_xord_sets(W0.float(), mask.float(), idx, y, lr, 5.0, 40, patience=None)
    assert b.params["W"].dtype == torch.float32
    assert torch.allclose(a.params["W"], b.params["W"].double(), atol=1e-5)
