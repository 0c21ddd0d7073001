"""Tests for cnnbias.theory.convlinear: A_x, M_tr, Lemma 7 vs GD, Lemma 1 limits, Theorem 2."""

import pytest
import torch
from cnnbias.data import positions as P
from cnnbias.models import linear as L
from cnnbias.theory import convlinear as C


def _g(i):
    return torch.Generator().manual_seed(i)


def _setup(name="cls", d=16, k=4, sizes=(5, 9, 14)):
    t = P.make_task(name, d)
    idx, mask = P.sample_training_sets(t.N, list(sizes), [_g(i) for i in range(len(sizes))])
    return t, idx, mask, C.m_train(t, idx, k, mask)


def test_shift_matrix_and_bilinear_form():
    d, k = 9, 3
    x = torch.randn(d, generator=_g(1), dtype=torch.float64)
    A = C.shift_matrix(x, k)
    for i in range(d):
        for j in range(k):
            assert A[i, j] == (x[i + j] if i + j < d else 0.0)
    w1 = torch.randn(1, k, generator=_g(2), dtype=torch.float64)
    w2 = torch.randn(1, d, generator=_g(3), dtype=torch.float64)
    f = w1[0] @ A.T @ w2[0]
    assert torch.allclose(f, L.conv_forward_dense(w1, w2, x[None, None])[0, 0])


@pytest.mark.parametrize("name", ["cls", "3rdctrl"])
def test_m_train_is_mean_of_m_xy(name):
    t, idx, mask, M = _setup(name)
    X, y = t.dense()[idx], t.y[idx]
    dense = (C.m_xy(X, y, 4) * mask[..., None, None]).sum(1) / mask.sum(1)[:, None, None]
    assert torch.allclose(M, dense, atol=1e-14)
    # X-hinge training loss = -w1^T M^T w2 = mean of -y f(x)
    p = L.init_params("conv", 16, [_g(7), _g(8), _g(9)], k=4)
    loss = L.make_loss("conv", t, idx, mask, "xhinge")(p, None)
    assert torch.allclose(loss, -torch.einsum("rk,rdk,rd->r", p["w1"], M, p["w2"]), atol=1e-14)


@pytest.mark.parametrize("t_steps", [0, 1, 7, 60])
def test_lemma7_closed_form_matches_gd(t_steps):
    _t, _idx, _mask, M = _setup("3rdctrl")
    w1 = torch.randn(3, 4, generator=_g(11), dtype=torch.float64)
    w2 = torch.randn(3, 16, generator=_g(12), dtype=torch.float64)
    a1, a2, _ = C.xhinge_gd(M, w1, w2, 0.3, t_steps)
    b1, b2 = C.lemma7(M, w1, w2, 0.3, t_steps, scaled=False)
    scale = torch.cat([a1, a2], -1).norm(dim=-1, keepdim=True)
    assert float(((a1 - b1).abs() / scale).max()) < 1e-10
    assert float(((a2 - b2).abs() / scale).max()) < 1e-10
    # scaled form = plain form / (1 + alpha sigma_1)^t; normalised GD gives the same direction
    s1 = torch.linalg.svdvals(M)[:, :1]
    c1, c2 = C.lemma7(M, w1, w2, 0.3, t_steps, scaled=True)
    assert torch.allclose(c1 * (1 + 0.3 * s1) ** t_steps, b1, rtol=1e-10, atol=1e-12)
    assert torch.allclose(c2 * (1 + 0.3 * s1) ** t_steps, b2, rtol=1e-10, atol=1e-12)
    n1, n2, logs = C.xhinge_gd(M, w1, w2, 0.3, t_steps, normalize=True)
    assert torch.allclose(n1 * logs.exp()[:, None], a1, rtol=1e-9, atol=1e-12)
    assert torch.allclose(n2 * logs.exp()[:, None], a2, rtol=1e-9, atol=1e-12)


def test_engine_xhinge_gd_equals_closed_form():
    """The X-hinge loss through cnnbias.engine (autograd) follows Lemma 7 too."""
    from cnnbias.engine import StopRule, train

    t, idx, mask, M = _setup("cls")
    p = L.init_params("conv", 16, [_g(21), _g(22), _g(23)], k=4)
    res = train(
        L.make_loss("conv", t, idx, mask, "xhinge"), p, lr=0.1, stop=StopRule(max_epochs=40)
    )
    b1, b2 = C.lemma7(M, p["w1"], p["w2"], 0.1, 40, scaled=False)
    assert torch.allclose(res.params["w1"], b1, rtol=1e-9, atol=1e-12)
    assert torch.allclose(res.params["w2"], b2, rtol=1e-9, atol=1e-12)


def test_lemma1_limit_and_no_overflow():
    _t, _idx, _mask, M = _setup("cls", sizes=(8, 12, 15))
    w1 = torch.randn(3, 4, generator=_g(31), dtype=torch.float64)
    w2 = torch.zeros(3, 16, dtype=torch.float64)
    l1, l2, m = C.lemma1_limit(M, w1)
    assert m.tolist() == [1, 1, 1]
    for T in (20000, 200000):  # (1 + alpha sigma_1)^T overflows float64; the scaled form does not
        s1, s2 = C.lemma7(M, w1, w2, 0.5, T, scaled=True)
        assert torch.isfinite(s1).all()
        assert torch.allclose(2 * s1, l1, atol=1e-10) and torch.allclose(2 * s2, l2, atol=1e-10)


def test_thm2_repeated_top_singular_value():
    """Prop.-6-type set: M^T M = c I, m = k; the bound is lambda_min over the top singular subspace."""
    d, k = 30, 3
    t = P.task_cls(d)
    idx = torch.tensor([[4, 12, 20]])  # 0-based 4, 12, 20: >= k and 2k apart
    M = C.m_train(t, idx, k)
    marg, m = C.thm2_margins(M, t)
    assert m.item() == k
    # brute force the minimum over unit z in R^k: (V z)^T M_x^T (U z), U = M V / sigma1
    _U, S, V = C.svd(M)
    Z = torch.randn(4000, k, generator=_g(3), dtype=torch.float64)
    Z = Z / Z.norm(dim=-1, keepdim=True)
    v = Z @ V[0].T
    u = (M[0] @ v.T).T / S[0, 0]
    w = L.conv_effective_weight(v, u)
    vals = t.y * L.scores(w, t)  # [4000, N]
    assert bool((vals.min(0).values >= marg[0] - 1e-12).all())
    assert float((vals.min(0).values - marg[0]).max()) < 0.05 * float(marg.abs().max())
    # and the asymptotic margin for a given init is >= the bound
    w1 = torch.randn(1, k, generator=_g(4), dtype=torch.float64)
    F = C.asymptotic_margins(M, w1, t)
    l1, _, _ = C.lemma1_limit(M, w1)
    assert bool((F / l1.norm() ** 2 >= marg - 1e-12).all())


def test_thm2_unique_top_equals_asymptotic():
    t, _idx, _mask, M = _setup("1stctrl", d=20, sizes=(15, 25))
    e, m = C.thm2_error(M, t)
    assert m.tolist() == [1, 1]
    w1 = torch.randn(2, 4, generator=_g(5), dtype=torch.float64)
    assert torch.allclose(C.asymptotic_error(M, w1, t), e)
