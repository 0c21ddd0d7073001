"""Task-Cls analysis of :cite:`gd_conv_linear`: Theorem 4, Lemma 5, Proposition 6, sample-complexity saving.

In Task-Cls, (x, y) and (-x, -y) give the same M_{x,y}, so a training set is a multiset of n positions
l_1..l_n i.i.d. uniform on [d] and M_tr = A_c with c_l = (count of l)/n >= 0; S_tr is the set of distinct positions.
Positions are 1-based in formulas (as in the paper) and 0-based in tensors.

Theorem 4:  E_inf_Convk <= Pr(Omega^c(M_tr^T M_tr)) + 1/2 E_{l~U[d]} Pr(for all l' in S_tr: ``|l' - l| >= k``).
Second term, exactly: Pr(...) = ((d - near(l))/d)^n with near(l) = ``#{l' in [d] : |l' - l| < k}``
= min(d, l+k-1) - max(1, l-k+1) + 1  (the paper writes d - near = d - k - min{k, l, d-l+1} + 1, equal when
d >= 2k - 1).  Approximations: upper bound 1/2 ((d-k)/d)^n and, for k << d, Err2 = 1/2 ((d-2k+1)/d)^n.
Model-1-Layer: E_1Layer = 1/2 ((d-1)/d)^n (Section 3.3.2).

Lemma 5: if some k <= i <= d has i-1, i in S_tr then M_tr^T M_tr is primitive.  Err1 = Pr(no such i), estimated
by Monte Carlo as in Fig. 4(a).

Sample complexity (Section 3.3.2): 1/2 ((d-2k+1)/d)^n = eps  <=>  n = log(1/(2 eps)) / (log d - log(d-2k+1)),
against n_1 = log(1/(2 eps)) / (log d - log(d-1)) for 1-Layer; n_1 / n -> 2k - 1 as d -> infinity.

Proposition 6: if all l in S_tr satisfy l >= k and ``|l - l'| >= 2k`` for l != l', then M_tr^T M_tr = (sum_l c_l^2) I_k,
m = k, w_inf = (w1^0, M_tr w1^0 / sum c_l^2) up to scale, and a test point at distance 0 < s < k from a training
position has margin proportional to sum_{i=1}^{k-s} w_i w_{i+s}, whose law is symmetric for w ~ N(0, b^2 I):
flipping the signs of w on S_s = {i : floor((i-1)/s) even} flips the sign of that sum.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from cnnbias import validate as V
from cnnbias.theory.convlinear import shift_matrix
from cnnbias.theory.primitive import is_primitive_batch


# ----------------------------------------------------------------------------------------------------------------
# training sets as positions
# ----------------------------------------------------------------------------------------------------------------
def sample_positions(d: int, n: int, gens: Sequence[torch.Generator]) -> Tensor:
    """0-based positions [R, n], i.i.d. uniform on [d] (the law of the non-zero positions of a Task-Cls D_tr)."""
    V.integer("d", d, 1)
    V.integer("n", n, 1)
    V.generators("gens", gens)
    return torch.stack([torch.randint(0, d, (n,), generator=g) for g in gens])


def _check_pos(pos: Tensor, d: int) -> None:
    V.integer("d", d, 1)
    V.tensor("pos", pos, 2)
    V.index_in_range("pos", pos, d)


def occupancy(pos: Tensor, d: int) -> Tensor:
    """Bool [R, d]: S_tr as an indicator."""
    _check_pos(pos, d)
    occ = torch.zeros(pos.shape[0], d, dtype=torch.float64, device=pos.device)
    occ.scatter_add_(1, pos, torch.ones_like(pos, dtype=torch.float64))
    return occ > 0


def m_train_positions(pos: Tensor, d: int, k: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """M_tr [R, d, k] = A_c with c = counts / n for Task-Cls positions pos [R, n]."""
    _check_pos(pos, d)
    V.integer("k", k, 1, d)
    if pos.shape[1] == 0:
        raise ValueError("pos must hold at least one position per run (shape [R, n] with n >= 1)")
    c = torch.zeros(pos.shape[0], d, dtype=dtype, device=pos.device)
    c.scatter_add_(
        1, pos, torch.full(pos.shape, 1.0 / pos.shape[1], dtype=dtype, device=pos.device)
    )
    return shift_matrix(c, k)


# ----------------------------------------------------------------------------------------------------------------
# Theorem 4's second term and the 1-Layer error
# ----------------------------------------------------------------------------------------------------------------
def _check_dk(d: int, k: int) -> None:
    V.integer("d", d, 1)
    V.integer("k", k, 1)
    if k > d:
        raise ValueError(f"k must be an integer in [1, d] = [1, {d}], got k={k}")


def near_count(d: int, k: int) -> Tensor:
    """near(l) for l = 1..d: ``#{l' in [d]: |l' - l| < k}``  (float64 [d])."""
    _check_dk(d, k)
    l = torch.arange(1, d + 1)
    return (torch.clamp(l + k - 1, max=d) - torch.clamp(l - k + 1, min=1) + 1).double()


def near_count_paper(d: int, k: int) -> Tensor:
    """The paper's d - (d - k - min{k, l, d-l+1} + 1) = k - 1 + min{k, l, d-l+1}."""
    _check_dk(d, k)
    l = torch.arange(1, d + 1)
    return (k - 1 + torch.minimum(torch.minimum(torch.full_like(l, k), l), d - l + 1)).double()


def _as_n(n: int | Sequence[int] | Tensor) -> Tensor:
    """Training sizes as float64 [len(n)]; each must be a finite number >= 0 (a ValueError otherwise)."""
    if isinstance(n, (str, bytes)) or isinstance(n, bool):
        raise TypeError(f"n must be a training size or a sequence of sizes (numbers >= 0), got {n!r}")
    try:
        out = torch.as_tensor(n, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"n must be a training size or a sequence of sizes (numbers >= 0), got {n!r}") from None
    if not bool((out >= 0).all()) or not bool(torch.isfinite(out).all()):
        raise ValueError(f"n must hold finite training sizes >= 0, got {out.tolist()}")
    return out


def thm4_second_term(d: int, k: int, n: int | Sequence[int] | Tensor) -> Tensor:
    """1/2 E_{l~U[d]} ((d - near(l))/d)^n, exactly (averaged over l), for each n: [len(n)]."""
    far = (d - near_count(d, k)) / d  # [d]
    return 0.5 * (far[None, :] ** _as_n(n)[:, None]).mean(-1)


def err2(d: int, k: int, n: int | Sequence[int] | Tensor) -> Tensor:
    """Err2 = 1/2 ((d - 2k + 1)/d)^n (the paper's approximation for k << d, Fig. 4); needs 2k - 1 <= d."""
    _check_dk(d, k)
    if 2 * k - 1 > d:
        raise ValueError(f"err2 needs 2k - 1 <= d (else (d - 2k + 1)/d < 0 is no probability); got d={d}, k={k}")
    return 0.5 * ((d - 2 * k + 1) / d) ** _as_n(n)


def second_term_upper(d: int, k: int, n: int | Sequence[int] | Tensor) -> Tensor:
    """The paper's l-independent upper bound 1/2 ((d - k)/d)^n."""
    _check_dk(d, k)
    return 0.5 * ((d - k) / d) ** _as_n(n)


def one_layer_error(d: int, n: int | Sequence[int] | Tensor) -> Tensor:
    """E_1Layer = 1/2 ((d - 1)/d)^n (Section 3.3.2)."""
    V.integer("d", d, 1)
    return 0.5 * ((d - 1) / d) ** _as_n(n)


def brute_force_second_term(d: int, k: int, n: int) -> float:
    """1/2 E_l Pr(all l' in S_tr far from l) by enumerating all d^n training multisets (small d, n only)."""
    _check_dk(d, k)
    V.integer("n", n, 1)
    if d**n > 2_000_000:
        raise ValueError(f"d^n = {d**n} too large for enumeration")
    total = 0
    for tup in itertools.product(range(1, d + 1), repeat=n):
        for l in range(1, d + 1):
            total += all(abs(lp - l) >= k for lp in tup)
    return 0.5 * total / (d**n * d)


# ----------------------------------------------------------------------------------------------------------------
# Lemma 5 and Err1
# ----------------------------------------------------------------------------------------------------------------
def lemma5_event(occ: Tensor, k: int) -> Tensor:
    """Omega~_tr [R]: some 1-based i with k <= i <= d and i-1, i both in S_tr (occ [R, d] bool)."""
    V.tensor("occ", occ, 2, kind="bool")
    V.integer("k", k, 1)
    d = occ.shape[1]
    lo = max(k, 2)  # i - 1 >= 1
    if lo > d:
        return torch.zeros(occ.shape[0], dtype=torch.bool, device=occ.device)
    # 0-based: i0 = i - 1 in [lo-1, d-1], need occ[i0 - 1] & occ[i0]
    return (occ[:, lo - 2 : d - 1] & occ[:, lo - 1 : d]).any(-1)


def err1_mc(
    d: int, k: int, ns: Sequence[int], draws: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Monte Carlo Err1(n) = Pr(Omega~^c_tr) and, on the same draws, Pr(M_tr^T M_tr not primitive): [len(ns)] each."""
    _check_dk(d, k)
    V.integer("draws", draws, 1)
    V.generator("generator", generator)
    if isinstance(ns, (str, bytes)) or not isinstance(ns, Sequence) or len(ns) == 0:
        raise ValueError(f"ns must be a non-empty sequence of training sizes (integers >= 1), got {ns!r}")
    for n in ns:
        V.integer("ns[i]", n, 1)
    e1, npr = [], []
    for n in ns:
        pos = torch.randint(0, d, (draws, int(n)), generator=generator)
        e1.append((~lemma5_event(occupancy(pos, d), k)).double().mean())
        M = m_train_positions(pos, d, k)
        npr.append((~is_primitive_batch(M.transpose(-1, -2) @ M, atol=1e-14)).double().mean())
    return torch.stack(e1), torch.stack(npr)


def _stirling2_row(n: int) -> list[int]:
    """Stirling numbers of the second kind S(n, j), j = 0..n (exact integers)."""
    row = [1]  # S(0, 0)
    for m in range(1, n + 1):
        nxt = [0] * (m + 1)
        for j in range(1, m + 1):
            nxt[j] = j * (row[j] if j < len(row) else 0) + row[j - 1]
        row = nxt
    return row


def err1_exact(d: int, k: int, n: int) -> float:
    """Err1(n) = Pr(Omega~^c_tr) exactly: the probability that ``n`` i.i.d. uniform positions on ``[d]`` leave
    no ``i`` with ``k <= i <= d`` and ``i-1, i`` both occupied (Lemma 5's event fails).

    Counting: the event depends only on the set ``S`` of distinct positions.  Positions ``1..k-2`` are
    free; on the path ``k-1..d`` (``L = d-k+2`` positions, or ``1..d`` when ``k = 1``) ``S`` holds no two
    consecutive ones, which ``C(L-b+1, b)`` subsets of size ``b`` do.  A given set of size ``j`` is hit
    exactly by ``j! S(n, j)`` of the ``d^n`` sequences (surjections), so

    ``Err1 = d^-n sum_j j! S(n, j) sum_{a+b=j} C(k-2, a) C(L-b+1, b)``,

    evaluated in exact integer arithmetic (then rounded once to a float).  Fig. 4a of the paper estimates
    it by Monte Carlo (:func:`err1_mc`), which reads 0 once it falls below ``1/draws``.
    """
    _check_dk(d, k)
    V.integer("n", n, 1)
    free = max(k - 2, 0)
    path = d - free
    s2 = _stirling2_row(int(n))
    total = 0
    for j in range(0, min(int(n), d) + 1):
        sets = sum(math.comb(free, a) * math.comb(path - (j - a) + 1, j - a)
                   for a in range(0, min(free, j) + 1) if path - (j - a) + 1 >= j - a)
        total += sets * math.factorial(j) * s2[j]
    return total / d ** int(n)


# ----------------------------------------------------------------------------------------------------------------
# sample complexity
# ----------------------------------------------------------------------------------------------------------------
def n_conv_closed(d: int, k: int, eps: float) -> float:
    """n solving 1/2 ((d-2k+1)/d)^n = eps."""
    _check_dk(d, k)
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 1/2), got {eps}")
    if 2 * k - 1 >= d:
        raise ValueError(f"need 2k - 1 < d, got k={k}, d={d}")
    return math.log(1 / (2 * eps)) / (math.log(d) - math.log(d - 2 * k + 1))


def n_one_layer_closed(d: int, eps: float) -> float:
    """n solving 1/2 ((d-1)/d)^n = eps."""
    return n_conv_closed(d, 1, eps)


def n_for_error_exact(d: int, k: int, eps: float) -> int:
    """Smallest integer n with the exact second term of Theorem 4 <= eps (monotone in n; bisection)."""
    _check_dk(d, k)
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 1/2), got {eps}")
    far = (d - near_count(d, k)) / d

    def f(n: int) -> float:
        return float(0.5 * (far**n).mean())

    hi = 1
    while f(hi) > eps:
        hi *= 2
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if f(mid) > eps:
            lo = mid
        else:
            hi = mid
    return hi


# ----------------------------------------------------------------------------------------------------------------
# Proposition 6
# ----------------------------------------------------------------------------------------------------------------
def sample_sparse_positions(d: int, k: int, n: int, gens: Sequence[torch.Generator]) -> Tensor:
    """0-based sorted positions [R, n], uniform over sets with all l >= k (1-based) and gaps >= 2k (Prop. 6).

    Bijection q_i = l_i - (i-1)(2k-1) maps such sets to n distinct values in [k, d - (n-1)(2k-1)].
    """
    _check_dk(d, k)
    V.integer("n", n, 1)
    V.generators("gens", gens)
    top = d - (n - 1) * (2 * k - 1)
    if top - k + 1 < n:
        raise ValueError(f"no sparse set with n={n} positions for d={d}, k={k}")
    out = []
    for g in gens:
        q = torch.randperm(top - k + 1, generator=g)[:n].sort().values + k  # 1-based q in [k, top]
        out.append(q + torch.arange(n) * (2 * k - 1) - 1)
    return torch.stack(out)


def flip_set(k: int, s: int) -> Tensor:
    """Bool [k]: S_s = {i in [k] : floor((i-1)/s) even}; every edge (i, i+s) has exactly one end in S_s."""
    V.integer("k", k, 2)
    V.integer("s", s)
    if not 1 <= s < k:
        raise ValueError(f"s must satisfy 1 <= s < k={k}, got {s}")
    i = torch.arange(k)
    return (i // s) % 2 == 0


def lag_sum(w: Tensor, s: int) -> Tensor:
    """sum_{i=1}^{k-s} w_i w_{i+s} for w [..., k]."""
    V.floating_tensor("w", w)
    if w.dim() == 0:
        raise ValueError("w must have shape [..., k] (at least one dimension), got a 0-d tensor")
    V.integer("s", s, 0, w.shape[-1] - 1)
    return (w[..., : w.shape[-1] - s] * w[..., s:]).sum(-1)


def far_mask(occ: Tensor, k: int) -> Tensor:
    """Bool [R, d]: positions l with ``|l' - l| >= k`` for every l' in S_tr (occ [R, d] bool)."""
    V.tensor("occ", occ, 2, kind="bool")
    _check_dk(occ.shape[1], k)
    d = occ.shape[1]
    f = occ.double()[:, None, :]
    ker = torch.ones(1, 1, 2 * k - 1, dtype=torch.float64, device=occ.device)
    near = torch.nn.functional.conv1d(f, ker, padding=k - 1)[:, 0, :d]
    return near == 0


def primitive_identity_error(pos: Tensor, d: int, k: int) -> Tensor:
    """1/2 * fraction of far positions [R]: Theorem 4's value of the Theorem-2 error when M_tr^T M_tr is primitive."""
    _check_dk(d, k)
    return 0.5 * far_mask(occupancy(pos, d), k).double().mean(-1)


# ----------------------------------------------------------------------------------------------------------------
# Fig. 4(b): where the bound of Theorem 4 crosses the 1-Layer error
# ----------------------------------------------------------------------------------------------------------------
def bound_crossing_n(d: int, k: int, n_max: int, exact_second_term: bool = False) -> int | None:
    """Smallest integer n in [1, n_max] with Err1(n) + Err2(n) < E_1Layer(n) (Fig. 4b), Err1 exact
    (:func:`err1_exact`), Err2 the paper's approximation (or, with ``exact_second_term``, the exact second
    term :func:`thm4_second_term`); None if the bound stays above E_1Layer up to n_max."""
    _check_dk(d, k)
    V.integer("n_max", n_max, 1)
    for n in range(1, n_max + 1):
        second = thm4_second_term(d, k, n) if exact_second_term else err2(d, k, n)
        if err1_exact(d, k, n) + float(second[0]) < float(one_layer_error(d, n)[0]):
            return n
    return None
