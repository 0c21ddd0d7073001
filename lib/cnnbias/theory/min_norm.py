"""Proposition 6.1 of :cite:`maxpool_orthogonal`: the minimum-norm linear separator of ``D``.

``w_hat = argmin ||w||^2  s.t.  y w . x >= 1  for all (x, y) in the support of D``  (Eq. 9),
with ``x in R^{nd}`` the concatenated patches.  The proposition states ``||w_hat||^2 >= n``.

The proof's argument in fact gives ``||w_hat||^2 >= 2n``: for every position ``i`` the two support
points that differ only in position ``i`` (``o_1`` vs ``o_2``) force ``w[i] . (o_1 - o_2) >= 2``, and
``|w[i] . (o_1 - o_2)| <= sqrt(2) ||w[i]||`` (the paper bounds it by ``2 ||w[i]||``).  The separator
``w[i] = o_1 - o_2`` for every ``i`` attains ``2n``, so the minimum is exactly ``2n``;
:func:`min_norm_squared` computes it by solving the QP numerically on the enumerated support.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from cnnbias import validate as V

__all__ = ["closed_form_min_norm_squared", "min_norm_squared", "support_D", "support_D_sets"]


def support_D(n: int, l: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every point of the support of ``D`` (max-pooling paper, Sec. 3) as pattern indices:
    ``idx [N, n]``, ``y [N]`` with ``N = 2 n (l-2)^(n-1)`` (position of the discriminative pattern
    times the spurious patterns at the other positions)."""
    V.integer("n", n)
    V.integer("l", l)
    n, l = int(n), int(l)
    if n < 1 or l < 3:
        raise ValueError(f"need n >= 1 and l >= 3, got n={n}, l={l}")
    if 2 * n * (l - 2) ** (n - 1) > 200_000:
        raise ValueError(f"support of size 2 n (l-2)^(n-1) too large to enumerate for n={n}, l={l}")
    rows, ys = [], []
    for label, disc in ((1.0, 0), (-1.0, 1)):
        for pos in range(n):
            for spur in itertools.product(range(2, l), repeat=n - 1):
                row = list(spur[:pos]) + [disc] + list(spur[pos:])
                rows.append(row)
                ys.append(label)
    return torch.tensor(rows, dtype=torch.int64), torch.tensor(ys, dtype=torch.float64)


def support_D_sets(n: int, l: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The support of ``D`` up to the order of the patches, with probabilities: one representative
    ``idx [S, n]`` per (label, set of distinct spurious patterns), labels ``y [S]`` and probabilities
    ``prob [S]`` (summing to 1).

    A max-pooling network is invariant to the order of the patches and to repeated patches, so its
    error on ``D`` is ``sum_s prob_s * err(idx_s, y_s)`` exactly.  The ``n - 1`` spurious patches are
    i.i.d. uniform over ``q = l - 2`` patterns; the probability that their set is a given ``A`` with
    ``|A| = s`` is ``sum_{j=0}^{s} (-1)^j C(s, j) ((s - j)/q)^(n-1)`` (inclusion-exclusion), and each
    label has probability 1/2.  A representative lists ``A`` (its first element repeated up to
    ``n - 1`` patches) after the discriminative pattern.
    """
    V.integer("n", n)
    V.integer("l", l)
    n, l = int(n), int(l)
    if n < 2 or l < 3:
        raise ValueError(f"need n >= 2 and l >= 3, got n={n}, l={l}")
    q = l - 2
    if 2**q > 200_000:
        raise ValueError(f"l = {l}: 2^(l-2) spurious sets too many to enumerate (l <= 19)")
    rows, ys, ps = [], [], []
    for s in range(1, min(n - 1, q) + 1):
        p_set = sum((-1) ** j * math.comb(s, j) * ((s - j) / q) ** (n - 1) for j in range(s + 1))
        for A in itertools.combinations(range(2, l), s):
            spur = list(A) + [A[0]] * (n - 1 - s)
            for label, disc in ((1.0, 0), (-1.0, 1)):
                rows.append([disc] + spur)
                ys.append(label)
                ps.append(0.5 * p_set)
    return (torch.tensor(rows, dtype=torch.int64), torch.tensor(ys, dtype=torch.float64),
            torch.tensor(ps, dtype=torch.float64))


def min_norm_squared(X: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, tol: float = 1e-10
                     ) -> tuple[float, np.ndarray, float]:
    """Solve ``min ||w||^2 s.t. y_i w . x_i >= 1`` (no bias) with SLSQP.

    Returns ``(||w||^2, w, min_i y_i w . x_i)``; the last number checks feasibility (>= 1 - 1e-6).
    """
    from scipy.optimize import minimize

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2 or y.shape != (X.shape[0],) or X.shape[0] == 0:
        raise ValueError(f"X must be [N, D] and y [N] (N >= 1); got {X.shape}, {y.shape}")
    if not np.all((y == 1) | (y == -1)):
        raise ValueError("y must hold only labels -1 and +1")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must hold only finite values")
    V.positive("tol", tol)
    A = y[:, None] * X
    # start from the least-squares solution of A w = 1 (often close)
    w0 = np.linalg.lstsq(A, np.ones(len(y)), rcond=None)[0]
    cons = {"type": "ineq", "fun": lambda w: A @ w - 1.0, "jac": lambda w: A}
    res = minimize(lambda w: w @ w, w0, jac=lambda w: 2 * w, constraints=[cons], method="SLSQP",
                   options={"ftol": tol, "maxiter": 1000})
    if not res.success:
        raise RuntimeError(f"SLSQP did not converge: {res.message}")
    w = res.x
    return float(w @ w), w, float((A @ w).min())


def closed_form_min_norm_squared(n: int) -> float:
    """``2n``: attained by ``w[i] = o_1 - o_2`` and matched by the sharpened lower bound (module doc)."""
    V.integer("n", n, 1)
    return 2.0 * int(n)
