"""Minimum norm and implicit regularization of (S)GD on under-determined least squares
(:cite:`theory_iii`, App. 9.6, Lemmas 3-4, Theorem 4, Corollary 1; App. 9.10.6; App. 9.4.1 Eqs. 36-42).

Setting (App. 9.6).  ``X in R^{n x d}`` with ``d > n`` and full row rank, ``y in R^n``,
``L(w) = ||X w - y||^2 / (2n)`` (Eq. 49).  Every function accepts a leading batch of problems:
``X [..., n, d]``, ``y [..., n]``, ``w [..., d]``.

- :func:`min_norm_solution`: ``w_dagger = X^T (X X^T)^{-1} y`` (Lemma 3), computed through the SVD
  (the pseudoinverse ``X^+ y``, which is the same vector for full row rank and also defined otherwise).
- :func:`row_space_projector`, :func:`null_space_projector`: ``P_row = X^+ X`` and ``I - P_row``.
  Lemma 4: GD/SGD iterates from ``w_0 = 0`` stay in the row span, ``w_t = X^T alpha_t``.  From any
  ``w_0`` the null-space part never changes, so the limit is ``w_dagger + P_null w_0``
  (:func:`offset_limit`).
- :func:`ridge_solution`: the minimizer of ``L(w) + lam ||w||^2 / 2``,
  ``w_lam = X^T (X X^T + n lam I)^{-1} y``; as ``lam -> 0`` it tends to ``w_dagger`` (the definition
  ``A^+ = lim_{delta -> 0} A^T (A A^T + delta^2 I)^{-1}`` of App. 9.10.6, with ``delta^2 = n lam``).
- :func:`gd_closed_form`: the GD iterate after ``T`` steps of size ``eta`` from ``w_0``.  With the SVD
  ``X = U diag(sigma) V^T`` and ``s_i = sigma_i^2 / n`` (the eigenvalues of ``X X^T / n``), the row-space
  coordinates of ``w_T - w_0`` are those of ``w_dagger - P_row w_0`` multiplied by the *spectral filter*
  ``1 - (1 - eta s_i)^T``; ridge applies ``s_i / (s_i + lam)``.  Both filters pass ``s >> 1/(eta T)``
  (resp. ``s >> lam``) and cut ``s << 1/(eta T)``, hence ``lam ~ 1/(eta T)`` (early stopping as
  iterative regularization, :cite:`theory_iii` ref. [25]).  :func:`matching_ridge_lambda` finds the
  ``lam`` whose ridge solution is closest to a given ``w``.

Robust optimization (App. 9.4.1).  For one example ``(x, y)`` and weight perturbations
``||dw|| <= rho ||w||``:

- the margin ``y (w + dw) . x`` is smallest at ``dw = -rho ||w|| y x / ||x||`` (Eq. 36), where it equals
  ``y w . x - rho ||w|| ||x||`` (:func:`worst_margin_weights`); for input perturbations ``||dx|| <= eps``
  the worst margin is ``y w . x - eps ||w||`` (:func:`worst_margin_inputs`);
- the worst square loss is ``max (y - (w + dw) . x)^2 = (|y - w . x| + rho ||w|| ||x||)^2``
  (:func:`robust_square_loss`), a regularized loss.  Eq. 42 writes ``(y - w . x)^2 + rho^2 ||w||^2``
  (:func:`eq42_loss`): for ``||x|| = 1`` it equals the worst case where the residual is zero (at every
  interpolating ``w``), is a lower bound elsewhere, and ``eq42 <= robust <= 2 eq42``
  (``(a + b)^2 <= 2 a^2 + 2 b^2``); it is exactly the *mean* loss under a random perturbation with
  ``E[dw dw^T] = rho^2 ||w||^2 I``.
- :func:`pga_worst_perturbation`: the inner maximization done numerically (projected gradient ascent
  on the ball), to check the closed forms.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cnnbias import validate as V

__all__ = [
    "RANK_RTOL",
    "check_problem",
    "min_norm_solution",
    "row_space_projector",
    "null_space_projector",
    "offset_limit",
    "ridge_solution",
    "gd_filter",
    "ridge_filter",
    "gd_closed_form",
    "ridge_distance",
    "matching_ridge_lambda",
    "worst_margin_weights",
    "worst_margin_inputs",
    "robust_square_loss",
    "eq42_loss",
    "noisy_square_loss",
    "pga_worst_perturbation",
]

#: Singular values below ``RANK_RTOL * sigma_max`` count as zero (rank decisions are not left to the last bit).
RANK_RTOL = 1e-10


def check_problem(X: Tensor, y: Tensor | None = None, w: Tensor | None = None) -> None:
    """Validate ``X [..., n, d]`` (floating, finite), ``y [..., n]`` and ``w [..., d]`` against it."""
    V.floating_tensor("X", X)
    if X.dim() < 2:
        raise ValueError(f"X must have shape [..., n, d], got {tuple(X.shape)}")
    V.finite_tensor("X", X)
    if y is not None:
        V.floating_tensor("y", y)
        if tuple(y.shape) != tuple(X.shape[:-1]):
            raise ValueError(f"y must have shape {tuple(X.shape[:-1])} (X's [..., n]), got {tuple(y.shape)}")
        V.finite_tensor("y", y)
    if w is not None:
        V.floating_tensor("w", w)
        want = tuple(X.shape[:-2]) + (X.shape[-1],)
        if tuple(w.shape) != want:
            raise ValueError(f"w must have shape {want} (X's [..., d]), got {tuple(w.shape)}")
        V.finite_tensor("w", w)


def _svd(X: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``U [..., n, r]``, ``sigma [..., r]``, ``Vh [..., r, d]`` (thin SVD) and the mask of kept values."""
    U, S, Vh = torch.linalg.svd(X, full_matrices=False)
    keep = S > RANK_RTOL * S[..., :1]
    return U, S, Vh, keep


def min_norm_solution(X: Tensor, y: Tensor) -> Tensor:
    """``w_dagger = X^+ y`` (``= X^T (X X^T)^{-1} y`` for full row rank; Lemma 3, Eq. 50)."""
    check_problem(X, y)
    U, S, Vh, keep = _svd(X)
    coef = torch.where(keep, (U.transpose(-1, -2) @ y[..., None])[..., 0] / torch.where(keep, S, 1.0), 0.0)
    return (Vh.transpose(-1, -2) @ coef[..., None])[..., 0]


def row_space_projector(X: Tensor) -> Tensor:
    """``P_row = X^+ X [..., d, d]``: the orthogonal projector onto the span of the rows of ``X``."""
    check_problem(X)
    _, _, Vh, keep = _svd(X)
    Vk = Vh * keep[..., :, None].to(Vh.dtype)
    return Vk.transpose(-1, -2) @ Vk


def null_space_projector(X: Tensor) -> Tensor:
    """``P_null = I - P_row [..., d, d]``: the projector onto the null space of ``X``."""
    P = row_space_projector(X)
    return torch.eye(P.shape[-1], dtype=P.dtype, device=P.device) - P


def offset_limit(X: Tensor, y: Tensor, w0: Tensor) -> Tensor:
    """Limit of GD/SGD on Eq. 49 from ``w0``: ``w_dagger + P_null w0`` (Lemma 4's argument from ``w0 != 0``)."""
    check_problem(X, y, w0)
    return min_norm_solution(X, y) + (null_space_projector(X) @ w0[..., None])[..., 0]


def ridge_solution(X: Tensor, y: Tensor, lam: float | Tensor) -> Tensor:
    """Minimizer of ``||X w - y||^2 / (2n) + lam ||w||^2 / 2``: ``X^T (X X^T + n lam I)^{-1} y``.

    ``lam`` is a number > 0 or a tensor of positive values broadcasting against ``X``'s batch shape.
    Computed through the SVD (filter ``sigma / (sigma^2 + n lam)``), stable for tiny ``lam``.
    """
    check_problem(X, y)
    lam_t = torch.as_tensor(lam, dtype=X.dtype, device=X.device)
    if lam_t.numel() == 1:
        V.positive("lam", float(lam_t))
    elif not bool((lam_t > 0).all()):
        raise ValueError("lam must hold only finite numbers > 0")
    n = X.shape[-2]
    U, S, Vh, _ = _svd(X)
    b = (U.transpose(-1, -2) @ y[..., None])[..., 0]
    coef = S / (S * S + n * lam_t[..., None]) * b
    return (Vh.transpose(-1, -2) @ coef[..., None])[..., 0]


def gd_filter(s: Tensor, eta: float, T: int | Tensor) -> Tensor:
    """GD's spectral filter ``1 - (1 - eta s)^T`` on eigenvalue ``s`` of ``X X^T / n`` after ``T`` steps."""
    V.positive("eta", eta)
    return 1.0 - (1.0 - eta * s) ** T


def ridge_filter(s: Tensor, lam: float | Tensor) -> Tensor:
    """Ridge's spectral filter ``s / (s + lam)``."""
    return s / (s + lam)


def gd_closed_form(X: Tensor, y: Tensor, eta: float, T: int, w0: Tensor | None = None) -> Tensor:
    """The GD iterate ``w_T`` of ``w_{t+1} = w_t - eta X^T (X w_t - y) / n`` from ``w0`` (default 0), in closed
    form: ``w_T = w0 + V diag(1 - (1 - eta s)^T) V^T (w_dagger - w0)`` with ``s = sigma^2 / n``."""
    check_problem(X, y, w0)
    V.positive("eta", eta)
    V.integer("T", T, 0)
    n = X.shape[-2]
    U, S, Vh, keep = _svd(X)
    w0 = torch.zeros(X.shape[:-2] + (X.shape[-1],), dtype=X.dtype, device=X.device) if w0 is None else w0
    resid = y - (X @ w0[..., None])[..., 0]
    b = (U.transpose(-1, -2) @ resid[..., None])[..., 0]
    filt = gd_filter(S * S / n, eta, T)
    coef = torch.where(keep, filt * b / torch.where(keep, S, 1.0), 0.0)
    return w0 + (Vh.transpose(-1, -2) @ coef[..., None])[..., 0]


def ridge_distance(X: Tensor, y: Tensor, w: Tensor, lams: Tensor) -> Tensor:
    """``||w - w_lam||`` for every ``lam`` in ``lams [L]``: shape ``[..., L]``."""
    check_problem(X, y, w)
    wl = torch.stack([ridge_solution(X, y, float(lam)) for lam in lams], dim=-2)  # [..., L, d]
    return torch.linalg.vector_norm(wl - w[..., None, :], dim=-1)


def matching_ridge_lambda(X: Tensor, y: Tensor, w: Tensor, lam_min: float = 1e-8, lam_max: float = 1e4,
                          grid: int = 241, refine: int = 40) -> tuple[Tensor, Tensor]:
    """The ridge parameter whose solution is closest to ``w``: ``argmin_lam ||w - w_lam||``.

    A log-spaced grid of ``grid`` values in ``[lam_min, lam_max]``, then ``refine`` golden-section steps
    in ``log lam`` around the best grid point.  Returns ``(lam [...], distance [...])``.  A minimizer on
    the edge of the grid means the range is too small (``ValueError``).
    """
    check_problem(X, y, w)
    V.positive("lam_min", lam_min)
    V.real("lam_max", lam_max, lam_min, lo_open=True)
    V.integer("grid", grid, 3)
    V.integer("refine", refine, 0)
    n = X.shape[-2]
    U, S, Vh, keep = _svd(X)
    s = S * S / n
    b = torch.where(keep, (U.transpose(-1, -2) @ y[..., None])[..., 0] / torch.where(keep, S, 1.0), 0.0)
    c = (Vh @ w[..., None])[..., 0]  # row-space coordinates of w
    off = torch.linalg.vector_norm(w - (Vh.transpose(-1, -2) @ c[..., None])[..., 0], dim=-1)

    def dist(loglam: Tensor) -> Tensor:  # loglam [..., K] -> [..., K]
        lam = torch.exp(loglam)[..., None]
        f = s[..., None, :] / (s[..., None, :] + lam)
        d2 = ((f * b[..., None, :] - c[..., None, :]) ** 2).sum(-1)
        return torch.sqrt(d2 + off[..., None] ** 2)

    logs = torch.linspace(math.log(lam_min), math.log(lam_max), grid, dtype=X.dtype, device=X.device)
    logs = logs.expand(X.shape[:-2] + (grid,))
    dg = dist(logs)
    k = dg.argmin(-1)
    if bool(((k == 0) | (k == grid - 1)).any()):
        raise ValueError(f"the best ridge parameter lies on the edge of [lam_min, lam_max] = [{lam_min}, {lam_max}];"
                         " widen the range")
    lo = logs.gather(-1, k[..., None] - 1)
    hi = logs.gather(-1, k[..., None] + 1)
    gr = (math.sqrt(5) - 1) / 2
    a1, a2 = hi - gr * (hi - lo), lo + gr * (hi - lo)
    f1, f2 = dist(a1), dist(a2)
    for _ in range(refine):
        left = f1 < f2
        hi = torch.where(left, a2, hi)
        lo = torch.where(left, lo, a1)
        a1, a2 = hi - gr * (hi - lo), lo + gr * (hi - lo)
        f1, f2 = dist(a1), dist(a2)
    best = (lo + hi) / 2
    return torch.exp(best)[..., 0], dist(best)[..., 0]


def _check_example(w: Tensor, x: Tensor) -> None:
    V.floating_tensor("w", w)
    V.floating_tensor("x", x)
    if w.shape[-1] != x.shape[-1]:
        raise ValueError(f"w and x must have the same last dimension, got {tuple(w.shape)} and {tuple(x.shape)}")


def worst_margin_weights(w: Tensor, x: Tensor, y: Tensor, rho: float) -> Tensor:
    """``min_{||dw|| <= rho ||w||} y (w + dw) . x = y w . x - rho ||w|| ||x||`` (Eq. 36)."""
    _check_example(w, x)
    V.nonnegative("rho", rho)
    return y * (w * x).sum(-1) - rho * torch.linalg.vector_norm(w, dim=-1) * torch.linalg.vector_norm(x, dim=-1)


def worst_margin_inputs(w: Tensor, x: Tensor, y: Tensor, eps: float) -> Tensor:
    """``min_{||dx|| <= eps} y w . (x + dx) = y w . x - eps ||w||`` (App. 9.4.1, spherical perturbations)."""
    _check_example(w, x)
    V.nonnegative("eps", eps)
    return y * (w * x).sum(-1) - eps * torch.linalg.vector_norm(w, dim=-1)


def robust_square_loss(w: Tensor, x: Tensor, y: Tensor, rho: float) -> Tensor:
    """``max_{||dw|| <= rho ||w||} (y - (w + dw) . x)^2 = (|y - w . x| + rho ||w|| ||x||)^2``."""
    _check_example(w, x)
    V.nonnegative("rho", rho)
    r = (y - (w * x).sum(-1)).abs()
    return (r + rho * torch.linalg.vector_norm(w, dim=-1) * torch.linalg.vector_norm(x, dim=-1)) ** 2


def eq42_loss(w: Tensor, x: Tensor, y: Tensor, rho: float) -> Tensor:
    """Eq. 42's per-example term as printed: ``(y - w . x)^2 + rho^2 ||w||^2``."""
    _check_example(w, x)
    V.nonnegative("rho", rho)
    return (y - (w * x).sum(-1)) ** 2 + rho ** 2 * (w * w).sum(-1)


def noisy_square_loss(w: Tensor, x: Tensor, y: Tensor, rho: float) -> Tensor:
    """``E (y - (w + dw) . x)^2`` for a random ``dw`` with mean 0 and ``E[dw dw^T] = rho^2 ||w||^2 I``:
    ``(y - w . x)^2 + rho^2 ||w||^2 ||x||^2`` (Eq. 42 for ``||x|| = 1``)."""
    _check_example(w, x)
    V.nonnegative("rho", rho)
    return (y - (w * x).sum(-1)) ** 2 + rho ** 2 * (w * w).sum(-1) * (x * x).sum(-1)


def pga_worst_perturbation(objective, center_shape: tuple[int, ...], radius: Tensor, g: torch.Generator,
                           steps: int = 200, lr: float = 0.1, starts: int = 4,
                           dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """``max_{||u|| <= radius} objective(u)`` by projected gradient ascent, batched.

    ``objective(u [S, ..., D]) -> [S, ...]`` (``S = starts`` random starts on the sphere, drawn from
    ``g``); ``radius [...]``.  Normalized-gradient steps of length ``lr * radius`` (halved every
    ``steps // 4``), each followed by the projection onto the ball.  Returns the best value and
    maximizer over the starts: ``(value [...], u [..., D])``.
    """
    V.generator("g", g)
    V.integer("steps", steps, 1)
    V.integer("starts", starts, 1)
    V.positive("lr", lr)
    radius = torch.as_tensor(radius, dtype=dtype)
    u = torch.randn((starts,) + tuple(center_shape), generator=g, dtype=dtype)
    rad = radius[None, ..., None]
    u = u / torch.linalg.vector_norm(u, dim=-1, keepdim=True) * rad
    step = lr
    for t in range(steps):
        if t and t % max(1, steps // 4) == 0:
            step /= 2
        u = u.detach().requires_grad_(True)
        (gr,) = torch.autograd.grad(objective(u).sum(), u)
        gn = torch.linalg.vector_norm(gr, dim=-1, keepdim=True)
        u = u.detach() + step * rad * gr / torch.where(gn > 0, gn, 1.0)
        nrm = torch.linalg.vector_norm(u, dim=-1, keepdim=True)
        u = torch.where(nrm > rad, u / nrm * rad, u)
    with torch.no_grad():
        val = objective(u)
    best = val.argmax(0)
    idx = best[None, ..., None].expand((1,) + tuple(u.shape[1:]))
    return val.max(0).values, u.gather(0, idx)[0]
