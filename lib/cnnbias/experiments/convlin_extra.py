"""Statistical comparisons and extra drivers for the Part I claims (:cite:`gd_conv_linear`).

Independence (what every standard error here is over): in :func:`cnnbias.experiments.convlin.gap_runs` all
models of one task share the R training sets of a size n (and the training sets of different n are drawn
independently), while each model has its own initialization.  A comparison of two models at one n is therefore
*paired* by training set: its standard error is the SD over the R independent training sets of the per-set
difference, divided by sqrt(R) (:func:`cnnbias.experiments.convlin.paired_difference`, re-exported here); an
average over sizes adds the per-size variances.

Kept apart from :mod:`cnnbias.experiments.convlin` so that the stored Fig. 2 sweep cells (keyed by that module's
code) do not depend on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from scipy import stats as sps
from torch import Tensor

from cnnbias import validate as V
from cnnbias.data.positions import make_task
from cnnbias.engine import StopRule, train
from cnnbias.experiments.convlin import initial_params, paired_difference, training_sets
from cnnbias.models import linear as L


def _pair(a: Tensor, b: Tensor) -> None:
    V.floating_tensor("a", a, 2)
    V.floating_tensor("b", b, shape=tuple(a.shape))
    if a.shape[1] < 2:
        raise ValueError(f"a and b need R >= 2 runs per size for a standard error, got shape {tuple(a.shape)}")


def paired_z(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Per size: mean of the paired difference a - b [len(ns)] and its SE over the R training sets."""
    _pair(a, b)
    diff = a - b
    return diff.mean(1), diff.std(1, unbiased=True) / math.sqrt(a.shape[1])


def departure_index(a: Tensor, b: Tensor, k: float = 2.0) -> int | None:
    """First row i such that, at row i and at every later row, mean(a - b) > k SE (paired, over training sets).

    The "departure" of curve a from curve b on a grid of sizes sorted increasingly; None if it never departs
    for good on the grid."""
    V.positive("k", k)
    m, se = paired_z(a, b)
    above = (m > k * se).tolist()
    first = None
    for i in range(len(above) - 1, -1, -1):
        if not above[i]:
            break
        first = i
    return first


def pitman_morgan(a: Tensor, b: Tensor) -> tuple[float, float]:
    """One-sided Pitman-Morgan test of var(a) > var(b) for paired samples a, b [n] (n >= 4).

    var(a) - var(b) = cov(a + b, a - b), so the test is the t test of the Pearson correlation r of (a + b, a - b)
    with n - 2 degrees of freedom.  Returns (ratio of standard deviations sd(a)/sd(b), one-sided p-value)."""
    V.floating_tensor("a", a, 1)
    V.floating_tensor("b", b, shape=tuple(a.shape))
    n = a.shape[0]
    if n < 4:
        raise ValueError(f"pitman_morgan needs at least 4 pairs, got {n}")
    s, d = (a + b), (a - b)
    sd_s, sd_d = float(s.std()), float(d.std())
    sd_b = float(b.std())
    ratio = float(a.std()) / sd_b if sd_b > 0 else math.inf
    if sd_s == 0 or sd_d == 0:
        return ratio, (0.0 if ratio > 1 else 1.0)
    r = float(torch.corrcoef(torch.stack([s, d]))[0, 1])
    r = max(min(r, 1.0 - 1e-15), -1.0 + 1e-15)
    t = r * math.sqrt((n - 2) / (1 - r * r))
    return ratio, float(sps.t.sf(t, n - 2))


# ----------------------------------------------------------------------------------------------------------------
# Footnote 4: cross-entropy (logistic) loss instead of the hinge loss
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class LossRuns:
    """Test errors [len(ns), R] of Conv-k trained with one loss on the Fig. 2 training sets and initializations."""

    ns: list[int]
    err: Tensor
    epochs: Tensor
    fitted: Tensor  # [len(ns), R] bool: training error exactly 0 when the run stopped


def logistic_runs(
    task_name: str,
    d: int,
    k: int,
    ns: Sequence[int],
    R: int,
    lr: float,
    max_epochs: int,
    experiment: str = "convlin/fig2",
    check_every: int = 10,
    stop_margin: float = 1.0,
) -> LossRuns:
    """Conv-k trained by full-batch GD on the logistic (sigmoid cross-entropy) loss log(1 + exp(-y f(x))),
    from the same training sets and initial weights as :func:`cnnbias.experiments.convlin.gap_runs` (same
    ``experiment`` seeds), stopped as the hinge runs are: once every training margin y f(x) is at least
    ``stop_margin`` (1.0: the condition under which the hinge loss is 0; 0.0: the training error is 0, ties
    counted 1/2), checked every ``check_every`` epochs (or at ``max_epochs``)."""
    V.integer("d", d, 2)
    V.integer("k", k, 1, d)
    V.integer("R", R, 1)
    V.positive("lr", lr)
    V.integer("max_epochs", max_epochs, 1)
    V.integer("check_every", check_every, 1)
    V.nonnegative("stop_margin", stop_margin)
    task = make_task(task_name, d)
    ns = [int(n) for n in ns]
    idx, mask = training_sets(task, ns, R, experiment)
    p0 = initial_params("conv", task, ns, R, k, experiment)
    y_tr = task.y[idx]
    count = mask.sum(-1)

    def sub(runs):
        if runs is None or len(runs) == idx.shape[0]:
            return idx, mask, y_tr, count
        return idx[runs], mask[runs], y_tr[runs], count[runs]

    def loss_fn(params, batch):
        ii, mm, yy, cc = sub(getattr(batch, "runs", None))
        z = yy * L.scores(L.effective_weight("conv", params), task, ii)
        return (torch.nn.functional.softplus(-z) * mm).sum(-1) / cc

    def train_err(params, batch):
        ii, mm, yy, cc = sub(getattr(batch, "runs", None))
        z = yy * L.scores(L.effective_weight("conv", params), task, ii)
        bad = L.ebar(z) if stop_margin == 0 else (z < stop_margin).to(z.dtype)
        return (bad * mm).sum(-1) / cc

    res = train(loss_fn, p0, optimizer="gd", lr=lr, eval_fn=train_err,
                stop=StopRule(max_epochs=max_epochs, loss_below=0.0, check_every=check_every))
    err = L.test_error(L.effective_weight("conv", res.params), task).reshape(len(ns), R)
    fitted = torch.tensor([s == "loss_below" for s in res.stop_reason]).reshape(len(ns), R)
    return LossRuns(ns, err, res.epochs.reshape(len(ns), R), fitted)


# ----------------------------------------------------------------------------------------------------------------
# Fig. 6(a)/8(a): X-hinge keeps improving after the training set is fitted and converges to the limit
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class AfterFit:
    """Per initialization [R] of one training set (the runs of :func:`cnnbias.experiments.convlin.init_runs`)."""

    t_fit: Tensor  # first grid step with X-hinge training error exactly 0 (-1: never on the grid)
    err_fit: Tensor  # test error at t_fit
    err_end: Tensor  # test error at the last grid step t_max
    err_far: Tensor  # test error at t_far (Lemma 7, exact)
    err_limit: Tensor  # test error of Lemma 1's limit direction from the same (w1^0, w2^0)
    cos_fit: Tensor  # cosine between (w1^t, w2^t) and the limit direction at t_fit
    cos_end: Tensor
    cos_far: Tensor


def xhinge_after_fit(
    task_name: str, d: int, k: int, n: int, R: int, lr: float, t_max: int, every: int, t_far: int,
    experiment: str = "convlin/init",
) -> AfterFit:
    """X-hinge GD (Lemma 7, exact) from the R initializations of one training set, with the same seeds as
    :func:`cnnbias.experiments.convlin.init_runs`: when the training error first reaches 0 on the grid
    0, every, ..., t_max, the test error and the cosine to the limit direction (Lemma 1 with w2^0, via
    :func:`cnnbias.theory.convlinear.lemma1_limit`) then, at t_max and at t_far >= t_max."""
    from cnnbias import config
    from cnnbias.theory import convlinear as C

    for nm, v, lo in (("k", k, 1), ("n", n, 1), ("R", R, 1), ("t_max", t_max, 1), ("every", every, 1)):
        V.integer(nm, v, lo)
    V.integer("t_far", t_far, t_max)
    V.positive("lr", lr)
    task = make_task(task_name, d)
    idx1, mask1 = training_sets(task, [n], 1, experiment)
    idx, mask = idx1.expand(R, -1).clone(), mask1.expand(R, -1).clone()
    gens = config.generators(f"{experiment}/init", {"task": task_name, "d": d, "n": n, "k": k}, R)
    p0 = L.init_params("conv", d, gens, k=k)
    M = C.m_train(task, idx, k, mask)
    l1, l2, _ = C.lemma1_limit(M, p0["w1"], p0["w2"])
    lim = torch.cat([l1, l2], -1)
    err_limit = L.test_error(L.conv_effective_weight(l1, l2), task)

    def at(t: int) -> tuple[Tensor, Tensor, Tensor]:
        w1, w2 = C.lemma7(M, p0["w1"], p0["w2"], lr, t, scaled=True)
        w = L.conv_effective_weight(w1, w2)
        tr = (L.ebar(task.y[idx] * L.scores(w, task, idx)) * mask).sum(-1) / mask.sum(-1)
        cur = torch.cat([w1, w2], -1)
        cos = (cur * lim).sum(-1) / (cur.norm(dim=-1) * lim.norm(dim=-1))
        return L.test_error(w, task), tr, cos

    t_fit = torch.full((R,), -1, dtype=torch.long)
    err_fit = torch.full((R,), float("nan"), dtype=torch.float64)
    cos_fit = torch.full((R,), float("nan"), dtype=torch.float64)
    for t in range(0, t_max + 1, every):
        te, tr, cos = at(t)
        new = (t_fit < 0) & (tr == 0)
        t_fit[new], err_fit[new], cos_fit[new] = t, te[new], cos[new]
    err_end, _, cos_end = at(t_max)
    err_far, _, cos_far = at(t_far)
    return AfterFit(t_fit, err_fit, err_end, err_far, err_limit, cos_fit, cos_end, cos_far)


__all__ = ["AfterFit", "LossRuns", "departure_index", "logistic_runs", "paired_difference", "paired_z", "pitman_morgan",
           "xhinge_after_fit"]
