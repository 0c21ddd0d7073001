"""Theorem 4.1 of :cite:`xord` measured: the sample complexities ``m1`` (over-parameterized, ``k >= 120``) and
``m2`` (``k = 2``) of gradient descent on the distribution ``D`` of Theorem 5.3, part 2 (App. A.6 and A.7).

A training set has ``m`` points of ``D+`` and ``m`` of ``D-`` (``2m`` in all, the count of Theorem 4.1).  A run
*succeeds* when its generalization error (exact 0-1 test error under ``D`` minus training error) is at most
``epsilon``; ``m(epsilon, delta)`` is the smallest ``2m`` whose success probability is at least ``1 - delta``.
Training is gradient descent on Eq. 3 over the first layer with ``eta = c_eta / k`` and ``N(0, sigma_g^2)``
initialization, ``sigma_g = c_eta / (16 k^(3/2))`` (Theorems 5.2/5.3), on the pattern-set compression of the
training set (App. C: the network sees a point only through its pattern set; the six sets of ``D`` carry counts),
in the closed form :func:`cnnbias.theory.xord_lemmas.gd_sets` (equal to autograd GD, see the tests), so runs with
different ``m`` share one batched program.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cnnbias import config
from cnnbias import validate as V
from cnnbias.data import xord as X
from cnnbias.experiments import xord as XE
from cnnbias.stats import margin_errors
from cnnbias.theory import xord as T
from cnnbias.theory import xord_lemmas as L

#: Order of the six pattern sets of ``D`` in the compressed training sets.
SET_NAMES = ("x+", "z1", "z2", "x-", "z3", "z4")


def sample_counts(m: int, p_plus: float, p_minus: float, gen: torch.Generator) -> Tensor:
    """Counts ``[6]`` (order :data:`SET_NAMES`) of ``m`` i.i.d. points of ``D+`` and ``m`` of ``D-`` (Theorem 5.3,
    part 2), drawn from ``gen``."""
    V.integer("m", m, 1)
    V.probability("p_plus", p_plus)
    V.probability("p_minus", p_minus)
    qp = torch.tensor([p_plus, (1 - p_plus) / 2, (1 - p_plus) / 2], dtype=torch.float64)
    qm = torch.tensor([p_minus, (1 - p_minus) / 2, (1 - p_minus) / 2], dtype=torch.float64)
    a = torch.multinomial(qp, m, replacement=True, generator=gen)
    b = torch.multinomial(qm, m, replacement=True, generator=gen)
    return torch.cat([torch.bincount(a, minlength=3), torch.bincount(b, minlength=3)]).double()


def thm41_runs(name: str, k: int, c_eta: float, gamma: float, ms: list[int], R: int, p_plus: float,
               p_minus: float, max_epochs: int) -> dict[str, Tensor]:
    """``R`` runs of gradient descent with ``k`` channel pairs for each ``m`` in ``ms`` (points per class) on
    ``D`` of Theorem 5.3, part 2.  Run ``r`` of ``m`` draws its data and initialization from
    ``config.generators(name, {k, c_eta, gamma, m, p_plus, p_minus}, R)[r]``.  Gradient descent in closed form
    (:func:`cnnbias.theory.xord_lemmas.gd_sets`) until zero loss (a global minimum, where GD no longer moves) or
    ``max_epochs`` iterations.  Returns per-run tensors (CPU, float64): ``m``, ``test_error`` (exact under ``D``),
    ``train_error``, ``gen_error`` (their difference), ``converged`` (bool, zero loss) and ``epochs``."""
    V.integer("k", k, 1)
    V.positive("c_eta", c_eta)
    V.positive("gamma", gamma)
    V.integer("R", R, 1)
    V.integer("max_epochs", max_epochs, 1)
    if isinstance(ms, (str, bytes)) or not hasattr(ms, "__len__") or len(ms) == 0:
        raise ValueError(f"ms must be a non-empty list of points per class >= 1, got {ms!r}")
    for m in ms:
        V.integer("ms[i]", m, 1)
    counts, gens, m_run = [], [], []
    for m in ms:
        gs = config.generators(name, {"k": k, "c_eta": c_eta, "gamma": gamma, "m": m, "p_plus": p_plus,
                                      "p_minus": p_minus}, R)
        counts += [sample_counts(m, p_plus, p_minus, g) for g in gs]
        gens += gs
        m_run += [m] * R
    out = _train_counts(torch.stack(counts), gens, k, c_eta, gamma, p_plus, p_minus, max_epochs)
    out["m"] = torch.tensor(m_run)
    return out


def m1_types() -> list[tuple[str, str]]:
    """The nine training sets with one point per class: (positive set, negative set) of :data:`SET_NAMES`."""
    return [(a, b) for a in SET_NAMES[:3] for b in SET_NAMES[3:]]


def thm41_type_runs(name: str, k: int, c_eta: float, gamma: float, R: int, p_plus: float, p_minus: float,
                    max_epochs: int) -> dict:
    """``m = 1`` (one point per class, ``2m = 2``) stratified by the training set: ``R`` runs for each of the nine
    (positive, negative) pattern-set pairs of :func:`m1_types`, whose probabilities under ``D`` are exact
    (products of ``p+-`` and ``(1-p+-)/2``).  Returns the per-run tensors of :func:`thm41_runs` plus ``type``
    (index into :func:`m1_types`) and ``type_prob`` (``[9]``)."""
    V.integer("R", R, 1)
    types = m1_types()
    pr = {"x+": p_plus, "z1": (1 - p_plus) / 2, "z2": (1 - p_plus) / 2,
          "x-": p_minus, "z3": (1 - p_minus) / 2, "z4": (1 - p_minus) / 2}
    counts, gens, typ = [], [], []
    for i, (a, b) in enumerate(types):
        c = torch.zeros(6, dtype=torch.float64)
        c[SET_NAMES.index(a)] = 1.0
        c[SET_NAMES.index(b)] = 1.0
        gs = config.generators(name, {"k": k, "c_eta": c_eta, "gamma": gamma, "train_sets": f"{a},{b}"}, R)
        counts += [c] * R
        gens += gs
        typ += [i] * R
    out = _train_counts(torch.stack(counts), gens, k, c_eta, gamma, p_plus, p_minus, max_epochs)
    out["type"] = torch.tensor(typ)
    out["type_prob"] = torch.tensor([pr[a] * pr[b] for a, b in types], dtype=torch.float64)
    out["m"] = torch.ones(len(typ), dtype=torch.long)
    return out


def stratified_success(runs: dict, epsilon: float) -> tuple[float, float]:
    """``(P, se)``: success probability at ``m = 1`` from :func:`thm41_type_runs`, ``sum_t P(t) s_t / n_t`` over
    the nine training sets (exact weights), and its standard error ``sqrt(sum_t P(t)^2 f_t (1 - f_t) / n_t)``
    (runs independent; zero when every type's runs agree)."""
    V.nonnegative("epsilon", epsilon)
    ok = (runs["gen_error"] <= epsilon + 1e-9 * max(epsilon, 1e-12)).double()
    P, var = 0.0, 0.0
    for t, w in enumerate(runs["type_prob"].tolist()):
        f = ok[runs["type"] == t]
        fr = float(f.mean())
        P += w * fr
        var += w * w * fr * (1 - fr) / f.numel()
    return P, math.sqrt(var)


def _train_counts(full: Tensor, gens: list[torch.Generator], k: int, c_eta: float, gamma: float, p_plus: float,
                  p_minus: float, max_epochs: int) -> dict[str, Tensor]:
    """Train one run per row of ``full [n, 6]`` (counts of the six sets of ``D``), initialization from ``gens``."""
    qp, qm = L.thm53_class_distributions(p_plus, p_minus)
    masks = X.SUBSETS[[L.set_index(L.THM53_SETS[s]) for s in SET_NAMES]]  # [6, 4]
    ys = torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
    n = len(gens)
    # keep only the sets present in some run (fewer set evaluations per step when m is small); zero counts pad
    U = int((full > 0).sum(-1).max())
    order = torch.argsort((full > 0).to(torch.int8), dim=-1, descending=True, stable=True)[:, :U]  # present first
    counts_t = torch.gather(full, 1, order)
    masks_t = masks[order]  # [n, U, 4]
    ys_t = ys[order]
    W0, chan = XE.init_filters([k] * n, [T.sigma_g_max(c_eta, k)] * n, gens)
    res = L.gd_sets(W0, masks_t, ys_t, counts_t, c_eta / k, gamma, max_epochs)
    W = res["W"]
    with torch.no_grad():
        test = L.error_under(W, 0.5 * qp + 0.5 * qm, ties="error")
        out = XE.network_on_run_sets(W, masks_t, chan)
        err = (margin_errors(ys_t * out) > 0).to(torch.float64)  # an output of 0 is an error (sign N = f*)
        train_err = (err * counts_t).sum(-1) / counts_t.sum(-1)
    return {"test_error": test, "train_error": train_err, "gen_error": test - train_err,
            "converged": res["T"] >= 0, "epochs": torch.where(res["T"] >= 0, res["T"], max_epochs)}


def success_by_m(runs: dict[str, Tensor], epsilon: float) -> dict[int, tuple[int, int]]:
    """``{m: (successes, runs)}``: runs whose generalization error is at most ``epsilon`` (with a relative
    tolerance of 1e-9 so that an error equal to ``epsilon`` up to rounding counts as at most)."""
    V.nonnegative("epsilon", epsilon)
    ok = runs["gen_error"] <= epsilon + 1e-9 * max(epsilon, 1e-12)
    return {int(m): (int(ok[runs["m"] == m].sum()), int((runs["m"] == m).sum())) for m in runs["m"].unique().tolist()}


def sample_complexity(success: dict[int, tuple[int, int]], delta: float) -> float:
    """Measured ``m(epsilon, delta)``: the smallest ``2m`` (points of both classes) whose success fraction is at
    least ``1 - delta``; ``inf`` when no measured ``m`` reaches it."""
    V.real("delta", delta, 0, 1, lo_open=True, hi_open=True)
    for m in sorted(success):
        s, n = success[m]
        if s >= (1 - delta) * n - 1e-9:
            return 2.0 * m
    return math.inf
