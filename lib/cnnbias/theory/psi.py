"""Pattern Statistics Inductive Bias (PSI): detection sets, detection ratios, pattern statistics.

Reference: "On the Inductive Bias of a CNN for Distributions with Orthogonal Patterns"
(book key ``psi_orthogonal``), Sections 3, 4, 6 and App. C, E.1.

Conventions (shared with :mod:`cnnbias.data.patterns`): patterns are referred to by index; pattern 0 is the
positive pattern p1 (P+ = {p1}), pattern 1 the negative pattern p2 (P- = {p2}), patterns 2..L-1 are spurious (Ps).
The network N_W (Eq. 1) has weights ``W [R, 2k, d]`` (a leading run axis R): rows 0..k-1 are the filters
w(1..k) (read out +1), rows k..2k-1 are u(1..k) (read out -1).

With orthonormal patterns ``P [L, d]`` the dot products are ``D = W P^T [R, 2k, L]``; with one-hot patterns
(``P = I_d``, the paper's experiments) ``D`` is ``W`` itself, so no product is formed (``patterns=None``).

Detection sets (Eq. 2), for i in Ps u P+:

    W+(i) = { j : argmax_{l in Ps u P+} w(j).p_l = i  and  w(j).p_i > 0 },   U+(i) likewise with u(j),

and W-(i), U-(i) for i in Ps u P- with the argmax over Ps u P-.  Ties inside the argmax (probability zero
under Gaussian initialization) go to the LOWEST pattern index; the paper leaves the choice arbitrary
(footnote 5: "the weight is assigned arbitrarily to one of them").

Detector responses: M_w^+(i) = sum_{j in W+(i)} w(j).p_i, M_u^+(i) = sum_{j in U+(i)} u(j).p_i, and M_w^-(i),
M_u^-(i) with the "-" sets.  Positive detection ratios M_u^+(i)/M_w^+(1) (i in Ps u P+), negative detection
ratios M_w^-(i)/M_u^-(2) (i in Ps u P-).

Pattern statistics (Eq. 4): s_i = (1/m) sum_j y_j 1{p_i in x_j}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from cnnbias import validate as V

__all__ = [
    "Detection",
    "c_star",
    "detection",
    "eq3_lower_bounds",
    "eq9_holds",
    "negative_ratios",
    "pattern_dots",
    "pattern_statistics",
    "positive_ratios",
    "presence",
    "psi_bounds",
    "psi_holds",
    "thm61_events",
    "thm61_sample_size",
    "thm61_spurious_threshold",
]

POS = 0  # index of p1 (P+)
NEG = 1  # index of p2 (P-)


def _check_W(W: Tensor) -> None:
    if not isinstance(W, Tensor) or W.dim() != 3:
        raise ValueError(f"W must be a tensor [R, 2k, d]; got shape {getattr(W, 'shape', None)}")
    V.floating_tensor("W", W)
    if W.shape[1] % 2 != 0 or W.shape[1] == 0:
        raise ValueError(f"W must have an even, positive number of channels 2k; got {W.shape[1]}")


def pattern_dots(W: Tensor, patterns: Tensor | None = None) -> Tensor:
    """Dot products D[r, c, l] = W[r, c] . p_l.

    ``patterns=None`` means one-hot patterns p_l = e_l (:math:`|P| = d`), for which D = W (no product formed).
    Otherwise ``patterns [L, d]`` (orthonormal rows) and D = W @ P^T.
    """
    _check_W(W)
    if patterns is None:
        return W
    V.floating_tensor("patterns", patterns)
    if patterns.dim() != 2 or patterns.shape[1] != W.shape[2]:
        raise ValueError(f"patterns must be [L, d={W.shape[2]}]; got {tuple(patterns.shape)}")
    if patterns.shape[0] < 3:
        raise ValueError(f"patterns needs at least 3 rows (p1, p2, one spurious); got {patterns.shape[0]}")
    return W @ patterns.to(W).T


@dataclass
class Detection:
    """Detection sets and detector responses of a batch of networks (Eq. 2 and after).

    ``*_set`` are LongTensors [R, k]: the pattern index a filter detects, or -1 if it detects none.
    ``M_*`` are Tensors [R, L]: the summed responses M(i); entries for the excluded pattern (index 1 for
    the "+" quantities, index 0 for the "-" ones) are 0.
    """

    w_pos_set: Tensor
    u_pos_set: Tensor
    w_neg_set: Tensor
    u_neg_set: Tensor
    M_w_pos: Tensor
    M_u_pos: Tensor
    M_w_neg: Tensor
    M_u_neg: Tensor


def _assign(D: Tensor, excluded: int) -> tuple[Tensor, Tensor]:
    """For dots D [R, k, L]: detected index (argmax over l != excluded, first index on ties; -1 if the
    maximum is <= 0) and the dot product with the detected pattern (0 where none)."""
    Dm = D.clone()
    Dm[..., excluded] = -math.inf
    val, arg = Dm.max(dim=-1)  # torch returns the first maximal index on ties
    det = val > 0
    arg = torch.where(det, arg, torch.full_like(arg, -1))
    val = torch.where(det, val, torch.zeros_like(val))
    return arg, val


def _sum_by(assign: Tensor, val: Tensor, L: int) -> Tensor:
    R = assign.shape[0]
    out = torch.zeros(R, L + 1, dtype=val.dtype, device=val.device)
    idx = torch.where(assign >= 0, assign, torch.full_like(assign, L))
    out.scatter_add_(1, idx, val)
    return out[:, :L]


def detection(W: Tensor, patterns: Tensor | None = None) -> Detection:
    """Detection sets W+(i), U+(i), W-(i), U-(i) and responses M_w^+, M_u^+, M_w^-, M_u^- (Eq. 2).

    Args:
        W: [R, 2k, d], rows 0..k-1 are w(1..k), rows k..2k-1 are u(1..k).
        patterns: None for one-hot patterns (L = d), else [L, d] orthonormal rows (index 0 = p1, 1 = p2).
    """
    D = pattern_dots(W, patterns)
    k = W.shape[1] // 2
    L = D.shape[-1]
    if L < 3:
        raise ValueError(f"need at least 3 patterns; got {L}")
    Dw, Du = D[:, :k], D[:, k:]
    w_pos, w_pos_val = _assign(Dw, NEG)
    u_pos, u_pos_val = _assign(Du, NEG)
    w_neg, w_neg_val = _assign(Dw, POS)
    u_neg, u_neg_val = _assign(Du, POS)
    return Detection(
        w_pos_set=w_pos,
        u_pos_set=u_pos,
        w_neg_set=w_neg,
        u_neg_set=u_neg,
        M_w_pos=_sum_by(w_pos, w_pos_val, L),
        M_u_pos=_sum_by(u_pos, u_pos_val, L),
        M_w_neg=_sum_by(w_neg, w_neg_val, L),
        M_u_neg=_sum_by(u_neg, u_neg_val, L),
    )


def positive_ratios(det: Detection) -> Tensor:
    """Positive detection ratios M_u^+(i) / M_w^+(1), [R, L]; column 1 (p2, not in Ps u P+) is NaN.
    A run with M_w^+(1) = 0 gets +inf (0/0 -> inf too: no detector of p1 at all)."""
    _check_det(det)
    return _ratio(det.M_u_pos, det.M_w_pos[:, POS], NEG)


def negative_ratios(det: Detection) -> Tensor:
    """Negative detection ratios M_w^-(i) / M_u^-(2), [R, L]; column 0 (p1) is NaN."""
    _check_det(det)
    return _ratio(det.M_w_neg, det.M_u_neg[:, NEG], POS)


def _check_det(det: Detection) -> None:
    if not isinstance(det, Detection):
        raise TypeError(f"det must be a Detection (see detection(W)), got {type(det).__name__}")


def _check_L(L: int) -> None:
    V.integer("L", L, 1)


def _check_s(s: Tensor) -> None:
    V.floating_tensor("s", s)
    if s.dim() < 1 or s.shape[-1] < 3:
        raise ValueError(f"s must have shape [..., L] with L >= 3 patterns (p1, p2, spurious), got {tuple(s.shape)}")


def _ratio(num: Tensor, den: Tensor, excluded: int) -> Tensor:
    den = den[:, None]
    r = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)),
                    torch.full_like(num, math.inf))
    r = r.clone()
    r[:, excluded] = math.nan
    return r


def presence(idx: Tensor, L: int) -> Tensor:
    """Presence indicators 1{p_l in x_j} as a bool tensor [..., m, L] from index samples idx [..., m, n]."""
    _check_L(L)
    V.tensor("idx", idx)
    if idx.dim() < 1:
        raise ValueError("idx must have shape [..., m, n], got a 0-d tensor")
    if idx.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"idx must be an integer tensor; got {idx.dtype}")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= L):
        raise ValueError(f"idx entries must lie in [0, L={L}); got range [{int(idx.min())}, {int(idx.max())}]")
    out = torch.zeros(*idx.shape[:-1], L, dtype=torch.bool, device=idx.device)
    out.scatter_(-1, idx.long(), True)
    return out


def pattern_statistics(idx: Tensor, y: Tensor, L: int, chunk: int = 4096) -> Tensor:
    """s_i = (1/m) sum_j y_j 1{p_i in x_j} (Eq. 4), for idx [R, m, n] (or [m, n]) and y [R, m] (or [m]).

    Returns [R, L] (or [L]).  A pattern repeated inside one sample counts once.  Chunked over m.
    """
    _check_L(L)
    V.integer("chunk", chunk, 1)
    V.tensor("idx", idx)
    V.labels_pm1("y", y)
    if idx.dim() != y.dim() + 1 or idx.shape[:-1] != y.shape:
        raise ValueError(f"idx [.., m, n] and y [.., m] disagree: {tuple(idx.shape)} vs {tuple(y.shape)}")
    m = y.shape[-1]
    if m == 0:
        raise ValueError("y must contain at least one sample (m >= 1)")
    acc = None
    for a in range(0, m, chunk):
        pres = presence(idx[..., a:a + chunk, :], L)
        part = (y[..., a:a + chunk, None].to(torch.float64) * pres).sum(-2)
        acc = part if acc is None else acc + part
    return (acc / m).to(y.dtype if y.is_floating_point() else torch.float64)


def psi_bounds(s: Tensor, b: float) -> tuple[Tensor, Tensor]:
    """The s-dependent parts of Eqs. 5-6: b*max(-s_i/s_1, 0) ([R, L], column 1 NaN) and
    b*max(-s_i/s_2, 0) ([R, L], column 0 NaN)."""
    _check_s(s)
    V.positive("b", b)
    pos = b * torch.clamp(-s / s[..., POS:POS + 1], min=0.0)
    neg = b * torch.clamp(-s / s[..., NEG:NEG + 1], min=0.0)
    pos = pos.clone()
    neg = neg.clone()
    pos[..., NEG] = math.nan
    neg[..., POS] = math.nan
    return pos, neg


def c_star(W: Tensor, s: Tensor, m: int, b: float = 2.0, patterns: Tensor | None = None,
           only_present: Tensor | None = None) -> Tensor:
    """c* of Eq. 10 (App. E.1): the smallest c for which the trained network satisfies Eqs. 5-6 with this b,

        c* = sqrt(m) * max{ max_{i in Ps u P+} [ M_u^+(i)/M_w^+(1) - b max(-s_i/s_1, 0) ],
                            max_{i in Ps u P-} [ M_w^-(i)/M_u^-(2) - b max(-s_i/s_2, 0) ], 0 }.

    The OCR of Eq. 10 shows the constant 2 in place of b: the experiments fix b = 2 (Sec. 7), and
    solving Eqs. 5-6 for c gives exactly this expression (Eq. 10 is "c such that both inequalities hold,
    minimised"), so we read the 2 as b.

    Args:
        W: [R, 2k, d]; s: [R, L] pattern statistics of each run's training set; m: training-set size.
        only_present: optional bool [R, L]; if given, the max runs only over patterns with True
            (default: all patterns of P, as in the definition).
    Returns: [R] (inf where M_w^+(1) = 0 or M_u^-(2) = 0).
    """
    V.integer("m", m, 1)
    V.positive("b", b)
    _check_s(s)
    if s.shape[0] != W.shape[0] and s.dim() == 2:
        raise ValueError(f"s must have one row per run: shape [R={W.shape[0]}, L], got {tuple(s.shape)}")
    if only_present is not None:
        V.tensor("only_present", only_present, kind="bool")
    det = detection(W, patterns)
    rp, rn = positive_ratios(det), negative_ratios(det)
    bp, bn = psi_bounds(s.to(rp), b)
    ep, en = rp - bp, rn - bn
    if only_present is not None:
        ep = torch.where(only_present, ep, torch.full_like(ep, math.nan))
        en = torch.where(only_present, en, torch.full_like(en, math.nan))
    ep = torch.nan_to_num(ep, nan=-math.inf, posinf=math.inf)
    en = torch.nan_to_num(en, nan=-math.inf, posinf=math.inf)
    worst = torch.maximum(ep.max(-1).values, en.max(-1).values)
    return math.sqrt(m) * torch.clamp(worst, min=0.0)


def psi_holds(W: Tensor, s: Tensor, m: int, b: float, c: float, patterns: Tensor | None = None) -> Tensor:
    """Whether each network satisfies Eqs. 5 and 6 of Definition 4.1 with constants (b, c): bool [R]."""
    V.positive("c", c)
    return c_star(W, s, m, b, patterns) <= c * (1 + 1e-12)


def eq3_lower_bounds(W: Tensor, patterns: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Right-hand sides of Eq. 3 and its negative-class analogue, [R] each:

        N_W(x+)  >= M_w^+(1) - sum_{i in Ps u P+} M_u^+(i)      for every positive point x+,
        -N_W(x-) >= M_u^-(2) - sum_{i in Ps u P-} M_w^-(i)      for every negative point x-.

    (Only the patterns of P can occur in x, which is what makes these bounds valid.)
    """
    det = detection(W, patterns)
    lb_pos = det.M_w_pos[:, POS] - det.M_u_pos.sum(-1)
    lb_neg = det.M_u_neg[:, NEG] - det.M_w_neg.sum(-1)
    return lb_pos, lb_neg


def eq9_holds(W: Tensor, d: int, patterns: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The Eq. 9 condition of App. C/D: all spurious detection ratios below :math:`1/|P|` (here 1/d).

    Returns (holds [R] bool, worst ratio [R]) where worst = max over i in Ps of both the positive and the
    negative detection ratio.
    """
    V.integer("d", d, 1)
    det = detection(W, patterns)
    rp, rn = positive_ratios(det), negative_ratios(det)
    worst = torch.maximum(rp[:, 2:].max(-1).values, rn[:, 2:].max(-1).values)
    return worst < 1.0 / d, worst


def thm61_sample_size(P: int | Tensor, b: float = 1.0, c: float = 1.0) -> float | Tensor:
    """Sample size of Theorem 6.1: ``m > 300 b^2 c^2 |P|^2 log|P|`` (b, c >= 1)."""
    V.real("b", b, 1)
    V.real("c", c, 1)
    if isinstance(P, Tensor):
        if P.numel() and not bool((P >= 2).all()):
            raise ValueError(f"|P| must be >= 2 (every entry of P); got min {P.min().item()}")
        return 300 * b**2 * c**2 * P.double() ** 2 * torch.log(P.double())
    V.integer("P", P, 2)
    return 300 * b**2 * c**2 * P**2 * math.log(P)


def thm61_spurious_threshold(d: int, m: int) -> float:
    """Concentration threshold of App. C: ``|s_i| <= 4 sqrt(log(d)/m)`` for every spurious pattern (Hoeffding:
    each s_i is a mean of m i.i.d. variables in [-1, 1] with mean 0, so ``P(|s_i| > t) <= 2 exp(-m t^2 / 2)``,
    i.e. <= 2/d^8 at this t; the paper states the weaker 2/d^4, and by a union bound over the spurious
    patterns all pass with probability >= 1 - 2/d^3)."""
    V.integer("d", d, 1)
    V.integer("m", m, 1)
    return 4.0 * math.sqrt(math.log(d) / m)


def thm61_events(s: Tensor, m: int, d: int) -> dict[str, Tensor]:
    """The high-probability events of the proof of Theorem 6.1 (App. C) for statistics s [R, L]:

    - ``spurious``: ``|s_i| <= 4 sqrt(log d / m)`` for all i in Ps;
    - ``s1``: s_1 >= 1/4 and ``s2``: s_2 <= -1/4 (E s_1 = 1/2, E s_2 = -1/2).

    Returns bool [R] for each, plus ``max_spurious`` = ``max_i |s_i|`` [R].
    """
    _check_s(s)
    t = thm61_spurious_threshold(d, m)
    ms = s[..., 2:].abs().max(-1).values
    return {
        "spurious": ms <= t,
        "s1": s[..., POS] >= 0.25,
        "s2": s[..., NEG] <= -0.25,
        "max_spurious": ms,
    }
