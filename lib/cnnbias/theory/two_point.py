"""Theorem 7.1 of the PSI paper (book key ``psi_orthogonal``): gradient descent on two training points.

Setting (Sec. 7 and App. F): one-hot patterns in R^d, S = {(x+, +1), (x-, -1)} where x+ = {p1} u S_p and
x- = {p2} u S_p share the same n - 1 spurious patterns S_p.  P_T = {p1, p2} u S_p.  The network is N_W of
Eq. 1 (rows 0..k-1 of ``W [R, 2k, d]`` are w(1..k), read out +1; rows k..2k-1 are u(1..k), read out -1),
the loss is the mean hinge loss over the two points, (1/2) sum max{0, 1 - y N_W(x)}, and full-batch gradient
descent runs with constant learning rate eta = c_eta / k from W_0 ~ N(0, sigma_g^2).

Reading of the (OCR-damaged) App. F.  The text prints "eta = c_eta"; we read eta = c_eta / k, the scaling of
the same authors' XORD analysis, because only then do the statements of App. F fit together: T <= O(1/c_eta)
independent of k (Thm 7.1, Lemma F.6), "M_u^+(i) <= c_eta" for a SUM over up to k filters each moved by at most
eta/2 (F.3), and N_{W_t}(x+) ~ c_eta t gamma / 2 with no factor k (proof of Lemma F.6).  Each step adds
(eta/2) p = (c_eta/(2k)) p to a filter, the 1/2 coming from the mean over the two points.  Below h = eta/2.

Lemma F.5 (for 1 <= t <= t*, t* the first step at which a point reaches margin 1, and ``M = max |W_0| << eta``)::

    1. j not in A_w:                 w_t = w_0 - alpha h p2,  alpha = 1{j in W_0^-(2)}
    2. j in W_0^+(1):                w_t = w_0 + h t p1 - h sum_{i in P_T minus {1}} alpha_i p_i
    3. j in W_0^+(i) n W_0^-(i):     w_t = w_0                       (i spurious)
    4. j in W_0^+(i) n W_0^-(2):     w_t = w_0 - h p2 + h p_i
    5.-8. the same for u with the roles of p1 and p2 (and of + and -) exchanged.

Here the detection sets are those of Eq. 11-12 (argmax over P_T minus {2}, resp. P_T minus {1}), and
A_w = union_{i in P_T minus {2}} W_0^+(i), A_u = union_{i in P_T minus {1}} U_0^-(i).  The alpha_i of part 2
are not random: at each step x- subtracts h p_l from the filter for its currently largest positive
dot product l in P_T minus {1}, which then turns negative (M << eta), so after t steps exactly the t largest
positive initial dot products (or all of them if fewer) have been subtracted.  :func:`lemma_f5_predict`
evaluates these closed forms.

Lemma F.6 / proof: for 1 <= t <= t*, ``N_{W_t}(x+) = h (t |B2| + |B4| - |B8|) + O(kM)`` and
``-N_{W_t}(x-) = h (t |B6| + |B8| - |B4|) + O(kM)``, where B_q is the set of filters of part q; and
``|B2|/k, |B6|/k -> gamma`` = (1 - 2^-n)/n (Eq. 14), so T ~ 2/(c_eta gamma).  Theorem 7.1: at convergence PSI
holds with b = 1, c = sqrt(18 c_eta) (m = 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from cnnbias import validate as V

__all__ = [
    "TwoPointRun",
    "TwoPointSet",
    "categories",
    "gamma",
    "gd_two_point",
    "initial_set_sizes",
    "lemma_f3_probability",
    "lemma_f5_predict",
    "predicted_convergence",
    "sample_two_point",
]


@dataclass
class TwoPointSet:
    """x_plus, x_minus: LongTensor [R, n] of pattern indices (0 = p1, 1 = p2, spurious >= 2)."""

    x_plus: Tensor
    x_minus: Tensor
    d: int

    @property
    def idx(self) -> Tensor:  # [R, 2, n]
        return torch.stack([self.x_plus, self.x_minus], dim=1)

    @property
    def y(self) -> Tensor:  # [R, 2]
        R = self.x_plus.shape[0]
        return torch.tensor([1.0, -1.0], dtype=torch.float64).expand(R, 2).clone()


def gamma(n: int) -> float:
    """gamma = (1 - 2^-n)/n (Eq. 14): the probability that a Gaussian filter detects p1 among n patterns."""
    V.integer("n", n, 1)
    return (1 - 2.0 ** (-n)) / n


def sample_two_point(R: int, n: int, d: int, generators: list[torch.Generator]) -> TwoPointSet:
    """Draw R two-point training sets: n - 1 distinct spurious patterns from {2..d-1} shared by x+ and x-."""
    V.integer("R", R, 1)
    V.integer("n", n, 2)
    V.integer("d", d, 3)
    if n - 1 > d - 2:
        raise ValueError(f"need 2 <= n and n - 1 <= d - 2; got n={n}, d={d}")
    V.generators("generators", generators)
    if len(generators) != R:
        raise ValueError(f"generators must have length R={R}; got {len(generators)}")
    sp = torch.stack([2 + torch.randperm(d - 2, generator=g)[: n - 1] for g in generators])
    xp = torch.cat([torch.zeros(R, 1, dtype=torch.long), sp], dim=1)
    xm = torch.cat([torch.ones(R, 1, dtype=torch.long), sp], dim=1)
    return TwoPointSet(xp, xm, d)


def _net(W: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    """N_W on one-hot index samples idx [R, m, n]: outputs [R, m] and the argmax pattern per channel
    [R, m, C] (-1 where the channel's max response is <= 0)."""
    R, C, d = W.shape
    G = torch.gather(W[:, :, None, :].expand(R, C, idx.shape[1], d), 3,
                     idx[:, None, :, :].expand(R, C, idx.shape[1], idx.shape[2]))  # [R, C, m, n]
    val, pos = G.max(-1)  # [R, C, m]
    am = torch.gather(idx[:, None].expand(R, C, *idx.shape[1:]), 3, pos[..., None])[..., 0]
    am = torch.where(val > 0, am, torch.full_like(am, -1))
    resp = val.clamp(min=0)
    k = C // 2
    out = resp[:, :k].sum(1) - resp[:, k:].sum(1)
    return out, am.transpose(1, 2)


@dataclass
class TwoPointRun:
    W: Tensor            # final weights [R, 2k, d]
    T: Tensor            # LongTensor [R]: GD steps until the training loss is 0 (or T_max)
    converged: Tensor    # bool [R]
    history: dict[int, Tensor]  # step t -> W_t [R, 2k, d] for the recorded steps
    outputs: Tensor      # [T_max + 1, R, 2]: (N(x+), N(x-)) along the way

    def first_margin(self) -> Tensor:
        """t* of App. F: the first step at which some training point has margin >= 1, LongTensor [R]."""
        y = torch.tensor([1.0, -1.0], dtype=self.outputs.dtype)
        done = ((y * self.outputs) >= 1).any(-1)  # [T+1, R]
        t = torch.arange(done.shape[0])[:, None].expand_as(done)
        return torch.where(done, t, torch.full_like(t, done.shape[0])).min(0).values


def gd_two_point(W0: Tensor, data: TwoPointSet, c_eta: float, T_max: int,
                 record: bool | list[int] = False) -> TwoPointRun:
    """Full-batch GD on the mean hinge loss of the two points, learning rate c_eta / k, exact subgradient
    (ReLU'(0) = 0; the max picks the argmax pattern).  Runs with zero loss stop changing (GD fixed point).

    record: True keeps every W_t, a list keeps those steps, False none (``history`` is a dict t -> W_t)."""
    _check_W0_data(W0, data)
    V.positive("c_eta", c_eta)
    V.integer("T_max", T_max, 1)
    if not isinstance(record, bool):
        if isinstance(record, (str, bytes)) or not hasattr(record, "__iter__"):
            raise TypeError(f"record must be True, False or a list of steps, got {record!r}")
        for t in record:
            V.integer("record[i]", t, 0)
    W = W0.clone()
    R, C, d = W.shape
    k = C // 2
    idx = data.idx.to(W.device)
    y = data.y.to(W)
    sign = torch.cat([torch.ones(k), -torch.ones(k)]).to(W)  # readout a_c
    keep = set(range(T_max + 1)) if record is True else set(record or [])
    hist: dict[int, Tensor] = {}
    if 0 in keep:
        hist[0] = W.clone()
    outs = []
    T = torch.full((R,), T_max, dtype=torch.long)
    conv = torch.zeros(R, dtype=torch.bool)
    for t in range(T_max + 1):
        out, am = _net(W, idx)
        outs.append(out.clone())
        active = (y * out) < 1  # [R, 2]
        newly = (~active.any(1)) & (~conv)
        T[newly] = t
        conv |= newly
        if t == T_max or bool(conv.all()):
            break  # converged runs are GD fixed points (zero loss, zero subgradient)
        # dL/dW_c = -(1/2) sum_x y a_c 1{active} p_{argmax}; W -= c_eta * dL/dW
        coef = (c_eta / (2 * k)) * y[:, :, None] * active[:, :, None].to(W) * sign[None, None, :]  # [R, 2, C]
        coef = torch.where(am >= 0, coef, torch.zeros_like(coef))
        upd = torch.zeros(R, C, d + 1, dtype=W.dtype)
        tgt = torch.where(am >= 0, am, torch.full_like(am, d)).transpose(1, 2)  # [R, C, 2]
        upd.scatter_add_(2, tgt, coef.transpose(1, 2))
        W = W + upd[..., :d]
        if t + 1 in keep:
            hist[t + 1] = W.clone()
    outs_t = torch.stack(outs)
    if outs_t.shape[0] < T_max + 1:  # pad with the fixed point
        outs_t = torch.cat([outs_t, outs_t[-1:].expand(T_max + 1 - outs_t.shape[0], R, 2)])
    for t in keep:
        if t not in hist and t <= T_max:
            hist[t] = W.clone()
    return TwoPointRun(W=W, T=T, converged=conv, history=hist, outputs=outs_t)


def _check_W0_data(W0: Tensor, data: TwoPointSet, name: str = "W0") -> None:
    """``W0 [R, 2k, d]`` floating, ``data`` a :class:`TwoPointSet` with R runs and patterns < d."""
    V.floating_tensor(name, W0, 3)
    if W0.shape[1] == 0 or W0.shape[1] % 2:
        raise ValueError(f"{name} must have shape [R, 2k, d] (an even number 2k >= 2 of filters), got {tuple(W0.shape)}")
    if not isinstance(data, TwoPointSet):
        raise TypeError(f"data must be a TwoPointSet (see sample_two_point), got {type(data).__name__}")
    if W0.shape[2] != data.d or W0.shape[0] != data.x_plus.shape[0]:
        raise ValueError(f"{name} must have shape [R, 2k, d] = [{data.x_plus.shape[0]}, 2k, {data.d}] to match data, "
                         f"got {tuple(W0.shape)}")
    V.index_in_range("data.x_plus", data.x_plus, data.d)
    V.index_in_range("data.x_minus", data.x_minus, data.d)


def _pt_mask(data: TwoPointSet, R: int) -> Tensor:
    m = torch.zeros(R, data.d, dtype=torch.bool)
    m.scatter_(1, data.x_plus, True)
    m.scatter_(1, data.x_minus, True)
    return m


def _pt_masks(data: TwoPointSet, R: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(P_T, P_T minus {2}, P_T minus {1})`` as [R, d] boolean masks (patterns 1 and 2 are indices 0, 1)."""
    PT = _pt_mask(data, R)
    not2 = PT.clone()
    not2[:, 1] = False
    not1 = PT.clone()
    not1[:, 0] = False
    return PT, not2, not1


def _argmax_over(D: Tensor, allowed: Tensor) -> tuple[Tensor, Tensor]:
    """argmax over allowed patterns [R, d] of D [R, k, d]; returns (arg, positive) with first-index ties."""
    Dm = torch.where(allowed[:, None, :], D, torch.full_like(D, -float("inf")))
    val, arg = Dm.max(-1)
    return arg, val > 0


def categories(W0: Tensor, data: TwoPointSet) -> Tensor:
    """Part of Lemma F.5 (1..8) each filter falls in at initialization: LongTensor [R, 2k]."""
    _check_W0_data(W0, data)
    R, C, _ = W0.shape
    k = C // 2
    PT, not2, not1 = _pt_masks(data, R)
    cat = torch.zeros(R, C, dtype=torch.long)
    # w filters
    Dw = W0[:, :k]
    ap, pp = _argmax_over(Dw, not2)   # W_0^+(.)
    an, pn = _argmax_over(Dw, not1)   # W_0^-(.)
    cw = torch.full((R, k), 1, dtype=torch.long)
    cw[pp & (ap == 0)] = 2
    cw[pp & (ap >= 2) & pn & (an == ap)] = 3
    cw[pp & (ap >= 2) & pn & (an == 1)] = 4
    # u filters (roles of 1 and 2 exchanged)
    Du = W0[:, k:]
    bn, qn = _argmax_over(Du, not1)   # U_0^-(.)
    bp, qp = _argmax_over(Du, not2)   # U_0^+(.)
    cu = torch.full((R, k), 5, dtype=torch.long)
    cu[qn & (bn == 1)] = 6
    cu[qn & (bn >= 2) & qp & (bp == bn)] = 7
    cu[qn & (bn >= 2) & qp & (bp == 0)] = 8
    cat[:, :k] = cw
    cat[:, k:] = cu
    return cat


def _greedy_subtract(D0: Tensor, allowed: Tensor, t: int) -> Tensor:
    """Indicator [R, k, d] of the patterns among `allowed` with positive initial dot product whose rank
    (descending) is < t: the alpha_i of Lemma F.5 parts 2 and 6."""
    Dm = torch.where(allowed[:, None, :], D0, torch.full_like(D0, -float("inf")))
    order = torch.argsort(Dm, dim=-1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(D0.shape[-1]).expand_as(order).contiguous())
    return (rank < t) & (Dm > 0)


def _lemma_f5_half(D, c, parts, *, own: int, other: int, greedy_mask, am, h, t, eye):
    """The displacement of one filter set (w or u) in Lemma F.5; the u set mirrors the w set with
    p1 and p2 exchanged.  ``parts`` are the group codes of (not detecting, detecting the own
    discriminative pattern, detecting a spurious pattern)."""
    out = torch.zeros_like(D)
    # -(c/2) p_other if the filter is outside the detectors and w_0 . p_other > 0
    m1 = (c == parts[0]) & (D[..., other] > 0)
    out[..., other] -= h * m1.to(D)
    # detectors of the own pattern
    m2 = c == parts[1]
    alpha = _greedy_subtract(D, greedy_mask, t).to(D)
    out += m2[..., None].to(D) * (-h * alpha + (h * t) * eye[own])
    # detectors of a spurious pattern: -(c/2) p_other + (c/2) p_i
    m3 = (c == parts[2])[..., None].to(D)
    out += m3 * (-h * eye[other] + h * eye[am])
    return out


def lemma_f5_predict(W0: Tensor, data: TwoPointSet, c_eta: float, t: int) -> Tensor:
    """The closed forms of Lemma F.5 for W_t (valid for 1 <= t <= t* when max|W_0| << eta = c_eta/k): [R, 2k, d]."""
    V.integer("t", t, 1)
    V.positive("c_eta", c_eta)
    _check_W0_data(W0, data)
    R, C, d = W0.shape
    k = C // 2
    h = c_eta / (2 * k)
    PT, not2, not1 = _pt_masks(data, R)
    cat = categories(W0, data)
    Wt = W0.clone()
    Dw, Du = W0[:, :k], W0[:, k:]
    cw, cu = cat[:, :k], cat[:, k:]
    ap, _ = _argmax_over(Dw, not2)
    bn, _ = _argmax_over(Du, not1)
    eye = torch.eye(d, dtype=W0.dtype)
    # w filters: parts 1, 2, 4 (own pattern p1, other p2); u filters: parts 5, 6, 8 (roles swapped)
    dw = _lemma_f5_half(Dw, cw, (1, 2, 4), own=0, other=1, greedy_mask=not1, am=ap, h=h, t=t, eye=eye)
    du = _lemma_f5_half(Du, cu, (5, 6, 8), own=1, other=0, greedy_mask=not2, am=bn, h=h, t=t, eye=eye)
    Wt[:, :k] += dw
    Wt[:, k:] += du
    return Wt


def predicted_convergence(W0: Tensor, data: TwoPointSet, c_eta: float) -> tuple[Tensor, Tensor, Tensor]:
    """Convergence step predicted by the proof of Lemma F.6 from the category counts (ignoring O(kM)):
    ``t+ = min{t >= 1: h(t|B2| + |B4| - |B8|) >= 1}``, ``t- = min{t >= 1: h(t|B6| + |B8| - |B4|) >= 1}``, h = c_eta/(2k).
    Returns (t_plus, t_minus, counts [R, 9]) with ``counts[:, q] = |B_q|``."""
    V.positive("c_eta", c_eta)
    cat = categories(W0, data)
    R = cat.shape[0]
    counts = torch.zeros(R, 9, dtype=torch.long)
    counts.scatter_add_(1, cat, torch.ones_like(cat))
    h = c_eta / cat.shape[1]  # eta / 2 = c_eta / (2k), 2k = number of filters
    b2, b4, b6, b8 = (counts[:, q].double() for q in (2, 4, 6, 8))
    tp = torch.clamp(torch.ceil((1 / h - b4 + b8) / b2 - 1e-12), min=1).long()
    tm = torch.clamp(torch.ceil((1 / h - b8 + b4) / b6 - 1e-12), min=1).long()
    return tp, tm, counts


def lemma_f3_probability(n: int) -> float:
    """Exact probability that one Gaussian filter w lies in W_0^+(i) n W_0^-(2) for a fixed spurious i in P_T
    (Eqs. 11-12), ``q = (1 - (n + 2) 2^{-(n+1)}) / (n (n + 1))``.

    Derivation: the n + 1 dot products of w with P_T = {p1, p2} u S_p are i.i.d. symmetric; the event asks for
    p2 to be the largest, p_i the second largest and p_i > 0.  The order has probability 1/((n+1) n); given it,
    the second largest is positive unless at most one of the n + 1 values is positive, probability
    (n + 2) 2^{-(n+1)}, and the order and the signs are independent.  The same q holds for u in
    U_0^+(1) n U_0^-(i).  Lemma F.3 (App. F.2) states concentration of these sizes around k times a constant
    with leading factor 1/(n(n+1)).
    """
    V.integer("n", n, 2)
    return (1.0 - (n + 2) * 2.0 ** (-(n + 1))) / (n * (n + 1))


def initial_set_sizes(W0: Tensor, data: TwoPointSet) -> dict[str, Tensor]:
    """Sizes of the initial detection sets of App. F.1-F.2 (Eqs. 11-12) for each run (Lemmas F.1-F.3).

    Returns ``A_w``, ``A_u`` [R] (``|A_w| = |union_{i in P_T minus {2}} W_0^+(i)|``, ``|A_u|`` likewise with
    ``U_0^-``); ``A_w_W_minus2`` = ``|A_w n W_0^-(2)|`` and ``A_u_U_plus1`` = ``|A_u n U_0^+(1)|`` [R] (proof of
    Lemma F.3); ``W_plus`` [R, d] = ``|W_0^+(i)|`` (nonzero only for i in P_T minus {2}); ``U_minus`` [R, d] =
    ``|U_0^-(i)|`` (i in P_T minus {1}); ``W_plus_W_minus2`` [R, d] = ``|W_0^+(i) n W_0^-(2)|`` and
    ``U_plus1_U_minus`` [R, d] = ``|U_0^+(1) n U_0^-(i)|`` (both for spurious i; other columns 0); and
    ``spurious`` [R, d] (bool, i in S_p).
    All counts are float64 tensors.
    """
    _check_W0_data(W0, data)
    R, C, d = W0.shape
    k = C // 2
    PT, not2, not1 = _pt_masks(data, R)
    spur = PT.clone()
    spur[:, :2] = False
    eye = torch.eye(d, dtype=torch.float64)

    def _counts(arg: Tensor, pos: Tensor, mask: Tensor | None = None) -> Tensor:
        sel = pos if mask is None else pos & mask
        return (eye[arg] * sel[..., None].double()).sum(1)  # [R, d]

    Dw, Du = W0[:, :k], W0[:, k:]
    ap, pp = _argmax_over(Dw, not2)  # W_0^+(.)
    an, pn = _argmax_over(Dw, not1)  # W_0^-(.)
    bn, qn = _argmax_over(Du, not1)  # U_0^-(.)
    bp, qp = _argmax_over(Du, not2)  # U_0^+(.)
    W_plus = _counts(ap, pp)
    U_minus = _counts(bn, qn)
    W_pm2 = _counts(ap, pp, pn & (an == 1)) * spur.double()
    U_p1m = _counts(bn, qn, qp & (bp == 0)) * spur.double()
    return {
        "A_w": pp.double().sum(1),
        "A_u": qn.double().sum(1),
        "A_w_W_minus2": (pp & pn & (an == 1)).double().sum(1),
        "A_u_U_plus1": (qn & qp & (bp == 0)).double().sum(1),
        "W_plus": W_plus,
        "U_minus": U_minus,
        "W_plus_W_minus2": W_pm2,
        "U_plus1_U_minus": U_p1m,
        "spurious": spur,
    }
