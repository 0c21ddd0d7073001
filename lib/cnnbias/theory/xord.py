"""Theory of XOR detection (:cite:`xord`, Sections 3-5, App. A.5-A.7, B, C).

Network (Eq. 1): ``N_W(x) = sum_i [max_j relu(w(i).x_j) - max_j relu(u(i).x_j)]`` with ``W = [w(1..k); u(1..k)]``
(``[R, 2k, 2]`` with a leading run axis).  Patterns ``x1..x4`` as in :mod:`cnnbias.data.xord`
(``x1=(1,1), x2=(1,-1), x3=(-1,-1), x4=(-1,1)``, indices 0..3).

Everything here works on the *pattern-set* level (App. C): for a point with pattern set ``A`` the response of a
filter is ``max_{l in A} relu(w . x_l)``.  :func:`network_on_sets` evaluates ``N_W`` on masks ``[..., 4]``;
it equals Eq. 1 on any point with that pattern set (checked in the tests against
``cnnbias.models.maxpool.forward_fixed`` on dense inputs).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cnnbias import validate as V
from cnnbias.data import xord as X
from cnnbias.stats import margin_errors


def _check_W(W: Tensor, name: str = "W") -> None:
    """``W [R, 2k, 2]`` floating (first k rows read out +1, last k rows -1)."""
    V.floating_tensor(name, W)
    if W.ndim != 3 or W.shape[-1] != 2 or W.shape[1] % 2 or W.shape[1] == 0:
        raise ValueError(f"{name} must have shape [R, 2k, 2] with k >= 1, got {tuple(W.shape)}")


def _check_mask_channels(mc: Tensor | None, W: Tensor) -> None:
    if mc is not None:
        V.tensor("mask_channels", mc, shape=(W.shape[0], W.shape[1]))


def _check_p(name: str, p: float) -> None:
    V.real(name, p, 0, 1, lo_open=True, hi_open=True)

# ----------------------------------------------------------------------------------------------------------------
# p+ and p- (Sec. 3)
# ----------------------------------------------------------------------------------------------------------------


def p_plus_paper(d: int) -> float:
    """The paper's closed form ``p+ = 1 - (4 3^d - 6 2^d + 4) / 4^d`` (Sec. 3).

    By inclusion-exclusion, ``4 3^d - 6 2^d + 4`` counts the inputs of ``{+-1}^(2d)`` that miss at least one of the
    four patterns, so this is the probability that a point drawn uniformly from *all* of ``{+-1}^(2d)`` is diverse.
    For ``D+`` uniform over the *positive* points it is a slight underestimate: see :func:`p_plus_uniform_positive`.
    """
    V.integer("d", d, 1)
    return 1.0 - (4 * 3**d - 6 * 2**d + 4) / 4**d


def p_plus_uniform_positive(d: int) -> float:
    """Exact ``P[x diverse]`` for ``x`` uniform over the positive points: ``(4^d - 4 3^d + 6 2^d - 4) / (4^d - 2^d)``.

    Every diverse point is positive; the ``2^d`` inputs made only of x2, x4 are the negative ones.
    """
    V.integer("d", d, 1)
    return (4**d - 4 * 3**d + 6 * 2**d - 4) / (4**d - 2**d)


def p_minus_paper(d: int) -> float:
    """The paper's ``p- = 1 - 1 / 2^(d-1)``: exact for ``D-`` uniform over the ``2^d`` negative points
    (only the two constant points (x2,...,x2), (x4,...,x4) are not diverse)."""
    V.integer("d", d, 1)
    return 1.0 - 1.0 / 2 ** (d - 1)


def p_by_enumeration(d: int) -> dict[str, float]:
    """Diversity probabilities by exhaustive enumeration of ``{+-1}^(2d)`` (``d <= 8``).

    Keys: ``all`` (P[all four patterns occur] for x uniform over all of ``{+-1}^(2d)``), ``plus`` (uniform over
    positive points), ``minus`` (uniform over negative points).
    """
    idx = X.all_inputs(d)
    y = X.fstar(idx)
    div = X.is_diverse(idx, y)
    pos = y > 0
    return {
        "all": float(X.pattern_set(idx).all(-1).double().mean()),
        "plus": float(div[pos].double().mean()),
        "minus": float(div[~pos].double().mean()),
    }


# ----------------------------------------------------------------------------------------------------------------
# Theorem 4.1 (sample complexity)
# ----------------------------------------------------------------------------------------------------------------


def thm41_delta_min(p_plus: float, p_minus: float, c: float = 0.0) -> float:
    """Smallest ``delta`` allowed by Theorem 4.1: ``1 - p+ p- (1 - c - 16 e^-8)``."""
    _check_p("p_plus", p_plus)
    _check_p("p_minus", p_minus)
    V.real("c", c, 0, 1, hi_open=True)
    return 1.0 - p_plus * p_minus * (1.0 - c - 16.0 * math.exp(-8.0))


def thm41_m2_lower(p_plus: float, p_minus: float, delta: float, c: float = 0.0) -> float:
    """Theorem 4.1 lower bound on the ``k = 2`` sample complexity: ``m2 >= 2 log(48 delta / (33 (1-c))) / log(p+ p-)``.

    Read with the factor 2 counting positive and negative points (App. A.7: ``m`` points per class).
    """
    V.real("delta", delta, 0, 1, lo_open=True, hi_open=True)
    _check_p("p_plus", p_plus)
    _check_p("p_minus", p_minus)
    V.real("c", c, 0, 1, hi_open=True)
    return 2.0 * math.log(48.0 * delta / (33.0 * (1.0 - c))) / math.log(p_plus * p_minus)


def thm41_eps_max(p_plus: float, p_minus: float) -> float:
    """Largest ``epsilon`` of Theorem 4.1: ``min{(1-p+)/4, (1-p-)/4}``."""
    _check_p("p_plus", p_plus)
    _check_p("p_minus", p_minus)
    return min((1 - p_plus) / 4, (1 - p_minus) / 4)


# ----------------------------------------------------------------------------------------------------------------
# The network on pattern sets, detection (Def. 5.1), the k = 2 realization, VC (App. C)
# ----------------------------------------------------------------------------------------------------------------


def projections(W: Tensor) -> Tensor:
    """``w_c . x_l`` for all filters and the four patterns: ``[..., C, 2] -> [..., C, 4]``."""
    V.floating_tensor("W", W)
    if W.ndim < 2 or W.shape[-1] != 2:
        raise ValueError(f"W must have shape [..., C, 2], got {tuple(W.shape)}")
    return W @ X.patterns(W.dtype, W.device).T


def network_on_sets(W: Tensor, masks: Tensor, mask_channels: Tensor | None = None) -> Tensor:
    """``N_W`` (Eq. 1) on points given by their pattern sets.

    ``W [R, 2k, 2]`` (first k rows read out +1, last k rows -1), ``masks [..., 4]`` bool (either ``[S, 4]`` shared by
    all runs or ``[R, S, 4]``), optional ``mask_channels [R, 2k]`` (0/1, for padded channel counts).
    Returns ``[R, S]``.
    """
    _check_W(W)
    V.tensor("masks", masks, (2, 3))
    if masks.shape[-1] != 4 or (masks.ndim == 3 and masks.shape[0] != W.shape[0]):
        raise ValueError(f"masks must have shape [S, 4] or [R={W.shape[0]}, S, 4], got {tuple(masks.shape)}")
    _check_mask_channels(mask_channels, W)
    k = W.shape[1] // 2
    act = torch.relu(projections(W))  # [R, C, 4]
    m = masks.to(W.dtype)
    if m.ndim == 2:
        m = m.expand(W.shape[0], *m.shape)
    # response[r, s, c] = max_l m[r,s,l] * act[r,c,l]  (act >= 0, so masking by product is exact)
    resp = (m[:, :, None, :] * act[:, None, :, :]).amax(-1)  # [R, S, C]
    sign = torch.cat([torch.ones(k), -torch.ones(k)]).to(W)
    if mask_channels is not None:
        sign = sign * mask_channels.to(W)[:, None, :]
    return (resp * sign).sum(-1)


def realizes_fstar(W: Tensor, mask_channels: Tensor | None = None) -> Tensor:
    """Whether ``sign N_W(x) = f*(x)`` on all of ``{+-1}^(2d)`` (``d >= 4``): checked on the 15 pattern sets, which
    all occur for ``d >= 4`` (App. C).  ``[R]`` bool."""
    out = network_on_sets(W, X.SUBSETS.to(W.device), mask_channels)
    return (torch.sign(out) == X.SUBSET_LABELS.to(out)).all(-1)


def test_error_exact(W: Tensor, d: int, p_plus: float | None, p_minus: float | None,
                     mask_channels: Tensor | None = None) -> Tensor:
    """Exact 0-1 test error ``[R]`` under ``D = 1/2 D+ + 1/2 D-`` (:func:`cnnbias.data.xord.subset_distribution`);
    a score of exactly 0 counts 1/2 (the papers' convention)."""
    V.integer("d", d, 1)
    for name, p in (("p_plus", p_plus), ("p_minus", p_minus)):
        if p is not None:
            V.probability(name, p)
    out = network_on_sets(W, X.SUBSETS.to(W.device), mask_channels)  # [R, 15]
    y = X.SUBSET_LABELS.to(out)
    err = margin_errors(y * out).to(out.dtype)  # ties (|margin| <= TIE_RTOL max|margin|) count 1/2
    q = 0.5 * X.subset_distribution(d, 1, p_plus) + 0.5 * X.subset_distribution(d, -1, p_minus)
    return err @ q.to(out)


def k2_network(dtype: torch.dtype = torch.float64) -> Tensor:
    """The k = 2 network of Sec. 3: ``w(1)=(3,3), w(2)=(-3,-3), u(1)=(-1,1), u(2)=(1,-1)``, shape ``[1, 4, 2]``."""
    return torch.tensor([[[3.0, 3.0], [-3.0, -3.0], [-1.0, 1.0], [1.0, -1.0]]], dtype=dtype)


def detection_scores(W: Tensor, mask_channels: Tensor | None = None) -> Tensor:
    """Def. 5.1: ``D_v = sum_i relu(w(i).v)`` for the positive patterns x1, x3 and ``sum_i relu(u(i).v)`` for the
    negative patterns x2, x4.  Returns ``[R, 4]`` in pattern order x1..x4."""
    _check_W(W)
    _check_mask_channels(mask_channels, W)
    k = W.shape[1] // 2
    act = torch.relu(projections(W))  # [R, C, 4]
    if mask_channels is not None:
        act = act * mask_channels.to(W)[:, :, None]
    dw = act[:, :k].sum(1)
    du = act[:, k:].sum(1)
    return torch.stack([dw[:, 0], du[:, 1], dw[:, 2], du[:, 3]], -1)


def n_detected(W: Tensor, c_d: float, mask_channels: Tensor | None = None) -> Tensor:
    """Number of the four patterns detected with confidence ``c_d`` (``D_v > c_d``, Def. 5.1), ``[R]`` long."""
    V.nonnegative("c_d", c_d)
    return (detection_scores(W, mask_channels) > c_d).sum(-1)


def alpha(k: int) -> float:
    """``alpha(k) = (k/4 + 2 sqrt k) / (k/4 - 2 sqrt k)`` of Theorem 5.2 (finite and > 1 for ``k > 64``)."""
    V.integer("k", k, 65)
    return (k / 4 + 2 * math.sqrt(k)) / (k / 4 - 2 * math.sqrt(k))


def thm52_confidence(k: int, c_eta: float) -> float:
    """Detection confidence guaranteed by Theorem 5.2: ``(1 - 5 c_eta / 4) / (alpha(k) + 1)``."""
    V.positive("c_eta", c_eta)
    return (1 - 5 * c_eta / 4) / (alpha(k) + 1)


def thm52_T(gamma: float, c_eta: float) -> float:
    """Iterations after which Theorem 5.2 guarantees convergence: ``28 (gamma + 1 + 8 c_eta) / c_eta``."""
    V.positive("gamma", gamma)
    V.positive("c_eta", c_eta)
    return 28 * (gamma + 1 + 8 * c_eta) / c_eta


def sigma_g_max(c_eta: float, k: int) -> float:
    """Largest initialization scale allowed by Theorems 5.2/5.3 and Sec. B: ``c_eta / (16 k^(3/2))``."""
    V.positive("c_eta", c_eta)
    V.integer("k", k, 1)
    return c_eta / (16 * k**1.5)


def thm53_fraction() -> float:
    """``33/48``: P[W0+(1) u W0+(3) non-empty] = 3/4 times P[E | ...] >= 11/12 (App. A.6)."""
    return 33 / 48


def vc_pattern_functions() -> Tensor:
    """App. C: ``N_W(z)`` depends on ``z`` only through its pattern set ``P_z``; ``{+-1}^(2d)`` therefore splits into
    at most 15 classes (non-empty subsets of ``{+-1}^2``) on which every network is constant.

    Returns the class id ``[4^d]`` of every input for ``d = 4`` (the index of its pattern set in
    :data:`cnnbias.data.xord.SUBSETS`), so callers can count distinct classes and check constancy.
    """
    idx = X.all_inputs(4)
    s = X.pattern_set(idx)
    eq = (s[:, None, :] == X.SUBSETS[None]).all(-1)
    return eq.long().argmax(-1)


# ----------------------------------------------------------------------------------------------------------------
# Dynamics on one diverse positive and one diverse negative point (Sec. 5, Eq. 4-7)
# ----------------------------------------------------------------------------------------------------------------


def eq4_sets(W: Tensor) -> dict[str, Tensor]:
    """Eq. 4 set memberships, as pattern indices (0..3 for x1..x4) per filter.

    ``Wplus [R, k]``: ``argmax_{l in 1..4} w(j).x_l`` (``j in W_t^+(i)`` iff ``Wplus[:, j] == i``),
    ``Wminus [R, k]``: ``argmax_{l in {2,4}} w(j).x_l`` (values 1 or 3), and ``Uplus``, ``Uminus`` for the u's.
    """
    _check_W(W)
    k = W.shape[1] // 2
    pr = projections(W)
    neg = torch.tensor(X.NEGATIVE, device=W.device)
    plus = pr.argmax(-1)
    minus = neg[pr[..., [1, 3]].argmax(-1)]
    return {"Wplus": plus[:, :k], "Wminus": minus[:, :k], "Uplus": plus[:, k:], "Uminus": minus[:, k:]}


def diverse_outputs(W: Tensor) -> tuple[Tensor, Tensor]:
    """``(N_W(x+), N_W(x-))`` for a diverse positive and a diverse negative point, ``[R]`` each."""
    _check_W(W)
    m = torch.tensor([[True, True, True, True], [False, True, False, True]], device=W.device)
    out = network_on_sets(W, m)
    return out[:, 0], out[:, 1]


def _fused(W: Tensor, gamma: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Shared pieces of one step: ``N(x+), N(x-)`` (``[R]``), ``argmax_l w.x_l`` and ``argmax_{l in {2,4}}``."""
    k = W.shape[1] // 2
    pr = W @ X.patterns(W.dtype, W.device).T  # [R, C, 4]
    act = torch.relu(pr)
    rp = act.amax(-1)
    rn = torch.maximum(act[..., 1], act[..., 3])
    npos = rp[:, :k].sum(-1) - rp[:, k:].sum(-1)
    nneg = rn[:, :k].sum(-1) - rn[:, k:].sum(-1)
    plus = pr.argmax(-1)
    minus = torch.where(pr[..., 1] >= pr[..., 3], 1, 3)
    return npos, nneg, plus, minus


def eq56_step(W: Tensor, eta: float | Tensor, gamma: float, _fused_out=None) -> Tensor:
    """One gradient-descent step on ``{(x+, 1), (x-, -1)}`` (m = 1) with the loss of Eq. 3, via Eq. 5-6:

    for ``j in W_t^+(i1) n W_t^-(i2)``: ``w(j) <- w(j) + eta x_i1 1[N(x+) < gamma] - eta x_i2 1[N(x-) > -1]``;
    for ``j in U_t^+(i1) n U_t^-(i2)``: ``u(j) <- u(j) - eta x_i1 1[N(x+) < gamma] + eta x_i2 1[N(x-) > -1]``.

    Reading of a damaged formula: the paper prints the negative-point indicator as ``1_{N_W(x-) < 1}``; the hinge
    term ``max{1 + N_W(x-), 0}`` of Eq. 3 is active iff ``N_W(x-) > -1`` (i.e. ``-N_W(x-) < 1``, the form used in
    Lemma A.3), which is what we implement and what autograd confirms (tests).
    """
    if _fused_out is None:  # a call from outside (the loop of simulate_diverse checked its arguments once)
        _check_dynamics_args(W, eta, gamma)
    k = W.shape[1] // 2
    P = X.patterns(W.dtype, W.device)
    npos, nneg, plus, minus = _fused_out if _fused_out is not None else _fused(W, gamma)
    a = (npos < gamma).to(W.dtype)[:, None, None]
    b = (nneg > -1).to(W.dtype)[:, None, None]
    eta_t = torch.as_tensor(eta, dtype=W.dtype, device=W.device)
    if eta_t.ndim == 1:
        eta_t = eta_t[:, None, None]
    sign = torch.cat([torch.ones(k), -torch.ones(k)]).to(W)[None, :, None]
    return W + eta_t * sign * (a * P[plus] - b * P[minus])


def _check_dynamics_args(W: Tensor, eta, gamma) -> None:
    _check_W(W)
    V.positive("gamma", gamma)
    if isinstance(eta, Tensor) and eta.numel() != 1:
        V.tensor("eta", eta, shape=(W.shape[0],))
        if not bool(((eta > 0) & torch.isfinite(eta)).all()):
            raise ValueError("eta must be positive and finite (every run)")
    else:
        V.positive("eta", eta)


def S_plus(W: Tensor) -> Tensor:
    """``S_t^+ = sum_{j in W^+(1) u W^+(3)} max_l relu(w(j).x+_l)`` (Sec. 5), ``[R]``."""
    _check_W(W)
    k = W.shape[1] // 2
    pr = projections(W[:, :k])
    s = eq4_sets(W)["Wplus"]
    val = torch.relu(pr).amax(-1)
    return (val * ((s == 0) | (s == 2))).sum(-1)


def XY_plus(W: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 7: ``X^+(i) = sum_{j in W^+(i)} max_l relu(w(j).x+_l)`` and ``Y^+(i)`` likewise for the u's; ``[R, 4]``."""
    _check_W(W)
    k = W.shape[1] // 2
    s = eq4_sets(W)
    act = torch.relu(projections(W)).amax(-1)  # response on a diverse positive point, [R, C]
    oh_w = torch.nn.functional.one_hot(s["Wplus"], 4).to(W.dtype)
    oh_u = torch.nn.functional.one_hot(s["Uplus"], 4).to(W.dtype)
    return (act[:, :k, None] * oh_w).sum(1), (act[:, k:, None] * oh_u).sum(1)


def thm53_conditions(W: Tensor) -> dict[str, Tensor]:
    """The conditions a)-d) of the proof of Theorem 5.3 (App. A.6) for ``k = 2`` networks ``W [R, 4, 2]``:

    a) ``W^+(1)`` empty, b) ``W^+(3)`` empty, c) ``u(1).x2 > 0`` and ``u(2).x2 > 0``, d) the same with x4.
    Returns bool ``[R]`` per condition and ``E`` (any of them)."""
    _check_W(W)
    if W.shape[1] != 4:
        raise ValueError(f"W must be a k = 2 network [R, 4, 2], got {tuple(W.shape)}")
    s = eq4_sets(W)["Wplus"]
    pr = projections(W[:, 2:])  # [R, 2, 4]
    out = {
        "a": ~(s == 0).any(-1),
        "b": ~(s == 2).any(-1),
        "c": (pr[:, :, 1] > 0).all(-1),
        "d": (pr[:, :, 3] > 0).all(-1),
    }
    out["E"] = out["a"] | out["b"] | out["c"] | out["d"]
    return out


def xor_sec_b_bound(k: int) -> float:
    """Theorem B.5: for ``k >= 25`` GD on the four XOR points converges within ``4k / (k - 2 sqrt k) + 40`` steps."""
    V.integer("k", k, 25)
    return 4 * k / (k - 2 * math.sqrt(k)) + 40


def simulate_diverse(W0: Tensor, eta: float | Tensor, gamma: float, max_steps: int,
                     snapshots: list[int] | None = None) -> dict:
    """Gradient descent on one diverse positive and one diverse negative point through the closed-form update of
    Eq. 5-6 (:func:`eq56_step`, equal to the autograd step; see the tests and the chapter).  At a global minimum
    (``N(x+) >= gamma`` and ``N(x-) <= -1``) both indicators vanish and the iterate stays put, so running all runs
    for the same number of steps is exact.  Stops early once every run is at a global minimum.

    Returns ``W`` (final), ``T`` (``[R]`` long: first iteration at a global minimum, ``-1`` if never),
    ``snap`` (dict step -> ``W`` at that step, for the requested ``snapshots``) and ``sets0`` / ``sets_changed``
    (Eq. 4 sets at t = 0 and whether ``W_t^+(1)``/``W_t^+(3)`` membership ever changed, Lemma A.4).
    """
    _check_dynamics_args(W0, eta, gamma)
    V.integer("max_steps", max_steps, 0)
    if snapshots is not None:
        for t in snapshots:
            V.integer("snapshots[i]", t, 0)
    W = W0.clone()
    R = W.shape[0]
    T = torch.full((R,), -1, dtype=torch.long)
    snaps = set(snapshots or [])
    snap = {}
    s0 = eq4_sets(W)["Wplus"]
    in13_0 = (s0 == 0) | (s0 == 2)
    # without any w filter in W^+(1) u W^+(3), N(x+) <= N(x-) for ever (Lemma A.4), so no global minimum exists
    hopeless = ~in13_0.any(-1)
    changed = torch.zeros(R, dtype=torch.bool)
    k = W.shape[1] // 2
    for t in range(max_steps + 1):
        fo = _fused(W, gamma)
        npos, nneg, plus = fo[0], fo[1], fo[2][:, :k]
        at_min = (npos >= gamma) & (nneg <= -1)
        T = torch.where((T < 0) & at_min, torch.tensor(t), T)
        if t in snaps:
            snap[t] = W.clone()
        changed |= ((plus == 0) != (s0 == 0)).any(-1) | ((plus == 2) != (s0 == 2)).any(-1)
        if t == max_steps or (bool(((T >= 0) | hopeless).all()) and t >= max(snaps, default=0)):
            break
        W = eq56_step(W, eta, gamma, fo)
    return {"W": W, "T": T, "snap": snap, "sets0": s0, "in13_0": in13_0, "hopeless": hopeless,
            "sets_changed": changed, "steps": t}
