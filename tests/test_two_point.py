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


def _naive_sets(w, allowed):
    """argmax over allowed pattern indices (first on ties) and whether it is positive, for one filter."""
    best, arg = -float("inf"), None
    for l in allowed:
        if float(w[l]) > best:
            best, arg = float(w[l]), l
    return arg, best > 0


def test_initial_set_sizes_naive():
    data, W0 = _setup(R=3, n=4, d=10, k=30, sigma=1.0, seed=30)
    sz = tp.initial_set_sizes(W0, data)
    k = 30
    for r in range(3):
        xp, xm = data.x_plus[r].tolist(), data.x_minus[r].tolist()
        not2 = sorted((set(xp) | set(xm)) - {1})
        not1 = sorted((set(xp) | set(xm)) - {0})
        spur = sorted(set(xp) & set(xm))
        Aw = Au = 0
        Wp = [0] * 10
        Um = [0] * 10
        Wpm = [0] * 10
        Upm = [0] * 10
        Aw2 = Au1 = 0
        for j in range(k):
            a, pa = _naive_sets(W0[r, j], not2)
            b, pb = _naive_sets(W0[r, j], not1)
            Aw += pa
            if pa:
                Wp[a] += 1
                if pb and b == 1:
                    Aw2 += 1
                    if a in spur:
                        Wpm[a] += 1
            c, pc = _naive_sets(W0[r, k + j], not1)
            e, pe = _naive_sets(W0[r, k + j], not2)
            Au += pc
            if pc:
                Um[c] += 1
                if pe and e == 0:
                    Au1 += 1
                    if c in spur:
                        Upm[c] += 1
        assert sz["A_w"][r] == Aw and sz["A_u"][r] == Au
        assert sz["A_w_W_minus2"][r] == Aw2 and sz["A_u_U_plus1"][r] == Au1
        assert sz["W_plus"][r].tolist() == Wp and sz["U_minus"][r].tolist() == Um
        assert sz["W_plus_W_minus2"][r].tolist() == Wpm and sz["U_plus1_U_minus"][r].tolist() == Upm
        assert sz["spurious"][r].nonzero().flatten().tolist() == spur


def test_lemma_f3_probability_monte_carlo():
    # q = P(p2 largest, p_i second and positive) among n + 1 i.i.d. Gaussians; Monte Carlo within 4 se
    n, N = 3, 200000
    g = torch.Generator().manual_seed(5)
    Z = torch.randn(N, n + 1, generator=g, dtype=torch.float64)  # column 0 = p2, column 1 = p_i
    top2 = Z.topk(2, dim=1).indices
    hit = (top2[:, 0] == 0) & (top2[:, 1] == 1) & (Z[:, 1] > 0)
    q = tp.lemma_f3_probability(n)
    se = (q * (1 - q) / N) ** 0.5
    assert abs(float(hit.double().mean()) - q) < 4 * se
    with pytest.raises(ValueError):
        tp.lemma_f3_probability(1)
