"""Experiment drivers for Part I (two-layer convolutional linear classifiers, :cite:`gd_conv_linear`).

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
from cnnbias import validate as V
from cnnbias.data.positions import PositionTask, make_task, sample_training_sets
from cnnbias.engine import StopRule, train
from cnnbias.models import init
from cnnbias.models import linear as L
from cnnbias.theory import convlinear as C


def _check_ns(ns: Sequence[int]) -> None:
    if isinstance(ns, (str, bytes, int)) or not isinstance(ns, (Sequence, Tensor)) or len(ns) == 0:
        raise ValueError(f"ns must be a non-empty sequence of training sizes (integers >= 1), got {ns!r}")
    for n in ns:
        V.integer("ns[i]", n, 1)


def _gens(experiment: str, key: dict, R: int) -> list[torch.Generator]:
    return config.generators(experiment, key, R)


def training_sets(
    task: PositionTask, ns: Sequence[int], R: int, experiment: str
) -> tuple[Tensor, Tensor]:
    """R training sets per size n (run order: n-major), padded to max(ns): idx [len(ns) R, n_max], mask."""
    if not isinstance(task, PositionTask):
        raise TypeError(f"task must be a PositionTask (see make_task), got {type(task).__name__}")
    _check_ns(ns)
    V.integer("R", R, 1)
    gens: list[torch.Generator] = []
    for n in ns:
        gens += _gens(f"{experiment}/data", {"task": task.name, "d": task.d, "n": int(n)}, R)
    return sample_training_sets(task.N, [int(n) for n in ns for _ in range(R)], gens)


def initial_params(
    model: str, task: PositionTask, ns: Sequence[int], R: int, k: int, experiment: str
) -> dict[str, Tensor]:
    """Initial parameters of ``model`` for R runs per size n (run order: n-major), one generator per run."""
    V.choice("model", model, L.MODELS)
    _check_ns(ns)
    V.integer("R", R, 1)
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
    _check_ns(ns)
    V.integer("k", k, 1)
    V.integer("R", R, 1)
    V.positive("lr", lr)
    V.integer("max_epochs", max_epochs, 1)
    V.integer("check_every", check_every, 1)
    if isinstance(models, str) or len(models) == 0:
        raise ValueError(f"models must be a non-empty list of names from {L.MODELS}, got {models!r}")
    for m_ in models:
        V.choice("models[i]", m_, L.MODELS)
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


def paired_difference(a: Tensor, b: Tensor, rows: Sequence[int]) -> tuple[float, float, float]:
    """(mean a, mean b, SE of mean(a - b)) over the chosen rows (sizes) of [len(ns), R] results paired by
    training set (column r of a and b used the same training set, as the models of :func:`~cnnbias.experiments.convlin.gap_runs` do; the
    sizes use independent training sets).  SE = sqrt(sum_rows var_r(a - b) / R) / len(rows), i.e. over the R
    independent training sets of each size.
    """
    V.tensor("a", a, 2)
    V.tensor("b", b, shape=tuple(a.shape))
    if a.shape[1] < 2:
        raise ValueError(f"a and b need R >= 2 runs per size for a standard error, got shape {tuple(a.shape)}")
    rows = list(rows)
    if not rows:
        raise ValueError("rows must name at least one size (row of a and b)")
    for r_ in rows:
        V.integer("rows[i]", r_, 0, a.shape[0] - 1)
    A, B = a[rows], b[rows]
    var = (A - B).var(dim=1, unbiased=True) / A.shape[1]
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
    V.integer("k", k, 1)
    M = C.m_train(task, idx, k, mask)
    w1, w2 = C.lemma7(M, w1_0, w2_0, lr, t, scaled=True)
    return L.test_error(L.conv_effective_weight(w1, w2), task)


def gaussian_filters(R: int, k: int, experiment: str, key: dict) -> Tensor:
    """w1^0 ~ N(0, I_k) per run (Theorem 2's initialisation; the scale b does not matter)."""
    V.integer("k", k, 1)
    return init.normal(_gens(experiment, key, R), (k,))


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
    for nm, v, lo in (("k", k, 1), ("n", n, 1), ("R", R, 1), ("t_max", t_max, 0), ("every", every, 1),
                      ("hinge_max_epochs", hinge_max_epochs, 1)):
        V.integer(nm, v, lo)
    V.positive("lr", lr)
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
    V.positive("lr", lr)
    V.integer("max_epochs", max_epochs, 1)
    if record_every is not None:
        V.integer("record_every", record_every, 1)
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of name -> tensor, got {type(params).__name__}")
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


# ----------------------------------------------------------------------------------------------------------------
# Sweep behind Fig. 2 / Fig. 7 (``python -m cnnbias sweep convlin.fig2``) and the claims computed from it
# ----------------------------------------------------------------------------------------------------------------

from cnnbias.sweeps.spec import ClaimSpec as _ClaimSpec  # noqa: E402  (the sweep declarations end the module)
from cnnbias.sweeps.spec import Sweep as _Sweep  # noqa: E402
from cnnbias.sweeps.spec import register as _register  # noqa: E402
from cnnbias.sweeps.spec import register_claim as _register_claim  # noqa: E402

#: Fig. 2 settings per scale (the chapter's ``CONFIGS``; ``paper``: Sec. 5 of the paper, 100 runs per n).
FIG2_CONFIGS = {
    "smoke": dict(d=20, k=3, ns=[4, 8, 12, 20], R=4, lr=0.1, max_epochs=2000),
    "book": dict(d=100, k=5, ns=[5, 10, 20, 30, 40, 60, 80, 100, 150], R=20, lr=0.1, max_epochs=5000),
    "paper": dict(d=100, k=5, ns=[5, 10, 20, 30, 40, 60, 80, 100, 150], R=100, lr=0.1, max_epochs=100000),
}
FIG2_TASKS = ("cls", "1stctrl", "3rdctrl", "evenodd")


def fig2_cells(scale: str) -> list[dict]:
    """One cell per (task, model, n): the R runs of :func:`~cnnbias.experiments.convlin.gap_runs` for that model at that size."""
    c = FIG2_CONFIGS[scale]
    return [dict(task=t, model=m, n=int(n), d=c["d"], k=c["k"], R=c["R"], lr=c["lr"], max_epochs=c["max_epochs"],
                 check_every=10)
            for t in FIG2_TASKS for m in L.MODELS for n in c["ns"]]


def fig2_cell(cfg: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """One Fig. 2 cell: :func:`~cnnbias.experiments.convlin.gap_runs` for one task, model and n (CPU, float64).  Returns per run the test
    error ``err``, the epochs and whether the hinge loss reached 0 (``converged``); for Conv-k also the learned
    filter ``w1`` ``[R][k]`` (Fig. 7's sign patterns).  Runs draw the same seeds as in the chapter's batch."""
    m = cfg["model"]
    gr = gap_runs(cfg["task"], cfg["d"], cfg["k"], [cfg["n"]], cfg["R"], cfg["lr"], cfg["max_epochs"], models=(m,),
                  check_every=cfg["check_every"])
    out = {"err": gr.err[m][0].tolist(), "epochs": [int(e) for e in gr.epochs[m][0].tolist()],
           "converged": [bool(c) for c in gr.converged[m].reshape(-1).tolist()]}
    if m == "conv":
        out["w1"] = gr.final[m]["w1"].tolist()
    return out


SWEEP_FIG2 = _register(_Sweep(
    "convlin.fig2", fig2_cell, cells={s: fig2_cells(s) for s in FIG2_CONFIGS},
    code=("cnnbias.config", "cnnbias.data.positions", "cnnbias.engine", "cnnbias.models.linear",
          "cnnbias.theory.convlinear"),
    description="Part I Fig. 2 and 7: 1-Layer, Conv-k, FC-2 on the four tasks, test error vs n",
    label=lambda c: f"{c['task']}/{c['model']}/n={c['n']}",
    cpu_only=True,
))


def fig2_arrays(cells: list[tuple[dict, dict]]) -> dict:
    """Stored Fig. 2 cells as ``{"ns": [...], "R", "d", "k", (task, model): {"err": [len(ns), R], "w1": ...}}``."""
    ns = sorted({c["n"] for c, _ in cells})
    by = {(c["task"], c["model"], c["n"]): (c, r) for c, r in cells}
    c0 = cells[0][0]
    out: dict = {"ns": ns, "R": c0["R"], "d": c0["d"], "k": c0["k"]}
    for t, m in sorted({(c["task"], c["model"]) for c, _ in cells}):
        rows = [by[(t, m, n)][1] for n in ns]
        out[(t, m)] = {"err": torch.tensor([r["err"] for r in rows], dtype=torch.float64)}
        if m == "conv":
            out[(t, m)]["w1"] = torch.tensor([r["w1"] for r in rows], dtype=torch.float64)
    return out


def _mid(a: dict) -> list[int]:
    return [i for i, n in enumerate(a["ns"]) if 0.2 * a["d"] <= n <= a["d"]]


def _claim_gap(task: str):
    def compute(cells, claims) -> None:
        from cnnbias.data.positions import TASK_TITLES

        title = TASK_TITLES[task]
        a = fig2_arrays(cells)
        acc_c, acc_1 = 1 - a[(task, "conv")]["err"], 1 - a[(task, "1layer")]["err"]
        ma, mb, se = paired_difference(acc_c, acc_1, _mid(a))
        claims.greater(f"convlin.fig2_{task}", f"{title}: mean accuracy over mid-range n, Conv-{a['k']} vs 1-Layer "
                       "(SE over the independent training sets, paired)",
                       ma, mb, se, k=2.0, paper="Conv-5 above 1-Layer (Fig. 2)")
    return compute


def _claim_fc2(cells, claims) -> None:
    a = fig2_arrays(cells)
    diffs = [float((a[(t, "fc2")]["err"].mean() - a[(t, "1layer")]["err"].mean()).abs())
             for t in ("cls", "1stctrl", "3rdctrl")]
    claims.check("convlin.fc2_like_one_layer",
                 "FC-2 vs 1-Layer: |mean accuracy difference| over all n, per task (Cls, 1stCtrl, 3rdCtrl)",
                 max(diffs) <= 0.02, measured=", ".join(f"{v:.4f}" for v in diffs),
                 paper="same behaviour as 1-Layer (Section 1)", tolerance="each <= 0.02")


def _claim_one_layer_formula(cells, claims) -> None:
    from cnnbias.theory.taskcls import one_layer_error

    a = fig2_arrays(cells)
    zs = []
    for t in ("cls", "1stctrl"):
        e = a[(t, "1layer")]["err"]
        th = one_layer_error(a["d"], a["ns"])
        se = float((e.var(1) / a["R"]).sum().sqrt() / len(a["ns"]))
        zs.append(abs(float((e.mean(1) - th).mean())) / se)
    claims.at_most("convlin.one_layer_formula",
                   "1-Layer error vs 1/2((d-1)/d)^n: |pooled difference| / SE (Cls, 1stCtrl; max)", max(zs), 3.0,
                   paper="E_1Layer = 1/2((d-1)/d)^n (Sec. 3.3.2)")


def _claim_even_odd(cells, claims) -> None:
    a = fig2_arrays(cells)
    ma, mb, se = paired_difference(1 - a[("evenodd", "conv")]["err"], 1 - a[("evenodd", "1layer")]["err"], _mid(a))
    s = torch.sign(a[("evenodd", "conv")]["w1"])
    alt = ((s[..., 1:] * s[..., :-1]) < 0).all(-1).double().mean(1)
    big = [i for i, n in enumerate(a["ns"]) if n >= 0.6 * a["d"]]
    alt_big = float(alt[big].mean())
    claims.check("convlin.even_odd", f"even/odd: Conv-{a['k']} minus 1-Layer mean accuracy over mid-range n (> 2 SE), "
                 "and fraction of alternating filters for n >= 0.6 d (>= 0.5)",
                 (ma - mb > 2 * se) and alt_big >= 0.5,
                 measured=f"diff={ma - mb:.4f} (SE {se:.4f}), alternating={alt_big:.3f}",
                 paper="Conv-k outperforms 1-Layer; filter signs (+,-,+,-,...) (App. G)",
                 tolerance="diff > 2 SE and fraction >= 0.5")


for _task in ("cls", "1stctrl", "3rdctrl"):
    _register_claim(_ClaimSpec(f"convlin.fig2_{_task}", "convlin.fig2", _claim_gap(_task),
                               select=lambda c, t=_task: c["task"] == t and c["model"] in ("conv", "1layer")))
_register_claim(_ClaimSpec("convlin.fc2_like_one_layer", "convlin.fig2", _claim_fc2,
                           select=lambda c: c["task"] != "evenodd" and c["model"] in ("fc2", "1layer")))
_register_claim(_ClaimSpec("convlin.one_layer_formula", "convlin.fig2", _claim_one_layer_formula,
                           select=lambda c: c["task"] in ("cls", "1stctrl") and c["model"] == "1layer"))
_register_claim(_ClaimSpec("convlin.even_odd", "convlin.fig2", _claim_even_odd,
                           select=lambda c: c["task"] == "evenodd" and c["model"] in ("conv", "1layer")))
