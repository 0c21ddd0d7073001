"""Statements of :cite:`xord` checked numerically beyond :mod:`cnnbias.theory.xord`: the remark of Sec. 3 that
``k = 1`` cannot realize ``f*``, the initialization lemmas A.1 and A.2, the dynamics of ``S_t^+`` (Lemma A.9),
and the distribution of Theorem 5.3, part 2 (App. A.6) used by Theorem 4.1.

Patterns ``x1..x4`` and pattern sets as in :mod:`cnnbias.data.xord`; networks ``W [R, 2k, 2]`` as in
:mod:`cnnbias.theory.xord` (first ``k`` rows read out +1, last ``k`` rows -1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cnnbias import validate as V
from cnnbias.data import xord as X
from cnnbias.stats import margin_errors
from cnnbias.theory import xord as T

# ----------------------------------------------------------------------------------------------------------------
# Pattern sets by name
# ----------------------------------------------------------------------------------------------------------------


def set_index(patterns: tuple[int, ...]) -> int:
    """Index in :data:`cnnbias.data.xord.SUBSETS` of the pattern set ``{x_l : l in patterns}`` (0-based ``l``)."""
    if not patterns or any(not isinstance(p, int) or not 0 <= p <= 3 for p in patterns):
        raise ValueError(f"patterns must be a non-empty tuple of pattern indices 0..3, got {patterns!r}")
    m = torch.zeros(4, dtype=torch.bool)
    m[list(patterns)] = True
    return int((X.SUBSETS == m).all(-1).long().argmax())


#: The six pattern sets of the distribution of Theorem 5.3, part 2 (App. A.6), i.e. the diverse positive set, z1 = {x1,
#: x2, x4}, z2 = {x3, x2, x4}, the diverse negative set {x2, x4}, z3 = {x2}, z4 = {x4}.
THM53_SETS = {"x+": (0, 1, 2, 3), "z1": (0, 1, 3), "z2": (1, 2, 3), "x-": (1, 3), "z3": (1,), "z4": (3,)}


def thm53_class_distributions(p_plus: float, p_minus: float) -> tuple[Tensor, Tensor]:
    """``D+`` and ``D-`` of Theorem 5.3, part 2 (App. A.6, item 3) over the 15 pattern sets, ``[15]`` each:
    ``D+`` is the diverse positive set with probability ``p+`` and z1, z2 with ``(1-p+)/2`` each; ``D-`` the diverse
    negative set with probability ``p-`` and z3, z4 with ``(1-p-)/2`` each.  ``D = D+/2 + D-/2`` then gives each z
    the probability ``(1-p+-)/4`` of the paper."""
    V.probability("p_plus", p_plus)
    V.probability("p_minus", p_minus)
    qp = torch.zeros(15, dtype=torch.float64)
    qm = torch.zeros(15, dtype=torch.float64)
    qp[set_index(THM53_SETS["x+"])] = p_plus
    qp[set_index(THM53_SETS["z1"])] += (1 - p_plus) / 2
    qp[set_index(THM53_SETS["z2"])] += (1 - p_plus) / 2
    qm[set_index(THM53_SETS["x-"])] = p_minus
    qm[set_index(THM53_SETS["z3"])] += (1 - p_minus) / 2
    qm[set_index(THM53_SETS["z4"])] += (1 - p_minus) / 2
    return qp, qm


def thm53_error_bound(p_plus: float, p_minus: float) -> float:
    """Theorem 5.3, part 2: the test error of a wrong global minimum is at least ``min{(1-p+)/4, (1-p-)/4}``."""
    return T.thm41_eps_max(p_plus, p_minus)


def error_under(W: Tensor, q: Tensor, mask_channels: Tensor | None = None, ties: str = "half") -> Tensor:
    """Exact 0-1 error ``[R]`` of ``N_W`` under a distribution ``q [15]`` over the pattern sets (labels ``f*``).
    ``ties``: a margin within the tie tolerance of :func:`cnnbias.stats.margin_errors` counts 1/2 (``"half"``,
    the book's convention) or 1 (``"error"``: the papers' criterion ``sign N_W(x) = f*(x)``, which an output of
    exactly 0 fails)."""
    if ties not in ("half", "error"):
        raise ValueError(f"ties must be 'half' or 'error', got {ties!r}")
    V.floating_tensor("q", q, 1)
    if q.shape != (15,) or not bool((q >= 0).all()) or not abs(float(q.sum()) - 1) < 1e-9:
        raise ValueError(f"q must be a probability vector [15] over the pattern sets, got shape {tuple(q.shape)}")
    out = T.network_on_sets(W, X.SUBSETS.to(W.device), mask_channels)
    err = margin_errors(X.SUBSET_LABELS.to(out) * out).to(out.dtype)
    if ties == "error":
        err = (err > 0).to(out.dtype)
    return err @ q.to(out)


# ----------------------------------------------------------------------------------------------------------------
# Sec. 3: k = 1 cannot realize f*
# ----------------------------------------------------------------------------------------------------------------


def k1_errors(W: Tensor) -> Tensor:
    """Number of the 15 pattern sets on which a ``k = 1`` network ``W [R, 2, 2]`` disagrees with ``f*`` (ties
    count as errors), ``[R]`` long.  ``f*`` is realized iff this is 0 (all 15 sets occur for ``d >= 4``)."""
    if not isinstance(W, Tensor) or W.ndim != 3 or W.shape[1:] != (2, 2):
        raise ValueError(f"W must be a k = 1 network [R, 2, 2], got {getattr(W, 'shape', W)!r}")
    out = T.network_on_sets(W, X.SUBSETS)
    return (X.SUBSET_LABELS.to(out) * out <= 0).sum(-1)


def k1_certificate(W: Tensor) -> Tensor:
    """The certificate that ``k = 1`` cannot realize ``f*`` (Sec. 3): on the constant points ``(x1, .., x1)`` and
    ``(x3, .., x3)`` the network outputs ``relu(w.x1) - relu(u.x1)`` and ``relu(w.x3) - relu(u.x3)``; both positive
    needs ``w.x1 > 0`` and ``w.x3 = -w.x1 > 0``.  Returns ``[R]`` bool: both outputs positive (never, for any W)."""
    if not isinstance(W, Tensor) or W.ndim != 3 or W.shape[1:] != (2, 2):
        raise ValueError(f"W must be a k = 1 network [R, 2, 2], got {getattr(W, 'shape', W)!r}")
    out = T.network_on_sets(W, X.SUBSETS[[set_index((0,)), set_index((2,))]])
    return (out > 0).all(-1)


# ----------------------------------------------------------------------------------------------------------------
# Lemmas A.1 and A.2 (initialization)
# ----------------------------------------------------------------------------------------------------------------


def lemma_a1_sizes(W: Tensor) -> Tensor:
    """``|W_0^+(1) u W_0^+(3)|`` and ``|U_0^+(1) u U_0^+(3)|`` (Eq. 4) of each run, ``[R, 2]`` long."""
    s = T.eq4_sets(W)
    return torch.stack([((s["Wplus"] == 0) | (s["Wplus"] == 2)).sum(-1),
                        ((s["Uplus"] == 0) | (s["Uplus"] == 2)).sum(-1)], -1)


def lemma_a1_violations(W: Tensor) -> Tensor:
    """Lemma A.1's event fails: ``| |W_0^+(1) u W_0^+(3)| - k/2 | > 2 sqrt k`` or the same for the u's, ``[R]`` bool."""
    k = W.shape[1] // 2
    return ((lemma_a1_sizes(W).double() - k / 2).abs() > 2 * math.sqrt(k)).any(-1)


def lemma_a1_exact_tail(k: int) -> float:
    """Exact ``P[|B - k/2| > 2 sqrt k]`` for ``B ~ Bin(k, 1/2)`` (the size of ``W_0^+(1) u W_0^+(3)``: each filter
    joins with probability 1/2); Lemma A.1 bounds it by Hoeffding's ``2 e^-8`` per set."""
    V.integer("k", k, 1)
    r = 2 * math.sqrt(k)
    return sum(math.comb(k, b) for b in range(k + 1) if abs(b - k / 2) > r) / 2**k


def lemma_a1_bound() -> float:
    """Lemma A.1's failure probability ``4 e^-8`` (both sets, union bound)."""
    return 4 * math.exp(-8)


def lemma_a2_ratio(W: Tensor, eta: float) -> Tensor:
    """``max_{j, i} |w^(j).x_i| / (eta/4)`` over all ``2k`` filters and four patterns, ``[R]``; Lemma A.2's event
    is ``ratio <= 1``."""
    V.positive("eta", eta)
    return T.projections(W).abs().flatten(1).amax(-1) / (eta / 4)


def lemma_a2_bound(k: int) -> float:
    """Lemma A.2's failure probability ``sqrt(2k) / (sqrt(pi) e^(8k))``."""
    V.integer("k", k, 1)
    return math.sqrt(2 * k) / math.sqrt(math.pi) * math.exp(-8 * k)


# ----------------------------------------------------------------------------------------------------------------
# S_t^+ along gradient descent on a diverse pair (Sec. 5, Lemma A.9)
# ----------------------------------------------------------------------------------------------------------------


def track_S_plus(W0: Tensor, eta: float, gamma: float, max_steps: int) -> dict[str, Tensor]:
    """Gradient descent on one diverse positive and one diverse negative point (Eq. 5-6,
    :func:`~cnnbias.theory.xord.eq56_step`) for all runs, following ``S_t^+`` (Sec. 5) and the cases of Lemma A.9; stops once every run is at a global
    minimum (where nothing moves) or after ``max_steps``.

    Lemma A.9: if ``N(x+) < gamma`` (cases 1 and 3) then ``S_{t+1} = S_t + eta |W_t^+(1) u W_t^+(3)|``; if
    ``N(x+) >= gamma`` and ``-N(x-) < 1`` (case 2) then ``S_{t+1} = S_t``.  Returns per run (``[R]``):
    ``min_dS`` (smallest ``(S_{t+1} - S_t) / eta`` over all steps; ``S^+`` non-decreasing iff ``>= 0`` up to
    rounding), ``ratio_min`` / ``ratio_max`` (``(S_{t+1} - S_t) / (eta |W_t^+(1) u W_t^+(3)|)`` over the steps with
    ``N(x+) < gamma``; Lemma A.9 as printed says 1), ``case2_max`` (largest ``|S_{t+1} - S_t| / eta`` over the case-2
    steps), ``n_case13``, ``n_case2`` (step counts) and ``T`` (first step at a global minimum, -1 if none)."""
    T._check_dynamics_args(W0, eta, gamma)
    V.integer("max_steps", max_steps, 1)
    R, k = W0.shape[0], W0.shape[1] // 2
    P = X.patterns(W0.dtype, W0.device)
    big = torch.full((R,), math.inf, dtype=W0.dtype)
    out = {"min_dS": big.clone(), "ratio_min": big.clone(), "ratio_max": -big,
           "case2_max": torch.zeros(R, dtype=W0.dtype),
           "n_case13": torch.zeros(R, dtype=torch.long), "n_case2": torch.zeros(R, dtype=torch.long),
           "T": torch.full((R,), -1, dtype=torch.long)}

    def state(W):
        pr = W @ P.T
        act = torch.relu(pr)
        rp, rn = act.amax(-1), torch.maximum(act[..., 1], act[..., 3])
        plus = pr[:, :k].argmax(-1)
        in13 = (plus == 0) | (plus == 2)
        S = (rp[:, :k] * in13).sum(-1)
        return S, in13.sum(-1), rp[:, :k].sum(-1) - rp[:, k:].sum(-1), rn[:, :k].sum(-1) - rn[:, k:].sum(-1)

    W = W0.clone()
    S, n13, npos, nneg = state(W)
    for t in range(max_steps):
        at_min = (npos >= gamma) & (nneg <= -1)
        out["T"] = torch.where((out["T"] < 0) & at_min, torch.tensor(t), out["T"])
        if bool(at_min.all()):
            break
        W = T.eq56_step(W, eta, gamma)
        S1, n13_1, npos1, nneg1 = state(W)
        dS = (S1 - S) / eta
        c13 = npos < gamma
        c2 = (npos >= gamma) & (nneg > -1)
        out["min_dS"] = torch.minimum(out["min_dS"], dS)
        ratio = dS / n13.clamp(min=1).to(dS)
        out["ratio_min"] = torch.where(c13, torch.minimum(out["ratio_min"], ratio), out["ratio_min"])
        out["ratio_max"] = torch.where(c13, torch.maximum(out["ratio_max"], ratio), out["ratio_max"])
        out["case2_max"] = torch.where(c2, torch.maximum(out["case2_max"], dS.abs()), out["case2_max"])
        out["n_case13"] += c13.long()
        out["n_case2"] += c2.long()
        S, n13, npos, nneg = S1, n13_1, npos1, nneg1
    else:
        at_min = (npos >= gamma) & (nneg <= -1)
        out["T"] = torch.where((out["T"] < 0) & at_min, torch.tensor(max_steps), out["T"])
    return out


# ----------------------------------------------------------------------------------------------------------------
# Gradient descent on weighted pattern sets (closed form of the Eq. 3 gradient, App. C)
# ----------------------------------------------------------------------------------------------------------------


def gd_sets(W0: Tensor, masks: Tensor, ys: Tensor, counts: Tensor, eta: float, gamma: float,
            max_steps: int) -> dict[str, Tensor]:
    """Gradient descent on Eq. 3 for training sets given by pattern sets with counts (App. C), in closed form:
    for a filter ``c`` with readout ``s_c = +-1`` and a set ``A_u`` whose response ``max_{l in A_u} w_c.x_l`` is
    positive, ``dN_u/dw_c = s_c x_{l*}`` with ``l*`` the maximizing pattern, so the step is
    ``w_c <- w_c + eta sum_u (counts_u / m) y_u 1[hinge_u active] s_c x_{l*_u(c)} 1[response > 0]``
    (``m`` = number of positive points; active: ``N_u < gamma`` for ``y_u = 1``, ``N_u > -1`` for ``y_u = -1``).
    It equals autograd on :func:`cnnbias.experiments.xord.eq3_loss_sets` (tests) without the per-step overhead.

    ``W0 [R, 2k, 2]``, ``masks [R, U, 4]`` bool, ``ys [R, U]`` (+-1), ``counts [R, U]`` (0 pads).  A run at zero
    loss (a global minimum) no longer moves; stops when every run is there or after ``max_steps``.  Returns ``W``
    and ``T`` (``[R]``: first step with zero loss, -1 if none)."""
    T._check_W(W0, "W0")
    V.positive("eta", eta)
    V.positive("gamma", gamma)
    V.integer("max_steps", max_steps, 0)
    R, C = W0.shape[0], W0.shape[1]
    if masks.ndim != 3 or masks.shape[0] != R or masks.shape[2] != 4 or ys.shape != masks.shape[:2] \
            or counts.shape != masks.shape[:2]:
        raise ValueError(f"masks must be [R={R}, U, 4] and ys, counts [R, U], got {tuple(masks.shape)}, "
                         f"{tuple(ys.shape)}, {tuple(counts.shape)}")
    k = C // 2
    P = X.patterns(W0.dtype, W0.device)
    sign = torch.cat([torch.ones(k), -torch.ones(k)]).to(W0)[None, :, None]  # [1, C, 1]
    neg_inf = torch.tensor(-math.inf, dtype=W0.dtype)
    mk = masks.bool()[:, :, None, :]  # [R, U, 1, 4]
    wts = counts.to(W0) / (counts.to(W0) * (ys > 0)).sum(-1, keepdim=True).clamp(min=1)  # counts_u / m
    yv = ys.to(W0)
    W = W0.clone()
    Tst = torch.full((R,), -1, dtype=torch.long)
    live = torch.arange(R)  # runs not yet at zero loss (the others no longer move)
    Wl, mkl, wl, yl, cl = W, mk, wts, yv, counts
    for t in range(max_steps + 1):
        pr = (Wl @ P.T)[:, None]  # [R', 1, C, 4]
        masked = torch.where(mkl, pr, neg_inf)  # [R', U, C, 4]
        best, arg = masked.max(-1)  # [R', U, C]
        resp = torch.relu(best)
        N = (resp * sign[..., 0][:, None]).sum(-1)  # [R', U]
        active = torch.where(yl > 0, N < gamma, N > -1) & (cl > 0)
        done = ~active.any(-1)
        if bool(done.any()):
            Tst[live[done]] = t
            W[live] = Wl
            keep = ~done
            live, Wl, mkl, wl, yl, cl = live[keep], Wl[keep], mkl[keep], wl[keep], yl[keep], cl[keep]
            best, arg, active = best[keep], arg[keep], active[keep]
        if t == max_steps or live.numel() == 0:
            break
        coef = (wl * yl * active.to(W))[:, :, None] * (best > 0).to(W)  # [R', U, C]
        step = (coef[..., None] * P[arg]).sum(1)  # [R', C, 2]
        Wl = Wl + eta * sign * step
    W[live] = Wl
    return {"W": W, "T": Tst}
