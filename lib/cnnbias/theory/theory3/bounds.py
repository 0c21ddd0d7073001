"""Classical generalization bounds of Theory of Deep Learning III (:cite:`theory_iii`): Eq. 17 (App. 8.1),
Lemma 2 (App. 8.2, covering numbers) and Lemma 5 (App. 9.8, Rademacher averages of l1-bounded nets).

Eq. 17 (Anthony and Bartlett, Thm. 16.2): a network whose ``W`` parameters are stored in ``k`` bits each is
a finite class of at most ``2^{kW}`` functions, and the number of examples that guarantees generalization
error ``eps`` with probability ``1 - delta`` is

    M(eps, delta) <= (2 / eps^2) (k W log 2 + log(2 / delta)).

Solved for ``eps`` at ``n`` examples: ``eps(n) = sqrt(2 (k W log 2 + log(2/delta)) / n)``
(:func:`eq17_epsilon`).  For the 0-1 loss a bound ``eps >= 1`` says nothing (*vacuous*); this happens
as soon as ``k W log 2 + log(2/delta) >= n / 2``, e.g. for every ``W >= n`` even with ``k = 1``.

Lemma 2: in ``R^d``, for ``0 < eps < r``, ``N_eps(B(r)) <= (3 r / eps)^d``.  Proof: a maximal
``eps``-separated subset of the ball is an ``eps``-cover, and disjoint balls of radius ``eps/2`` around its
points fit in ``B(r + eps/2)``, so it has at most ``(1 + 2r/eps)^d <= (3r/eps)^d`` points.  Checks:
:func:`cube_cover_size` (an explicit cover by the cubes of a grid: an upper bound on ``N``),
:func:`greedy_packing` (a maximal separated subset of a sample: the proof's construction),
:func:`volume_lower_bound` (``N >= (r/eps)^d``), :func:`interval_covering_number` (``d = 1``, exact).

Lemma 5 (Eq. 60, read as ``2 E R(F_k) <= sqrt(2 log d) prod_i (2 B_i) / sqrt(n)``): its first step is
``R(F_1) = B_1 E || (1/n) sum_t eps_t X_t ||_inf <= B_1 sqrt(2 log d / n)`` for ``X_t in [-1, 1]^d``.
Massart's finite-class lemma, applied to the ``2d`` vectors ``+-(X_{tj})_t``, gives
``B_1 sqrt(2 log(2d) / n)``; the printed ``log d`` fails at ``d = 1`` (right side 0).
:func:`rademacher_layer1_exact` computes ``R(F_1)`` exactly by enumerating all ``2^n`` sign vectors;
:func:`rademacher_layer2_relu_exact` computes ``R(F_2)`` for ReLU, ``d = 2``, to check the recursion
``R(F_2) <= 2 B_2 R(F_1)`` (Eq. 62).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from cnnbias import validate as V

__all__ = [
    "eq17_sample_bound",
    "eq17_epsilon",
    "eq17_vacuous_width",
    "lemma2_bound",
    "packing_bound",
    "volume_lower_bound",
    "interval_covering_number",
    "cube_cover_size",
    "greedy_packing",
    "sign_vectors",
    "rademacher_layer1_exact",
    "massart_bound",
    "lemma5_layer1_bound",
    "lemma5_bound",
    "rademacher_layer1_worst",
    "lemma5_worst_case",
    "rademacher_layer2_relu_exact",
]


# --- Eq. 17 --------------------------------------------------------------------------------------


def _eq17_args(delta: float, W: int, k: int) -> None:
    V.probability("delta", delta, open_=True)
    V.integer("W", W, 1)
    V.integer("k", k, 1)


def eq17_sample_bound(eps: float, delta: float, W: int, k: int) -> float:
    """``M(eps, delta) = (2 / eps^2) (k W log 2 + log(2 / delta))`` (Eq. 17)."""
    V.positive("eps", eps)
    _eq17_args(delta, W, k)
    return 2.0 / eps ** 2 * (k * W * math.log(2.0) + math.log(2.0 / delta))


def eq17_epsilon(n: int, delta: float, W: int, k: int) -> float:
    """The generalization error Eq. 17 guarantees with ``n`` examples: ``sqrt(2 (k W log 2 + log(2/delta)) / n)``."""
    V.integer("n", n, 1)
    _eq17_args(delta, W, k)
    return math.sqrt(2.0 * (k * W * math.log(2.0) + math.log(2.0 / delta)) / n)


def eq17_vacuous_width(n: int, delta: float, k: int) -> int:
    """The smallest ``W`` for which Eq. 17's ``eps`` at ``n`` examples is ``>= 1``."""
    V.integer("n", n, 1)
    _eq17_args(delta, 1, k)
    W = max(1, math.ceil((n / 2.0 - math.log(2.0 / delta)) / (k * math.log(2.0))))
    while W > 1 and eq17_epsilon(n, delta, W - 1, k) >= 1.0:
        W -= 1
    while eq17_epsilon(n, delta, W, k) < 1.0:
        W += 1
    return W


# --- Lemma 2 -------------------------------------------------------------------------------------


def _ball_args(d: int, r: float, eps: float) -> None:
    V.integer("d", d, 1)
    V.positive("r", r)
    V.real("eps", eps, 0, r, lo_open=True, hi_open=True)


def lemma2_bound(d: int, r: float, eps: float) -> float:
    """Lemma 2: ``(3 r / eps)^d``, for ``0 < eps < r``."""
    _ball_args(d, r, eps)
    return (3.0 * r / eps) ** d


def packing_bound(d: int, r: float, eps: float) -> float:
    """Most points of an ``eps``-separated subset of ``B(r)``: ``(1 + 2 r / eps)^d`` (the proof's volume step)."""
    _ball_args(d, r, eps)
    return (1.0 + 2.0 * r / eps) ** d


def volume_lower_bound(d: int, r: float, eps: float) -> float:
    """``N_eps(B(r)) >= (r / eps)^d`` (the eps-balls of a cover must have the ball's volume)."""
    _ball_args(d, r, eps)
    return (r / eps) ** d


def interval_covering_number(r: float, eps: float) -> int:
    """``N_eps([-r, r]) = ceil(r / eps)`` exactly (``d = 1``: intervals of length ``2 eps``)."""
    _ball_args(1, r, eps)
    q = r / eps
    return int(round(q)) if abs(q - round(q)) <= 1e-12 * q else int(math.ceil(q))


def cube_cover_size(d: int, r: float, eps: float) -> int:
    """The size of an explicit ``eps``-cover of ``B(r)`` in ``R^d``: the centres of the cells of the grid of
    side ``h = 2 eps / sqrt(d)`` (circumradius ``eps``) that meet the ball.  An upper bound on ``N_eps``.

    A cell ``prod_j [a_j h, (a_j + 1) h]`` meets ``B(r)`` iff its point closest to 0 has norm ``<= r``.
    The count is exact (integer enumeration, one coordinate at a time).
    """
    _ball_args(d, r, eps)
    h = 2.0 * eps / math.sqrt(d)
    m = int(math.ceil(r / h))
    if (2 * m) ** d > 5_000_000:
        raise ValueError(f"too many grid cells to enumerate for d={d}, r/eps={r / eps:g}; use smaller d or r/eps")
    a = torch.arange(-m, m, dtype=torch.float64)  # cell [a h, (a+1) h]
    near = torch.where(a >= 0, a * h, torch.where(a + 1 <= 0, -(a + 1) * h, torch.zeros_like(a)))
    sq = near ** 2  # squared distance of the closest point, per coordinate
    total = sq
    for _ in range(d - 1):
        total = (total[..., None] + sq).flatten()
    return int((total <= r * r * (1 + 1e-12)).sum())


def greedy_packing(points: Tensor, eps: float) -> Tensor:
    """A maximal ``eps``-separated subset of ``points [N, d]`` (greedy, in the given order): the indices kept.

    Every point is within ``eps`` of a kept one (so the kept points are an ``eps``-cover of the sample) and
    kept points are pairwise more than ``eps`` apart (so there are at most :func:`packing_bound` of them).
    """
    V.floating_tensor("points", points, 2)
    V.positive("eps", eps)
    N = points.shape[0]
    covered = torch.zeros(N, dtype=torch.bool)
    kept = []
    for i in range(N):
        if covered[i]:
            continue
        kept.append(i)
        covered |= torch.linalg.vector_norm(points - points[i], dim=-1) <= eps
    return torch.tensor(kept, dtype=torch.int64)


# --- Lemma 5 -------------------------------------------------------------------------------------


def sign_vectors(n: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """All ``2^n`` Rademacher vectors ``[2^n, n]`` (``n <= 20``)."""
    V.integer("n", n, 1, 20)
    return torch.tensor(list(itertools.product((-1.0, 1.0), repeat=n)), dtype=dtype)


def _check_X(X: Tensor) -> None:
    V.floating_tensor("X", X, 2)
    V.finite_tensor("X", X)
    if X.shape[0] > 20:
        raise ValueError(f"X must have at most 20 rows (2^n sign vectors are enumerated), got {X.shape[0]}")
    if bool((X.abs() > 1).any()):
        raise ValueError("X must lie in [-1, 1]^d (Lemma 5's assumption)")


def rademacher_layer1_exact(X: Tensor, B1: float) -> float:
    """``R(F_1) = E_eps sup_{||w||_1 <= B1} (1/n) sum_t eps_t <w, X_t> = B1 E_eps ||(1/n) sum_t eps_t X_t||_inf``
    for the sample ``X [n, d]``, exactly (all ``2^n`` sign vectors; the sup of a linear function over the
    l1 ball is attained at a vertex ``+-B1 e_j``)."""
    _check_X(X)
    V.positive("B1", B1)
    E = sign_vectors(X.shape[0], X.dtype)
    return float(B1 * (E @ X / X.shape[0]).abs().amax(-1).mean())


def massart_bound(d: int, n: int, B1: float = 1.0, paper: bool = True) -> float:
    """``B1 sqrt(2 log d / n)`` as printed in Lemma 5's proof (``paper=True``), or Massart's
    ``B1 sqrt(2 log(2d) / n)`` for the ``2d`` vectors ``+-X_{.j}`` (``paper=False``)."""
    V.integer("d", d, 1)
    V.integer("n", n, 1)
    V.positive("B1", B1)
    return B1 * math.sqrt(2.0 * math.log(d if paper else 2 * d) / n)


lemma5_layer1_bound = massart_bound


def lemma5_bound(Bs, d: int, n: int) -> float:
    """Eq. 60's right side, read as ``sqrt(2 log d) prod_i (2 B_i) / sqrt(n)`` (a bound on ``2 E R(F_k)``)."""
    Bs = [float(V.positive("B_i", b)) for b in Bs]
    if not Bs:
        raise ValueError("Bs must list the l1 bounds B_1, ..., B_k of the k layers (at least one)")
    V.integer("d", d, 1)
    V.integer("n", n, 1)
    return math.sqrt(2.0 * math.log(d)) * math.prod(2.0 * b for b in Bs) / math.sqrt(n)


def rademacher_layer1_worst(n: int, d: int, B1: float = 1.0) -> float:
    """``max_{X in [-1, 1]^{n x d}} R(F_1)(X)``, exactly.

    ``E_eps ||(1/n) sum_t eps_t X_t||_inf`` is convex in ``X``, so its maximum over the cube is at a vertex
    ``X in {+-1}^{n x d}``; flipping the sign of a row or permuting rows does not change it, so we fix the
    first column to ``+1`` and enumerate the multisets of the other ``d - 1`` entries of the rows.
    """
    V.integer("n", n, 1, 16)
    V.integer("d", d, 1, 4)
    V.positive("B1", B1)
    E = sign_vectors(n)
    types = torch.tensor(list(itertools.product((-1.0, 1.0), repeat=d - 1)), dtype=torch.float64)
    types = types.reshape(2 ** (d - 1), d - 1)
    combos = torch.tensor(list(itertools.combinations_with_replacement(range(len(types)), n)), dtype=torch.int64)
    best = 0.0
    for chunk in combos.split(256):
        X = torch.cat([torch.ones(len(chunk), n, 1, dtype=torch.float64), types[chunk]], dim=-1)  # [C, n, d]
        best = max(best, float((E @ X / n).abs().amax(-1).mean(-1).max()))
    return B1 * best


def lemma5_worst_case(dims=(1, 2, 3), ns=range(1, 13)) -> list[dict]:
    """For every ``d`` in ``dims`` and ``n`` in ``ns``: the exact worst-case ``R(F_1)`` (``B_1 = 1``,
    :func:`rademacher_layer1_worst`), the printed bound ``sqrt(2 log d / n)`` and Massart's
    ``sqrt(2 log(2d) / n)``, as rows ``{"d", "n", "R1", "paper", "massart"}``."""
    rows = []
    for d in dims:
        for n in ns:
            rows.append({"d": int(d), "n": int(n), "R1": rademacher_layer1_worst(int(n), int(d)),
                         "paper": massart_bound(int(d), int(n)), "massart": massart_bound(int(d), int(n), paper=False)})
    return rows


def rademacher_layer2_relu_exact(X: Tensor, B1: float, B2: float) -> float:
    """``R(F_2)`` for ``sigma = relu`` and ``d = 2``, exactly.

    ``sup_{f_j in F_1, ||w2||_1 <= B2} (1/n) sum_t eps_t sum_j w2_j relu(f_j(X_t))
    = B2 sup_{||w||_1 <= B1} |(1/n) sum_t eps_t relu(<w, X_t>)|``; the function of ``w`` is positively
    homogeneous and piecewise linear on the l1 sphere, with kinks where ``<w, X_t> = 0``, so the sup is
    attained at the sphere's vertices or at those kinks (all enumerated).
    """
    _check_X(X)
    if X.shape[1] != 2:
        raise ValueError(f"rademacher_layer2_relu_exact needs d = 2, got X of shape {tuple(X.shape)}")
    V.positive("B1", B1)
    V.positive("B2", B2)
    cands = [torch.tensor(v, dtype=X.dtype) for v in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    for x in X:
        perp = torch.stack([-x[1], x[0]])
        nrm = perp.abs().sum()
        if nrm > 0:
            cands += [perp / nrm, -perp / nrm]
    Wc = B1 * torch.stack(cands)  # [C, 2] on the l1 sphere of radius B1
    act = torch.relu(X @ Wc.T)  # [n, C]
    E = sign_vectors(X.shape[0], X.dtype)
    vals = (E @ act / X.shape[0]).abs().amax(-1)
    return float(B2 * vals.mean())
