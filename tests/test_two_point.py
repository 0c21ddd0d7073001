"""Tests for cnnbias.theory.two_point: GD on two points vs Lemma F.5 and autograd."""

import pytest
import torch
from cnnbias import engine
from cnnbias.models.maxpool import forward_fixed
from cnnbias.theory import psi
from cnnbias.theory import two_point as tp


def _setup(R=3, n=5, d=12, k=200, sigma=1e-9, seed=0):
    gens = [torch.Generator().manual_seed(seed + i) for i in range(R)]
    data = tp.sample_two_point(R, n, d, gens)
    W0 = torch.stack([sigma * torch.randn(2 * k, d, generator=g, dtype=torch.float64) for g in gens])
    return data, W0


def test_sample_two_point_structure():
    data, _ = _setup()
    assert torch.all(data.x_plus[:, 0] == 0) and torch.all(data.x_minus[:, 0] == 1)
    assert torch.equal(data.x_plus[:, 1:], data.x_minus[:, 1:])
    for r in range(3):
        assert len(set(data.x_plus[r].tolist())) == 5 and data.x_plus[r, 1:].min() >= 2


def test_one_step_matches_autograd():
    data, W0 = _setup(sigma=0.3, k=20)  # generic init, no special regime needed
    c = 0.05 * 20
    run = tp.gd_two_point(W0, data, c, 1, record=[1])
    W = W0.clone().requires_grad_()
    out = forward_fixed(W, idx=data.idx)
    loss = engine.hinge(data.y * out).mean(-1).sum()
    loss.backward()
    torch.testing.assert_close(run.history[1], W0 - (c / 20) * W.grad, rtol=0, atol=1e-14)


def test_lemma_f5_closed_forms():
    data, W0 = _setup()
    c = 0.0023 * 200
    run = tp.gd_two_point(W0, data, c, 400, record=True)
    tstar = run.first_margin()
    assert torch.all(tstar > 5)
    for t in range(1, int(tstar.min()) + 1):
        pred = tp.lemma_f5_predict(W0, data, c, t)
        assert float((pred - run.history[t]).abs().max()) < 1e-12, t
    # t* of App. F equals min(t+, t-) of the proof of Lemma F.6
    tpl, tmn, counts = tp.predicted_convergence(W0, data, c)
    assert torch.equal(tstar, torch.minimum(tpl, tmn))
    assert torch.all(counts.sum(1) == 400) and torch.all(run.converged)


def test_category_sizes_gamma():
    data, W0 = _setup(R=2, n=5, d=12, k=4000, seed=10)
    cat = tp.categories(W0, data)
    k = 4000
    g = tp.gamma(5)
    for q, lo, hi in ((2, 0, k), (6, k, 2 * k)):
        frac = (cat[:, lo:hi] == q).double().mean(1)
        se = (g * (1 - g) / k) ** 0.5
        assert torch.all((frac - g).abs() < 4 * se)


def test_psi_at_convergence():
    data, W0 = _setup(R=4, n=6, d=15, k=300, seed=20)
    c = 0.004 * 300
    run = tp.gd_two_point(W0, data, c, 2000)
    assert torch.all(run.converged)
    s = psi.pattern_statistics(data.idx, data.y, 15)
    cs = psi.c_star(run.W, s, 2, b=1.0)
    assert torch.all(cs <= (18 * c) ** 0.5)


def test_validation():
    data, W0 = _setup(R=1, k=4)
    with pytest.raises(ValueError):
        tp.gd_two_point(W0, data, 0.0, 10)
    with pytest.raises(ValueError):
        tp.lemma_f5_predict(W0, data, 0.1, 0)
    with pytest.raises(ValueError):
        tp.sample_two_point(1, 12, 12, [torch.Generator()])
