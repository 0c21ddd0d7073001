"""Tests of cnnbias.theory.theory3.min_norm (closed forms of App. 9.6, 9.10.6, 9.4.1 of Theory III)."""

import math

import pytest
import torch
from cnnbias.theory.theory3 import min_norm as M


def _problem(R=3, n=5, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(R, n, d, generator=g, dtype=torch.float64),
            torch.randn(R, n, generator=g, dtype=torch.float64), g)


def test_min_norm_solution_is_pinv_and_interpolates():
    X, y, _ = _problem()
    w = M.min_norm_solution(X, y)
    ref = (torch.linalg.pinv(X) @ y[..., None])[..., 0]
    assert torch.allclose(w, ref, atol=1e-12)
    assert torch.allclose((X @ w[..., None])[..., 0], y, atol=1e-12)
    # explicit formula of Lemma 3
    ref2 = (X.transpose(-1, -2) @ torch.linalg.solve(X @ X.transpose(-1, -2), y[..., None]))[..., 0]
    assert torch.allclose(w, ref2, atol=1e-10)


def test_min_norm_is_smallest_among_interpolants():
    X, y, g = _problem()
    w = M.min_norm_solution(X, y)
    Pn = M.null_space_projector(X)
    for _ in range(5):
        z = (Pn @ torch.randn(3, 12, 1, generator=g, dtype=torch.float64))[..., 0]
        other = w + z
        assert torch.allclose((X @ other[..., None])[..., 0], y, atol=1e-10)
        assert bool((torch.linalg.vector_norm(other, dim=-1) >= torch.linalg.vector_norm(w, dim=-1)).all())


def test_projectors():
    X, _, _ = _problem()
    P = M.row_space_projector(X)
    assert torch.allclose(P @ P, P, atol=1e-12)
    assert torch.allclose(P, P.transpose(-1, -2), atol=1e-12)
    assert torch.allclose(torch.diagonal(P, dim1=-2, dim2=-1).sum(-1), torch.full((3,), 5.0, dtype=torch.float64))
    assert torch.allclose(X @ M.null_space_projector(X), torch.zeros_like(X), atol=1e-12)


def test_gd_closed_form_matches_iteration_and_offset_limit():
    X, y, g = _problem()
    n = X.shape[1]
    w0 = torch.randn(3, 12, generator=g, dtype=torch.float64)
    eta = 0.05
    w = w0.clone()
    for _ in range(37):
        w = w - eta * (X.transpose(-1, -2) @ ((X @ w[..., None])[..., 0] - y)[..., None])[..., 0] / n
    assert torch.allclose(M.gd_closed_form(X, y, eta, 37, w0), w, atol=1e-10)
    assert torch.allclose(M.gd_closed_form(X, y, eta, 100000, w0), M.offset_limit(X, y, w0), atol=1e-9)


def test_ridge_solution_and_limit():
    X, y, _ = _problem()
    n, d = X.shape[1], X.shape[2]
    lam = 0.3
    ref = torch.linalg.solve(X.transpose(-1, -2) @ X / n + lam * torch.eye(d, dtype=torch.float64),
                             (X.transpose(-1, -2) @ y[..., None])[..., 0:1] / n)[..., 0]
    assert torch.allclose(M.ridge_solution(X, y, lam), ref, atol=1e-10)
    assert torch.allclose(M.ridge_solution(X, y, 1e-12), M.min_norm_solution(X, y), atol=1e-8)


def test_matching_ridge_lambda_recovers_ridge():
    X, y, _ = _problem()
    w = M.ridge_solution(X, y, 0.02)
    lam, dist = M.matching_ridge_lambda(X, y, w)
    assert torch.allclose(lam, torch.full_like(lam, 0.02), rtol=1e-5)
    assert float(dist.max()) < 1e-8


def test_matching_ridge_lambda_edge_raises():
    X, y, _ = _problem()
    w = M.min_norm_solution(X, y)
    with pytest.raises(ValueError, match="edge"):
        M.matching_ridge_lambda(X, y, w, lam_min=1e-3)


def test_filters():
    s = torch.tensor([0.1, 1.0], dtype=torch.float64)
    assert torch.allclose(M.gd_filter(s, 0.5, 2), 1 - (1 - 0.5 * s) ** 2)
    assert torch.allclose(M.ridge_filter(s, 1.0), s / (s + 1))


def test_worst_case_closed_forms_against_pga():
    g = torch.Generator().manual_seed(3)
    R, d, rho = 6, 7, 0.4
    w = torch.randn(R, d, generator=g, dtype=torch.float64)
    x = torch.randn(R, d, generator=g, dtype=torch.float64)
    y = torch.randn(R, generator=g, dtype=torch.float64)
    nw = torch.linalg.vector_norm(w, dim=-1)
    val, u = M.pga_worst_perturbation(lambda u: (y - ((w + u) * x).sum(-1)) ** 2, (R, d), rho * nw, g, steps=300)
    assert torch.allclose(val, M.robust_square_loss(w, x, y, rho), rtol=1e-8)
    assert bool((torch.linalg.vector_norm(u, dim=-1) <= rho * nw * (1 + 1e-12)).all())
    lab = torch.sign(y)
    val, _ = M.pga_worst_perturbation(lambda u: -(lab * ((w + u) * x).sum(-1)), (R, d), rho * nw, g, steps=300)
    assert torch.allclose(-val, M.worst_margin_weights(w, x, lab, rho), rtol=1e-8)
    val, _ = M.pga_worst_perturbation(lambda u: -(lab * (w * (x + u)).sum(-1)), (R, d),
                                      torch.full((R,), rho, dtype=torch.float64), g, steps=300)
    assert torch.allclose(-val, M.worst_margin_inputs(w, x, lab, rho), rtol=1e-8)


def test_eq42_relations():
    g = torch.Generator().manual_seed(4)
    w = torch.randn(50, 5, generator=g, dtype=torch.float64)
    x = torch.randn(50, 5, generator=g, dtype=torch.float64)
    x = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    y = torch.randn(50, generator=g, dtype=torch.float64)
    rob, e42 = M.robust_square_loss(w, x, y, 0.3), M.eq42_loss(w, x, y, 0.3)
    assert bool((rob >= e42 - 1e-12).all()) and bool((rob <= 2 * e42 + 1e-12).all())
    yi = (w * x).sum(-1)
    assert torch.allclose(M.robust_square_loss(w, x, yi, 0.3), M.eq42_loss(w, x, yi, 0.3), atol=1e-14)
    assert torch.allclose(M.noisy_square_loss(w, x, y, 0.3), e42, atol=1e-12)
    # Monte Carlo of the noisy loss: dw ~ N(0, rho^2 ||w||^2 I)
    gg = torch.Generator().manual_seed(5)
    dw = torch.randn(200000, 5, generator=gg, dtype=torch.float64) * 0.3 * torch.linalg.vector_norm(w[0])
    mc = ((y[0] - ((w[0] + dw) * x[0]).sum(-1)) ** 2)
    assert abs(float(mc.mean()) - float(e42[0])) < 5 * float(mc.std()) / math.sqrt(len(mc))


def test_validation_errors():
    X, y, _ = _problem()
    with pytest.raises(ValueError, match="y must have shape"):
        M.min_norm_solution(X, y[..., :-1])
    with pytest.raises(ValueError, match="lam"):
        M.ridge_solution(X, y, 0.0)
    with pytest.raises(ValueError, match="lam"):
        M.ridge_solution(X, y, float("nan"))
    with pytest.raises(ValueError, match="eta"):
        M.gd_closed_form(X, y, -1.0, 3)
    with pytest.raises(ValueError, match="finite"):
        M.min_norm_solution(X * float("nan"), y)
    with pytest.raises(ValueError, match="rho"):
        M.robust_square_loss(y, y, y, -1.0)
    with pytest.raises(ValueError, match="same last dimension"):
        M.eq42_loss(torch.zeros(3, dtype=torch.float64), torch.zeros(4, dtype=torch.float64), torch.zeros(()), 0.1)
