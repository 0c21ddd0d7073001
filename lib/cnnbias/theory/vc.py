"""The VC-dimension lower bound for max-pooling networks on orthogonal patterns.

Theorem 4.2 of :cite:`maxpool_orthogonal` (= Theorem 5.1 and App. B of :cite:`psi_orthogonal`):
for ``d = 2n`` and ``n >= 2`` the class of networks ``N_W`` (PSI Eq. 1, readout fixed to +1/-1)
restricted to the support of the pattern distribution shatters a set ``B`` of ``2^(n-1)`` points.

Patterns are referred to by 0-based index (pattern 0 = ``p1`` positive, 1 = ``p2`` negative,
``2..d-1`` spurious), as in :mod:`cnnbias.data.patterns`.  With one-hot (or any orthonormal)
patterns, a filter's response to patch ``j`` is the coordinate ``W[c, idx[j]]`` of the filter in
the pattern basis, so everything here works with pattern indices and filters expressed in that
basis (``W [.., C, d]`` with ``d`` patterns).

Construction (App. B).  For ``I in {0,1}^(n-1)`` the point ``x_I`` has, at positions
``j = 1..n-1``, the pattern ``p_{2j+1}`` if ``I[j] = 1`` and ``p_{2j+2}`` otherwise (1-based; in
0-based indices: ``2j`` if ``I[j] = 1`` else ``2j + 1``), and at position ``n`` the pattern ``p1``
(or ``p2``; the choice is arbitrary).  For labels ``y_I`` solve ``(J - Id) alpha = b`` with
``b_I = y_{I^c}`` (Eq. 5/7); by Sherman-Morrison ``(J - Id)^{-1} = -Id + J / (N - 1)`` with
``N = 2^(n-1)``.  The filters are ``w^(I) = max(alpha_I, 0) s_I`` and ``u^(I) = max(-alpha_I, 0) s_I``
where ``s_I = sum_{j<n} x_I[j]``; then ``N_W(x_I) = sum_{I' != I^c} alpha_{I'} = y_I``.
"""

from __future__ import annotations

import math

import torch

from cnnbias import validate as V

__all__ = [
    "all_labelings",
    "bits",
    "detection_sums",
    "fit_by_shattering",
    "psi_quantities",
    "shattered_set",
    "shattering_network",
    "solve_alpha",
    "system_matrix",
    "vc_lower_bound",
    "vc_upper_bound",
    "verify_shattering",
]


def _check_n(n: int) -> int:
    V.integer("n", n)
    n = int(n)
    if n < 2:
        raise ValueError(f"n must be an integer >= 2 (Theorem 4.2 needs d = 2n, n >= 2), got {n}")
    return n


def bits(n: int) -> torch.Tensor:
    """All ``I in {0,1}^(n-1)`` as a LongTensor ``[2^(n-1), n-1]``; row ``t`` is the binary expansion
    of ``t`` (most significant bit first), so the complement ``I^c`` of row ``t`` is row ``N-1-t``."""
    n = _check_n(n)
    N = 2 ** (n - 1)
    t = torch.arange(N).unsqueeze(1)
    shifts = torch.arange(n - 2, -1, -1).unsqueeze(0)
    return (t >> shifts) & 1


def shattered_set(n: int, last: int | str = 0) -> torch.Tensor:
    """The shattered set ``B`` as pattern indices ``[2^(n-1), n]`` (``d = 2n`` patterns).

    ``last`` is the pattern at position ``n``: 0 (``p1``), 1 (``p2``) or ``"alternate"`` (``p1``
    for even rows, ``p2`` for odd rows) -- the theorem allows any choice.
    """
    n = _check_n(n)
    I = bits(n)
    j = torch.arange(1, n).unsqueeze(0)  # 1..n-1
    spur = torch.where(I == 1, 2 * j, 2 * j + 1)
    N = I.shape[0]
    if isinstance(last, bool):
        raise ValueError(f"last must be 0, 1 or 'alternate', got {last!r}")
    if last in (0, 1):
        tail = torch.full((N, 1), int(last), dtype=torch.long)
    elif last == "alternate":
        tail = (torch.arange(N) % 2).unsqueeze(1)
    else:
        raise ValueError(f"last must be 0, 1 or 'alternate', got {last!r}")
    return torch.cat([spur, tail], dim=1)


def all_labelings(N: int) -> torch.Tensor:
    """All ``2^N`` labelings of ``N`` points, ``[2^N, N]`` in ``{+1, -1}`` (float64)."""
    V.integer("N", N)
    N = int(N)
    if not 1 <= N <= 20:
        raise ValueError(f"N must be in 1..20 (2^N labelings are enumerated), got {N}")
    t = torch.arange(2**N).unsqueeze(1)
    b = (t >> torch.arange(N - 1, -1, -1).unsqueeze(0)) & 1
    return (2 * b - 1).to(torch.float64)


def system_matrix(N: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The matrix of the linear system (Eq. 5): all-ones minus identity, ``[N, N]``."""
    V.integer("N", N, 2)
    return torch.ones(N, N, dtype=dtype) - torch.eye(N, dtype=dtype)


def solve_alpha(y: torch.Tensor, method: str = "closed") -> torch.Tensor:
    """Solve Eq. 5 for a batch of labelings ``y [..., N]`` (rows ordered as :func:`bits`).

    Equation ``I``: ``sum_{I' != I} alpha_{I'} = y_{I^c}``.  ``method="closed"`` uses the
    Sherman-Morrison inverse ``-Id + J/(N-1)``; ``method="solve"`` calls ``torch.linalg.solve``.
    """
    V.choice("method", method, ("closed", "solve"))
    y = torch.as_tensor(y, dtype=torch.float64)
    V.labels_pm1("y", y)
    if y.dim() == 0:
        raise ValueError("y must have shape [..., N], got a 0-d tensor")
    N = y.shape[-1]
    if N < 2 or N & (N - 1):
        raise ValueError(f"the last axis of y must have length 2^(n-1) >= 2, got {N}")
    b = y.flip(-1)  # b_I = y_{I^c}; I^c of row t is row N-1-t
    if method == "closed":
        return -b + b.sum(-1, keepdim=True) / (N - 1)
    if method == "solve":
        A = system_matrix(N)
        return torch.linalg.solve(A, b.unsqueeze(-1)).squeeze(-1)
    raise ValueError(f"method must be 'closed' or 'solve', got {method!r}")


def shattering_network(y: torch.Tensor, n: int) -> torch.Tensor:
    """Filters of the proof's network for labelings ``y [L, N]``: ``W [L, 2N, d]`` in the pattern basis.

    Rows ``0..N-1`` are ``w^(I) = max(alpha_I, 0) s_I`` (readout +1), rows ``N..2N-1`` are
    ``u^(I) = max(-alpha_I, 0) s_I`` (readout -1), with ``s_I`` the indicator of ``x_I``'s
    spurious patterns.  Use with a fixed +1/-1 readout (``maxpool.forward_fixed``).
    """
    n = _check_n(n)
    y = torch.as_tensor(y, dtype=torch.float64)
    if y.dim() == 1:
        y = y.unsqueeze(0)
    N = 2 ** (n - 1)
    if y.shape[-1] != N:
        raise ValueError(f"y must have last axis 2^(n-1) = {N}, got {tuple(y.shape)}")
    alpha = solve_alpha(y)  # [L, N]
    B = shattered_set(n)
    S = torch.zeros(N, 2 * n, dtype=torch.float64)
    S.scatter_(1, B[:, : n - 1], 1.0)  # s_I, [N, d]
    w = alpha.clamp(min=0).unsqueeze(-1) * S
    u = (-alpha).clamp(min=0).unsqueeze(-1) * S
    return torch.cat([w, u], dim=1)


def verify_shattering(n: int, chunk: int = 4096, forward=None) -> dict:
    """Build the proof's network for EVERY labeling of ``B`` (``2^(2^(n-1))`` of them) and check
    ``N_W(x_I) = y_I`` exactly (up to 1e-9) and hence ``sign(N_W(x_I)) = y_I``.

    ``forward(W, idx)`` defaults to :func:`cnnbias.models.maxpool.forward_fixed`.  Returns a dict with
    ``n, points, labelings, realized`` (number of labelings with all signs right) and
    ``max_abs_err`` (max ``|N_W(x_I) - y_I|``).
    """
    n = _check_n(n)
    if n > 5:
        raise ValueError(f"n must be <= 5 (2^(2^(n-1)) labelings are enumerated), got {n}")
    V.integer("chunk", chunk, 1)
    if forward is not None and not callable(forward):
        raise TypeError(f"forward must be None or a callable forward(W, idx), got {type(forward).__name__}")
    if forward is None:
        from cnnbias.models.maxpool import forward_fixed

        def forward(W, idx):
            return forward_fixed(W, idx=idx)
    N = 2 ** (n - 1)
    Y = all_labelings(N)
    B = shattered_set(n)
    realized = 0
    max_err = 0.0
    for s in range(0, Y.shape[0], chunk):
        y = Y[s : s + chunk]
        W = shattering_network(y, n)
        idx = B.unsqueeze(0).expand(y.shape[0], N, n)
        out = forward(W, idx)
        max_err = max(max_err, float((out - y).abs().max()))
        realized += int(((torch.sign(out) == y).all(-1)).sum())
    return {"n": n, "points": N, "labelings": int(Y.shape[0]), "realized": realized, "max_abs_err": max_err}


def vc_lower_bound(n: int) -> int:
    """``2^(n-1) = 2^(d/2 - 1)`` (Theorem 4.2, d = 2n)."""
    return 2 ** (_check_n(n) - 1)


def vc_upper_bound(n: int, d: int) -> int:
    """``binom(d, n)`` (PSI App. A): the network is invariant to the order of the patches, and an
    input of the support is determined by its set of ``n`` distinct patterns, so at most
    ``binom(d, n)`` distinct inputs exist (for distributions whose patterns in an image are distinct,
    e.g. ``D_u``, ``D_vc``)."""
    V.integer("n", n)
    V.integer("d", d)
    n, d = int(n), int(d)
    if not 1 <= n < d:
        raise ValueError(f"need 1 <= n < d, got n={n}, d={d}")
    return math.comb(d, n)


def detection_sums(W: torch.Tensor, patterns: torch.Tensor, exclude: int) -> torch.Tensor:
    """``M(i) = sum_{j in D(i)} w^(j) . p_i`` for every pattern ``i`` (PSI Eq. 2), where ``D(i)`` are
    the filters ``w^(j)`` (rows of ``W [..., C, d]``) whose largest dot product among all patterns
    except ``exclude`` is attained at ``p_i`` and is positive.  ``exclude=1`` gives ``M^+`` (the set
    ``P_s ∪ P_+``), ``exclude=0`` gives ``M^-``.  Returns ``[..., l]`` with 0 at ``exclude``.
    Ties are broken towards the lowest index (the paper assigns ties arbitrarily).
    """
    V.floating_tensor("W", W)
    V.floating_tensor("patterns", patterns, 2)
    if W.dim() < 2 or W.shape[-1] != patterns.shape[1] or patterns.shape[0] < 2:
        raise ValueError(f"W must be [..., C, d] and patterns [l >= 2, d] with the same d, got {tuple(W.shape)} and "
                         f"{tuple(patterns.shape)}")
    if isinstance(exclude, bool) or exclude not in (0, 1):
        raise ValueError(f"exclude must be 0 (for M^-) or 1 (for M^+), got {exclude}")
    dots = W @ patterns.to(W.dtype).T  # [..., C, l]
    masked = dots.clone()
    masked[..., exclude] = -math.inf
    best, arg = masked.max(-1)  # [..., C]
    active = best > 0
    l = patterns.shape[0]
    onehot = torch.nn.functional.one_hot(arg, l).to(W.dtype) * active.unsqueeze(-1).to(W.dtype)
    return (onehot * dots).sum(-2)


def psi_quantities(W: torch.Tensor, patterns: torch.Tensor) -> dict[str, torch.Tensor]:
    """``M_w^+(1)`` and ``M_u^-(2)`` of a network ``W = [w(1..k); u(1..k)]`` (``[..., 2k, d]``), the
    denominators of the PSI condition (Def. 4.1).  PSI needs both to be positive."""
    C = W.shape[-2]
    if C % 2:
        raise ValueError(f"W must have an even number of channels 2k, got {C}")
    w, u = W[..., : C // 2, :], W[..., C // 2 :, :]
    return {
        "Mw_plus_1": detection_sums(w, patterns, exclude=1)[..., 0],
        "Mu_minus_2": detection_sums(u, patterns, exclude=0)[..., 1],
    }


def fit_by_shattering(
    idx: torch.Tensor, y: torch.Tensor, n: int, unseen_label: float = -1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A network of the proof that fits a training set drawn from ``D_vc`` (Remark E.1).

    Each training point is mapped to the element ``x_I`` of ``B`` with the same spurious patterns
    (its configuration ``I``); ``y_I`` is the (majority) training label of ``I`` and
    ``unseen_label`` for configurations absent from the training set.  The network's output depends
    only on the spurious patterns, so on unseen configurations it is right with probability 1/2.
    Returns ``(W [2N, d], labels [N])``.
    """
    n = _check_n(n)
    V.labels_pm1("y", torch.as_tensor(y))
    if unseen_label not in (1, -1) or isinstance(unseen_label, bool):
        raise ValueError(f"unseen_label must be +1 or -1, got {unseen_label!r}")
    I = config_index(idx, n)  # [m]
    if torch.as_tensor(y).shape != I.shape:
        raise ValueError(f"y must hold one label per training point ({I.shape[0]}), got shape "
                         f"{tuple(torch.as_tensor(y).shape)}")
    N = 2 ** (n - 1)
    votes = torch.zeros(N, dtype=torch.float64).index_add_(0, I, torch.as_tensor(y, dtype=torch.float64))
    labels = torch.where(votes > 0, 1.0, torch.where(votes < 0, -1.0, float(unseen_label)))
    labels = labels.to(torch.float64)
    return shattering_network(labels.unsqueeze(0), n)[0], labels


def config_index(idx: torch.Tensor, n: int) -> torch.Tensor:
    """Row of :func:`bits` (the configuration ``I``) of ``D_vc`` samples ``idx [m, n]`` (0-based
    patterns, d = 2n): ``I[j] = 1`` iff pattern ``2j`` (0-based) is present, ``j = 1..n-1``."""
    n = _check_n(n)
    idx = torch.as_tensor(idx)
    V.tensor("idx", idx, 2, kind="int")
    if idx.shape[1] != n:
        raise ValueError(f"idx must have shape [m, n={n}], got {tuple(idx.shape)}")
    V.index_in_range("idx", idx, 2 * n)
    present = torch.zeros(idx.shape[0], 2 * n, dtype=torch.bool)
    present.scatter_(1, idx, True)
    j = torch.arange(1, n)
    Ibits = present[:, 2 * j].long()  # [m, n-1]
    if not bool((present[:, 2 * j] ^ present[:, 2 * j + 1]).all()):
        raise ValueError("idx is not in the support of D_vc (exactly one of patterns 2j, 2j+1 per j)")
    weights = 2 ** torch.arange(n - 2, -1, -1)
    return (Ibits * weights).sum(-1)
