"""Experiment drivers for Part I (two-layer convolutional linear classifiers, {cite}`gd_conv_linear`).

The chapters call these; each returns plain tensors.  Seeds: run ``rep`` at training size ``n`` draws its
training set from ``config.generators(f"{experiment}/data", {"task", "d", "n"}, R)[rep]`` and its initial
weights from a generator keyed by the model as well, so a smaller scale's runs are a subset of a larger
scale's runs, and no run depends on which others are batched with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from cnnbias import config
from cnnbias.data.positions import PositionTask, make_task, sample_training_sets
from cnnbias.engine import StopRule, train
from cnnbias.models import linear as L
from cnnbias.theory import convlinear as C


def _gens(experiment: str, key: dict, R: int) -> list[torch.Generator]:
    return config.generators(experiment, key, R)


def training_sets(
    task: PositionTask, ns: Sequence[int], R: int, experiment: str
) -> tuple[Tensor, Tensor]:
    """R training sets per size n (run order: n-major), padded to max(ns): idx [len(ns) R, n_max], mask."""
    gens: list[torch.Generator] = []
    for n in ns:
        gens += _gens(f"{experiment}/data", {"task": task.name, "d": task.d, "n": int(n)}, R)
    return sample_training_sets(task.N, [int(n) for n in ns for _ in range(R)], gens)


def initial_params(
    model: str, task: PositionTask, ns: Sequence[int], R: int, k: int, experiment: str
) -> dict[str, Tensor]:
    gens: list[torch.Generator] = []
    for n in ns:
        gens += _gens(
            f"{experiment}/init/{model}", {"task": task.name, "d": task.d, "n": int(n), "k": k}, R
        )
    return L.init_params(model, task.d, gens, k=k, dtype=torch.float64)


@dataclass
class GapRuns:
    """Results of the Fig. 2 experiment for one task: errors [len(ns), R] per model, etc."""

    task: PositionTask
    ns: list[int]
    R: int
    k: int
    idx: Tensor
    mask: Tensor
    err: dict[str, Tensor] = field(default_factory=dict)
    epochs: dict[str, Tensor] = field(default_factory=dict)
    converged: dict[str, Tensor] = field(default_factory=dict)
    init: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    final: dict[str, dict[str, Tensor]] = field(default_factory=dict)


def gap_runs(
    task_name: str,
    d: int,
    k: int,
    ns: Sequence[int],
    R: int,
    lr: float,
    max_epochs: int,
    models: Sequence[str] = L.MODELS,
    experiment: str = "convlin/fig2",
    check_every: int = 10,
) -> GapRuns:
    """Fig. 2: hinge loss, full-batch GD until the training loss is exactly 0 (or max_epochs), all runs of all
    sizes of a task batched in one program per model; test error on the whole dataset (Eq. 1).

    Model-1-Layer on one-hot tasks uses its exact closed form (``one_layer_onehot_closed_form``), identical to
    GD (tested); everything else goes through ``cnnbias.engine.train``.  Stopping is checked every
    ``check_every`` epochs: once the hinge loss is 0 its gradient is 0, so the final weights are unchanged.
    """

    task = make_task(task_name, d)
    ns = [int(n) for n in ns]
    idx, mask = training_sets(task, ns, R, experiment)
    out = GapRuns(task, ns, R, k, idx, mask)
    for model in models:
        p0 = initial_params(model, task, ns, R, k, experiment)
        out.init[model] = p0
        if model == "1layer" and task.name != "3rdctrl":
            w, ep = C.one_layer_onehot_closed_form(task, idx, mask, p0["w"], lr)
            params, conv = {"w": w}, ep <= max_epochs
        else:
            res = train(
                L.make_loss(model, task, idx, mask, "hinge"),
                p0,
                optimizer="gd",
                lr=lr,
                stop=StopRule(max_epochs=max_epochs, loss_below=0.0, check_every=check_every),
            )
            params, ep = res.params, res.epochs
            conv = torch.tensor([s == "loss_below" for s in res.stop_reason])
        out.final[model] = params
        out.err[model] = L.test_error(L.effective_weight(model, params), task).reshape(len(ns), R)
        out.epochs[model] = ep.reshape(len(ns), R)
        out.converged[model] = conv.reshape(len(ns), R)
    return out


def pooled_difference(a: Tensor, b: Tensor, rows: Sequence[int]) -> tuple[float, float, float]:
    """Mean over the chosen rows (sizes) of the per-size mean of a and b, and the SE of mean(a) - mean(b).

    a, b: [len(ns), R] independent runs.  Returns (mean_a, mean_b, se_of_difference).
    """
    rows = list(rows)
    A, B = a[rows], b[rows]
    R = A.shape[1]
    var = (A.var(dim=1, unbiased=True) + B.var(dim=1, unbiased=True)) / R  # per size
    return float(A.mean()), float(B.mean()), float(var.sum().sqrt() / len(rows))


def xhinge_error(
    task: PositionTask,
    idx: Tensor,
    mask: Tensor,
    w1_0: Tensor,
    w2_0: Tensor,
    k: int,
    lr: float,
    t: int,
) -> Tensor:
    """Test error [R] after t full-batch GD steps on the X-hinge loss, via Lemma 7's exact (scaled) closed form."""
    M = C.m_train(task, idx, k, mask)
    w1, w2 = C.lemma7(M, w1_0, w2_0, lr, t, scaled=True)
    return L.test_error(L.conv_effective_weight(w1, w2), task)


def gaussian_filters(R: int, k: int, experiment: str, key: dict) -> Tensor:
    """w1^0 ~ N(0, I_k) per run (Theorem 2's initialisation; the scale b does not matter)."""
    return torch.stack(
        [torch.randn(k, generator=g, dtype=torch.float64) for g in _gens(experiment, key, R)]
    )


@dataclass
class InitRuns:
    """Fig. 6/8/9: one training set, R initialisations, accuracies against t for both losses."""

    t_hinge: list[int]
    hinge_test: Tensor  # [T, R] test error (frozen after the run stops)
    hinge_train: Tensor  # [T, R]
    hinge_stop: Tensor  # [R] epoch at which the hinge loss reached 0 (or hinge_max_epochs)
    hinge_final_test: Tensor  # [R] test error at the end of hinge training
    t_x: list[int]
    x_test: Tensor  # [T', R]
    x_train: Tensor  # [T', R]
    asym_err: float  # Theorem-2 error of this training set


def init_runs(
    task_name: str,
    d: int,
    k: int,
    n: int,
    R: int,
    lr: float,
    t_max: int,
    every: int,
    hinge_max_epochs: int,
    experiment: str = "convlin/init",
) -> InitRuns:
    """Fix one training set (size n), draw R initialisations (uniform, PyTorch bounds), train Conv-k with the
    hinge loss (until loss 0 or ``hinge_max_epochs``; test/train error recorded every ``every`` epochs up to
    t_max) and with the X-hinge loss (Lemma 7, exact, at every recorded t <= t_max)."""

    task = make_task(task_name, d)
    idx1, mask1 = training_sets(task, [n], 1, experiment)
    idx, mask = idx1.expand(R, -1).clone(), mask1.expand(R, -1).clone()
    gens = _gens(f"{experiment}/init", {"task": task_name, "d": d, "n": n, "k": k}, R)
    p0 = L.init_params("conv", d, gens, k=k)

    def errs(w: Tensor, ii: Tensor, mm: Tensor) -> tuple[Tensor, Tensor]:
        tr = (L.ebar(task.y[ii] * L.scores(w, task, ii)) * mm).sum(-1) / mm.sum(-1)
        return L.test_error(w, task), tr

    def record(p: dict[str, Tensor], runs: Tensor) -> dict[str, Tensor]:
        te, tr = errs(L.effective_weight("conv", p), idx[runs], mask[runs])
        return {"test": te, "train": tr}

    res = train(
        L.make_loss("conv", task, idx, mask, "hinge"),
        p0,
        optimizer="gd",
        lr=lr,
        stop=StopRule(max_epochs=hinge_max_epochs, loss_below=0.0),
        record=record,
        record_every=every,
    )
    th = [t for t in res.history_epochs if t <= t_max]
    te_h, tr_h = res.history["test"][: len(th)], res.history["train"][: len(th)]
    # frozen after stopping: carry the last value forward over the NaNs, then extend the grid to t_max
    final_te, final_tr = errs(L.effective_weight("conv", res.params), idx, mask)
    te_h = torch.where(torch.isnan(te_h), final_te[None], te_h)
    tr_h = torch.where(torch.isnan(tr_h), final_tr[None], tr_h)
    grid = list(range(0, t_max + 1, every))
    if th[-1] < grid[-1]:
        extra = len(grid) - len(th)
        te_h = torch.cat([te_h, final_te[None].expand(extra, -1)])
        tr_h = torch.cat([tr_h, final_tr[None].expand(extra, -1)])
    M = C.m_train(task, idx, k, mask)
    xs_te, xs_tr = [], []
    for t in grid:
        w1, w2 = C.lemma7(M, p0["w1"], p0["w2"], lr, t, scaled=True)
        a, b = errs(L.conv_effective_weight(w1, w2), idx, mask)
        xs_te.append(a)
        xs_tr.append(b)
    asym, _ = C.thm2_error(M[:1], task)
    return InitRuns(
        grid,
        te_h,
        tr_h,
        res.epochs,
        final_te,
        grid,
        torch.stack(xs_te),
        torch.stack(xs_tr),
        float(asym[0]),
    )


def train_hinge(
    model: str,
    task: PositionTask,
    idx: Tensor,
    mask: Tensor,
    params: dict[str, Tensor],
    lr: float,
    max_epochs: int,
    record_every: int | None = None,
):
    """Full-batch GD on the hinge loss until the training loss is exactly 0 (or max_epochs), all runs batched.

    Returns the engine's TrainResult; with ``record_every`` the history holds the test error on the whole
    dataset (key "test_err") and the training error (key "train_err") every ``record_every`` epochs.
    """
    loss_fn = L.make_loss(model, task, idx, mask, "hinge")
    record = None
    if record_every is not None:
        y_tr = task.y[idx]

        def record(p: dict[str, Tensor], runs) -> dict[str, Tensor]:
            w = L.effective_weight(model, p)
            ii = idx[runs] if runs is not None else idx
            mm = mask[runs] if runs is not None else mask
            tr = (L.ebar(y_tr[ii] * L.scores(w, task, ii)) * mm).sum(-1) / mm.sum(-1)
            return {"test_err": L.test_error(w, task), "train_err": tr}

    return train(
        loss_fn,
        {k_: v.clone() for k_, v in params.items()},
        optimizer="gd",
        lr=lr,
        stop=StopRule(max_epochs=max_epochs, loss_below=0.0),
        n_train=idx.shape[1],
        record=record,
        record_every=record_every or 1,
    )
