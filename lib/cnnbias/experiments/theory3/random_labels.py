"""Random labels, over-parameterization, flatness, margins and polynomial networks
(:cite:`theory_iii`, Sec. 3, Sec. 6.1, App. 9.2, 9.5, 9.10; Figs. 1-4, 11-12, 16-17, 20-24, Table 1).

Every experiment trains all its runs (seeds, widths, training-set sizes, natural and random labels)
as one batched program through :func:`cnnbias.engine.train`: runs of different widths share one
padded tensor with a width mask (:mod:`cnnbias.models.poly_net`), runs of different training-set
sizes share one padded data tensor with 0/1 example weights.  Loss: mean cross-entropy over the
run's training examples; optimizer: full-batch Adam for a fixed number of epochs (the *training
budget*), no regularization, no data augmentation (as in the paper).

Data.  The paper's CIFAR-10 cannot be downloaded.  ``dataset="digits"``: scikit-learn's bundled
8x8 digits (:func:`cnnbias.data.digits.load_digits`, 1,797 images, flattened to 64 inputs in
[0, 1]), split once into a training pool and a fixed test set; ``dataset="mnist1d"``: the mnist1d
set generated offline by ``mnist1d.data.make_dataset`` (40-sample 1-D signals, 10 classes), with
``num_samples`` examples.  Run ``r`` draws its training subset (and its random labels, uniform on
the 10 classes, as in Zhang et al.'s random-label experiment) from the generator of its *data
group*, so the three runs of a three-point triple share one training set.  Test error is always
measured against the true test labels, so chance is ``1 - 1/10``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from torch import Tensor

from cnnbias import config, measures
from cnnbias.engine import StopRule, TrainResult, train
from cnnbias.models import poly_net as P
from cnnbias.stats import mean_se

__all__ = [
    "CONFIGS",
    "EXPERIMENT",
    "CLASSES",
    "Data",
    "Runs",
    "load_data",
    "forward_fn",
    "train_runs",
    "size_sweep",
    "width_sweep",
    "minima",
    "poly_vs_relu",
    "n_params",
]

EXPERIMENT = "theory3.random_labels"
CLASSES = 10
LABELINGS = ("natural", "random")

_COMMON = dict(optimizer="adam", init_scale=1.0, degree=10, bound=8.0)

CONFIGS = {
    "smoke": dict(
        _COMMON, dataset="digits", model="mlp", n_test=300, lr=0.02, epochs=60,
        size_sweep=dict(width=4, sizes=[20, 80], seeds=2),
        width_sweep=dict(n=60, widths=[2, 16], seeds=2, record_every=20),
        minima=dict(n=60, width=16, triples=2),
        poly=dict(n=60, width=16, seeds=2, bounds=[4.0, 8.0]),
        flatness=dict(eps=0.05, directions=2, bisections=8),
        three_point=dict(steps=4, extend=2, err_level=0.05),
        perturbation=dict(gammas=[0.0, 0.2], gamma_claim=0.2, draws=1),
    ),
    "book": dict(
        _COMMON, dataset="digits", model="mlp", n_test=597, lr=0.01, epochs=300,
        size_sweep=dict(width=8, sizes=[50, 100, 200, 400, 800], seeds=4),
        width_sweep=dict(n=200, widths=[2, 4, 8, 16, 32], seeds=4, record_every=10),
        minima=dict(n=200, width=32, triples=6),
        poly=dict(n=200, width=32, seeds=4, bounds=[4.0, 8.0]),
        flatness=dict(eps=0.05, directions=4, bisections=14),
        three_point=dict(steps=8, extend=4, err_level=0.05),
        perturbation=dict(gammas=[0.0, 0.05, 0.1, 0.2, 0.4, 0.8], gamma_claim=0.2, draws=2),
    ),
    # The paper's setting: a 5-layer all-convolutional net (16 channels per hidden layer), no
    # pooling, on a larger mnist1d (16,000 training examples), for a GPU.
    "paper": dict(
        _COMMON, dataset="mnist1d", model="allconv", layers=5, num_samples=20000, n_test=4000,
        lr=0.003, epochs=3000,
        size_sweep=dict(width=16, sizes=[500, 1000, 2000, 4000, 8000, 16000], seeds=5),
        width_sweep=dict(n=4000, widths=[2, 4, 8, 16, 32, 64], seeds=5, record_every=100),
        minima=dict(n=4000, width=32, triples=10),
        poly=dict(n=4000, width=32, seeds=10, bounds=[4.0, 8.0, 16.0]),
        flatness=dict(eps=0.05, directions=10, bisections=20),
        three_point=dict(steps=12, extend=6, err_level=0.05),
        perturbation=dict(gammas=[0.0, 0.05, 0.1, 0.2, 0.4, 0.8], gamma_claim=0.2, draws=5),
    ),
}


# --- data ----------------------------------------------------------------------------------------


@dataclass
class Data:
    """Training pool ``X [N, ...]``, ``y [N]`` and fixed test set ``X_test``, ``y_test``."""

    X: Tensor
    y: Tensor
    X_test: Tensor
    y_test: Tensor
    source: str

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])


def load_data(cfg: dict, dtype: torch.dtype = torch.float64, device=None) -> Data:
    """The training pool and test set of ``cfg["dataset"]`` (module docstring); nothing is downloaded."""
    ds = cfg.get("dataset")
    if ds == "digits":
        from cnnbias.data.digits import load_digits

        x, y, source = load_digits()
        X = x.reshape(len(x), -1).to(torch.float64)
        n_test = int(cfg["n_test"])
        if not 0 < n_test < len(X):
            raise ValueError(f"n_test must lie in 1..{len(X) - 1}, got {n_test}")
        g = torch.Generator().manual_seed(config.run_seed(EXPERIMENT + ".split", {"dataset": ds}, 0))
        perm = torch.randperm(len(X), generator=g)
        te, tr = perm[:n_test], perm[n_test:]
        out = Data(X[tr], y[tr], X[te], y[te], source)
    elif ds == "mnist1d":
        import mnist1d.data as m1

        args = m1.get_dataset_args()
        args.num_samples = int(cfg.get("num_samples", args.num_samples))
        d = m1.make_dataset(args)  # generated offline from a fixed seed (never get_dataset: it downloads)
        Xtr, Xte = torch.as_tensor(d["x"], dtype=torch.float64), torch.as_tensor(d["x_test"], dtype=torch.float64)
        n_test = min(int(cfg["n_test"]), len(Xte))
        out = Data(Xtr, torch.as_tensor(d["y"]).long(), Xte[:n_test], torch.as_tensor(d["y_test"]).long()[:n_test],
                   "mnist1d")
    else:
        raise ValueError(f"dataset must be 'digits' or 'mnist1d', got {ds!r}")
    return Data(out.X.to(device, dtype), out.y.to(device), out.X_test.to(device, dtype), out.y_test.to(device),
                out.source)


# --- models --------------------------------------------------------------------------------------


def forward_fn(cfg: dict, activation: str = "relu"):
    """``forward(params, X) -> scores [R, m, 10]`` for ``cfg["model"]`` and ``activation``."""
    if activation not in P.ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(P.ACTIVATIONS)}, got {activation!r}")
    kw = dict(activation=activation, degree=int(cfg["degree"]), bound=float(cfg["bound"]))
    if cfg["model"] == "mlp":
        return partial(P.mlp_forward, **kw)
    if cfg["model"] == "allconv":
        return partial(P.allconv_forward, **kw)
    raise ValueError(f"model must be 'mlp' or 'allconv', got {cfg['model']!r}")


def weight_names(cfg: dict) -> list[str]:
    """The trainable weight matrices, input to output."""
    if cfg["model"] == "mlp":
        return ["W", "V"]
    return [f"K{i}" for i in range(int(cfg["layers"]) - 1)] + ["V"]


def n_params(cfg: dict, width: int, in_shape: Sequence[int]) -> int:
    """Number of weights W of the model at ``width`` (hidden units or channels)."""
    if cfg["model"] == "mlp":
        return P.mlp_n_params(width, int(np.prod(in_shape)), CLASSES)
    return P.allconv_n_params(width, int(cfg["layers"]), int(in_shape[-1]), CLASSES)


def _init(cfg: dict, widths: list[int], in_shape, gens, dtype, device):
    if cfg["model"] == "mlp":
        return P.mlp_init(widths, int(np.prod(in_shape)), CLASSES, gens, float(cfg["init_scale"]), dtype, device)
    return P.allconv_init(widths, int(cfg["layers"]), int(in_shape[-1]), CLASSES, gens,
                          init_scale=float(cfg["init_scale"]), dtype=dtype, device=device)


# --- training ------------------------------------------------------------------------------------


@dataclass
class Runs:
    """Trained runs: parameters ``[R, ...]``, each run's training data ``X [R, n_max, ...]``,
    labels ``y [R, n_max]`` (random ones for random-label runs), 0/1 example weights ``w [R, n_max]``,
    and the per-run settings."""

    params: dict[str, Tensor]
    X: Tensor
    y: Tensor
    w: Tensor
    widths: list[int]
    sizes: list[int]
    labels: list[str]
    activation: str
    result: TrainResult
    forward: object = field(repr=False, default=None)

    def scores(self, X: Tensor | None = None) -> Tensor:
        return self.forward(self.params, self.X if X is None else X)

    def train_error(self) -> Tensor:
        with torch.no_grad():
            return measures.multiclass_error(self.scores(), self.y, self.w).cpu()

    def test_error(self, data: Data) -> Tensor:
        with torch.no_grad():
            return measures.multiclass_error(self.scores(data.X_test), data.y_test).cpu()


def _draw_data(data: Data, n: int, labels: str, g: torch.Generator) -> tuple[Tensor, Tensor]:
    N = len(data.y)
    if not 1 <= n <= N:
        raise ValueError(f"training-set size n must lie in 1..{N}, got {n}")
    idx = torch.randperm(N, generator=g)[:n].to(data.y.device)
    y = data.y[idx]
    if labels == "random":
        y = torch.randint(0, CLASSES, (n,), generator=g).to(data.y.device)
    return data.X[idx], y


def train_runs(cfg: dict, data: Data, name: str, widths: Sequence[int], sizes: Sequence[int],
               labels: Sequence[str], groups: Sequence[int], activation: str = "relu",
               data_name: str | None = None, record_every: int | None = None,
               bounds: Sequence[float] | None = None) -> Runs:
    """Train one run per entry of ``widths``, ``sizes``, ``labels`` and ``groups`` (data group: runs of
    one group share a training set) in one batched call of :func:`cnnbias.engine.train`.

    Seeds: the data of group ``g`` come from ``config.run_seed(f"{EXPERIMENT}.{data_name}.data", cfg, g)``
    (``data_name`` defaults to ``name``).  With ``record_every``, the training error of every run
    is recorded every that many epochs (``result.history["train_err"] [T, R]``).  ``bounds`` (one per
    run) sets the interval ``[-B, B]`` of each run's polynomial activation (default ``cfg["bound"]``).
    (with ``labels`` and ``n`` in the key), the initialization of run ``r`` from
    ``config.generators(f"{EXPERIMENT}.{name}.init", cfg, ...)``.  Raises if a run diverges."""
    R = len(widths)
    if not (len(sizes) == len(labels) == len(groups) == R) or R == 0:
        raise ValueError("widths, sizes, labels and groups must be non-empty lists of one length")
    for lab in labels:
        if lab not in LABELINGS:
            raise ValueError(f"labels must be 'natural' or 'random', got {lab!r}")
    dev, dt = data.X.device, data.X.dtype
    n_max = max(int(n) for n in sizes)
    X = torch.zeros((R, n_max) + data.in_shape, dtype=dt, device=dev)
    y = torch.zeros(R, n_max, dtype=torch.long, device=dev)
    w = torch.zeros(R, n_max, dtype=dt, device=dev)
    for r, (n, lab, g) in enumerate(zip(sizes, labels, groups)):
        key = {"cfg": cfg, "n": int(n), "labels": lab}
        gen = torch.Generator().manual_seed(config.run_seed(f"{EXPERIMENT}.{data_name or name}.data", key, int(g)))
        X[r, :n], y[r, :n] = _draw_data(data, int(n), lab, gen)
        w[r, :n] = 1.0
    gens = [config.generators(f"{EXPERIMENT}.{name}.init", {"cfg": cfg, "width": int(h)}, 1, start=r)[0]
            for r, h in enumerate(widths)]
    params = _init(cfg, [int(h) for h in widths], data.in_shape, gens, dt, dev)
    if bounds is not None:
        if len(bounds) != R or not all(float(b) > 0 for b in bounds):
            raise ValueError(f"bounds must hold one positive number per run ({R}), got {list(bounds)!r}")
        params["bound"] = torch.tensor([float(b) for b in bounds], dtype=dt, device=dev)
    fwd = forward_fn(cfg, activation)

    def loss_fn(p, batch):
        return measures.cross_entropy(fwd(p, batch.take(X)), batch.take(y), batch.take(w))

    def record(p, live):
        return {"train_err": measures.multiclass_error(fwd(p, X[live]), y[live], w[live])}

    res = train(loss_fn, params, lr=float(cfg["lr"]), stop=StopRule(max_epochs=int(cfg["epochs"])),
                trainable=weight_names(cfg), optimizer=cfg["optimizer"],
                record=record if record_every else None, record_every=int(record_every or 1))
    if not bool(torch.isfinite(res.final_loss).all()):
        bad = [r for r in range(R) if not bool(torch.isfinite(res.final_loss[r]))]
        raise RuntimeError(f"training diverged (non-finite loss) in runs {bad} of {name!r}; lower cfg['lr']")
    return Runs(res.params, X, y, w, [int(h) for h in widths], [int(n) for n in sizes], list(labels),
                activation, res, fwd)


def _summary(values: Tensor, keys: list[tuple]) -> dict[tuple, tuple[float, float, int]]:
    """Mean, SE and count of ``values`` per distinct key (in first-seen order)."""
    out = {}
    for k in dict.fromkeys(keys):
        sel = torch.tensor([kk == k for kk in keys])
        m, s = mean_se(values[sel].double())
        out[k] = (float(m), float(s), int(sel.sum()))
    return out


def size_sweep(cfg: dict, data: Data) -> dict:
    """Figs. 1-2: train and test error against the training-set size ``n`` at a fixed width (number of
    weights ``W``), natural and random labels.  Returns the per-run errors and per-(labels, n) summaries."""
    sc = cfg["size_sweep"]
    specs = [(lab, n, s) for lab in LABELINGS for n in sc["sizes"] for s in range(int(sc["seeds"]))]
    labs, ns, seeds = zip(*specs)
    groups = list(range(len(specs)))
    runs = train_runs(cfg, data, "size_sweep", [int(sc["width"])] * len(specs), ns, labs, groups)
    tr, te = runs.train_error(), runs.test_error(data)
    keys = [(lab, n) for lab, n, _ in specs]
    return dict(runs=runs, train=tr, test=te, keys=keys, train_summary=_summary(tr, keys),
                test_summary=_summary(te, keys), W=n_params(cfg, int(sc["width"]), data.in_shape))


def width_sweep(cfg: dict, data: Data) -> dict:
    """Figs. 3-4: train and test error (and test loss) against the width, hence the number of weights
    ``W``, at a fixed training-set size ``n``, natural and random labels.  The runs of one seed share
    one training set across widths (the paper's "fixed training set with N examples")."""
    sc = cfg["width_sweep"]
    specs = [(lab, h, s) for lab in LABELINGS for h in sc["widths"] for s in range(int(sc["seeds"]))]
    labs, hs, seeds = zip(*specs)
    n = int(sc["n"])
    groups = [s for _, _, s in specs]
    runs = train_runs(cfg, data, "width_sweep", hs, [n] * len(specs), labs, groups,
                      record_every=int(sc.get("record_every", 0)) or None)
    tr, te = runs.train_error(), runs.test_error(data)
    with torch.no_grad():
        te_loss = measures.cross_entropy(runs.scores(data.X_test), data.y_test).cpu()
    keys = [(lab, h) for lab, h, _ in specs]
    Ws = {h: n_params(cfg, int(h), data.in_shape) for h in sc["widths"]}
    hist = runs.result.history.get("train_err")
    return dict(runs=runs, train=tr, test=te, test_loss=te_loss, keys=keys, seeds=list(seeds),
                history=hist, history_epochs=runs.result.history_epochs,
                train_summary=_summary(tr, keys), test_summary=_summary(te, keys),
                test_loss_summary=_summary(te_loss, keys), W=Ws, n=n)


def minima(cfg: dict, data: Data, gen: torch.Generator) -> dict:
    """Sec. 6.1 and App. 9.2/9.5 at one width and ``n``: triples of runs (three initializations on one
    training set) with natural and random labels, and the measurements of each trained net: train and
    test error, weight norm, normalized median margin, the flatness radius of Eq. 16 along random
    directions of all weights and of the top layer (Table 1), the three-point interpolation of Eq. 15
    (Figs. 11-12) and the input-perturbation robustness of Eq. 47 (Fig. 20).  ``gen`` draws the random
    directions and perturbations."""
    sc = cfg["minima"]
    T = int(sc["triples"])
    specs = [(lab, t) for lab in LABELINGS for t in range(T) for _ in range(3)]
    labs = [lab for lab, _ in specs]
    groups = [t + (T if lab == "random" else 0) for lab, t in specs]
    n, h = int(sc["n"]), int(sc["width"])
    runs = train_runs(cfg, data, "minima", [h] * len(specs), [n] * len(specs), labs, groups)
    names = weight_names(cfg)
    p = runs.params
    fwd = runs.forward
    out = dict(runs=runs, labels=labs, train=runs.train_error(), test=runs.test_error(data))
    with torch.no_grad():
        out["chance"] = measures.chance_error(runs.scores(data.X_test), data.y_test).cpu()
        sc_tr = runs.scores()
        out["norm"] = measures.param_norm(p, names).cpu()
        out["margin"] = measures.normalized_margin(sc_tr, runs.y, p, names, 0.5).cpu()
        # Eq. 16: the flatness radius of the training loss, all weights and top layer only
        fl = cfg["flatness"]
        Xr, yr, wr = runs.X, runs.y, runs.w

        def loss(q):
            k = next(iter(q.values())).shape[0] // Xr.shape[0]
            rep = (lambda t: t.repeat_interleave(k, 0)) if k > 1 else (lambda t: t)
            return measures.cross_entropy(fwd(q, rep(Xr)), rep(yr), rep(wr))

        for key, sel in (("flat_all", names), ("flat_top", names[-1:])):
            dirs = measures.random_directions(p, sel, int(fl["directions"]), gen)
            rad = measures.flatness_radius(loss, p, dirs, float(fl["eps"]), bisections=int(fl["bisections"]))
            out[key] = rad.mean(1).cpu()
        # Eq. 15: three-point interpolation, training error on each triple's training set
        tp = cfg["three_point"]
        lam = measures.simplex_grid(int(tp["steps"]), int(tp["extend"]))
        G = lam.shape[0]
        q = measures.three_point_params(p, lam.to(Xr))
        first = torch.arange(0, len(specs), 3, device=Xr.device)
        Xt, yt, wt = (t[first].repeat_interleave(G, 0) for t in (Xr, yr, wr))
        err = measures.multiclass_error(fwd(q, Xt), yt, wt).reshape(len(first), G).cpu()
        out["lam"], out["plane_err"] = lam, err
        out["flat_area"] = (err <= float(tp["err_level"])).double().mean(1)
        out["triple_labels"] = [labs[i] for i in first.tolist()]
        # Eq. 47: perturbation robustness on the training set
        pc = cfg["perturbation"]
        out["gammas"] = [float(gm) for gm in pc["gammas"]]
        out["perturbed_err"] = measures.input_perturbation_error(
            fwd, p, Xr, yr, pc["gammas"], gen, int(pc["draws"]), wr).cpu()
    return out


def poly_vs_relu(cfg: dict, data: Data) -> dict:
    """Figs. 21-24: the same network with the degree-``cfg["degree"]`` polynomial activation on
    ``[-B, B]`` for each ``B`` in ``cfg["poly"]["bounds"]``, natural and random labels; run ``s`` uses the
    training set of ReLU triple ``s`` of :func:`minima` (same data group), so the comparison with the
    ReLU nets is paired by training set.  Returns per-run errors with ``bounds`` and ``labels``."""
    sc = cfg["poly"]
    S = int(sc["seeds"])
    T = int(cfg["minima"]["triples"])
    if S > T:
        raise ValueError(f"poly seeds ({S}) must not exceed the minima triples ({T}) they pair with")
    bset = [float(b) for b in sc.get("bounds", [cfg["bound"]])]
    specs = [(b, lab, s) for b in bset for lab in LABELINGS for s in range(S)]
    bounds = [b for b, _, _ in specs]
    labs = [lab for _, lab, _ in specs]
    groups = [s + (T if lab == "random" else 0) for _, lab, s in specs]
    n, h = int(sc["n"]), int(sc["width"])
    if (n, h) != (int(cfg["minima"]["n"]), int(cfg["minima"]["width"])):
        raise ValueError("poly n and width must equal the minima experiment's, for a paired comparison")
    runs = train_runs(cfg, data, "poly", [h] * len(specs), [n] * len(specs), labs, groups, activation="poly",
                      data_name="minima", bounds=bounds)
    return dict(runs=runs, labels=labs, bounds=bounds, seeds=[s for _, _, s in specs], train=runs.train_error(),
                test=runs.test_error(data), groups=groups)
