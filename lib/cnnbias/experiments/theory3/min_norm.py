"""Minimum norm, implicit regularization and classical bounds (:cite:`theory_iii`, App. 8.1-8.2, 9.4.1,
9.6, 9.8, 9.10.5): the experiments behind the chapter ``book/part4/min_norm``.

Every driver trains all its runs (seeds, initial scales, step sizes, models) as one batched tensor program:
plain GD/SGD on tensors with a leading run axis ``R``, float64 on the CPU.  Closed forms come from
:mod:`cnnbias.theory.theory3.min_norm` and :mod:`cnnbias.theory.theory3.bounds`.

Data (nothing is downloaded): Gaussian ``X`` with i.i.d. ``N(0, 1)`` entries and ``N(0, 1)`` targets;
Gaussian ``X`` with a prescribed spectrum (random orthogonal factors, eigenvalues of ``X X^T / n``
log-spaced over ``[s_min, s_max]``), for the early-stopping sweep; scikit-learn's bundled 8x8 digits
(:func:`cnnbias.data.digits.load_digits`, pixels in ``[0, 1]``), for the first-layer experiment.
Run ``r`` draws everything from ``config.generators(EXPERIMENT + "." + part, cfg_part, R)[r]`` (on the CPU).

Device and precision.  Tensors live on ``config.device()`` (CPU, or CUDA at paper scale) and are float64
on every device, whatever ``CNNBIAS_DTYPE`` says: the chapter's claims compare residuals of exact identities
with tolerances of 1e-10 to 1e-12, which float32 cannot resolve.  Drivers return CPU tensors.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math

import numpy as np
import torch
from torch import Tensor

from cnnbias import config
from cnnbias import validate as V
from cnnbias.models import poly_features as PF
from cnnbias.theory.theory3 import min_norm as M

__all__ = [
    "CONFIGS",
    "EXPERIMENT",
    "DivergedError",
    "on_device",
    "gaussian_problem",
    "spectral_problem",
    "digits_problem",
    "run_gd",
    "run_sgd",
    "min_norm_runs",
    "init_scale_sweep",
    "step_size_sweep",
    "tikhonov_sweep",
    "gd_ridge_sweep",
    "first_layer_span",
    "poly_standard",
    "poly_weight",
    "poly_product",
    "robust_check",
    "fit_loglog",
]

EXPERIMENT = "theory3.min_norm"

CONFIGS = {
    "smoke": dict(
        min_norm=dict(R=3, n=8, d=24, gd_steps=400, sgd_steps=4000, record=10),
        init_scale=dict(R=3, n=8, d=24, scales=[0.0, 0.1, 1.0], steps=400),
        step_size=dict(R=3, n=8, d=24, factors=[0.5, 1.0, 1.9, 2.1], steps=400),
        tikhonov=dict(R=3, n=8, d=24, lams=[1e-2, 1e-4, 1e-6]),
        gd_ridge=dict(R=2, n=20, d=60, s_max=1.0, s_min=1e-4, T_max=3000, per_decade=3, fit_margin=30.0),
        first_layer=dict(R=2, n=20, width=8, steps=100, lr=0.5, init_scales=[1e-2, 1.0]),
        poly=dict(R=3, d=2, degree=3, n=6, width=8, steps=4000, lr=0.02, init_scales=[0.1, 0.3],
                  std_steps=4000,
                  product_scales=[0.01, 1.0], product_lr=1.0, product_steps=4000),
        robust=dict(R=4, d=10, rho=0.3, steps=200, starts=3),
    ),
    "book": dict(
        min_norm=dict(R=8, n=20, d=60, gd_steps=600, sgd_steps=12000, record=50),
        init_scale=dict(R=8, n=20, d=60, scales=[0.0, 1e-3, 1e-2, 1e-1, 1.0], steps=600),
        step_size=dict(R=8, n=20, d=60, factors=[0.25, 0.5, 1.0, 1.5, 1.9, 2.05, 2.5], steps=600),
        tikhonov=dict(R=8, n=20, d=60, lams=[1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8]),
        gd_ridge=dict(R=8, n=40, d=120, s_max=1.0, s_min=1e-5, T_max=10000, per_decade=4, fit_margin=30.0),
        first_layer=dict(R=2, n=40, width=24, steps=100, lr=0.5, init_scales=[1e-2, 1e-1, 1.0]),
        poly=dict(R=8, d=2, degree=3, n=6, width=10, steps=20000, lr=0.02, init_scales=[0.1, 0.3],
                  std_steps=10000, product_scales=[1e-3, 1e-2, 1e-1, 1.0, 10.0], product_lr=1.0,
                  product_steps=20000),
        robust=dict(R=16, d=20, rho=0.3, steps=300, starts=4),
    ),
    # Larger problems and more seeds, for a GPU.
    "paper": dict(
        min_norm=dict(R=100, n=200, d=600, gd_steps=3000, sgd_steps=200000, record=500),
        init_scale=dict(R=100, n=200, d=600, scales=[0.0, 1e-3, 1e-2, 1e-1, 1.0], steps=3000),
        step_size=dict(R=100, n=200, d=600, factors=[0.25, 0.5, 1.0, 1.5, 1.9, 2.05, 2.5], steps=3000),
        tikhonov=dict(R=100, n=200, d=600, lams=[1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8]),
        gd_ridge=dict(R=50, n=200, d=600, s_max=1.0, s_min=1e-7, T_max=1000000, per_decade=6, fit_margin=100.0),
        first_layer=dict(R=20, n=200, width=256, steps=3000, lr=0.05, init_scales=[1e-3, 1e-2, 1e-1, 1.0]),
        poly=dict(R=100, d=3, degree=3, n=12, width=40, steps=100000, lr=0.01, init_scales=[0.1, 0.3],
                  std_steps=100000, product_scales=[1e-3, 1e-2, 1e-1, 1.0, 10.0], product_lr=1.0,
                  product_steps=200000),
        robust=dict(R=200, d=100, rho=0.3, steps=1000, starts=8),
    ),
}


class DivergedError(RuntimeError):
    """A training run diverged (non-finite or exploding loss); the message names the runs."""


_DEVICE: contextvars.ContextVar = contextvars.ContextVar("min_norm_device", default=None)


def _device() -> torch.device:
    """``config.device()``, or the device set by :func:`on_device`.  Every tensor is float64 on every device
    (module docstring)."""
    dev = _DEVICE.get()
    return config.device() if dev is None else dev


@contextlib.contextmanager
def on_device(device: torch.device | str | None):
    """Within the block the drivers put their tensors on ``device`` (None: ``config.device()``); the
    sweep's cell function runs a driver on the device it is given."""
    token = _DEVICE.set(None if device is None else torch.device(device))
    try:
        yield
    finally:
        _DEVICE.reset(token)


def _cpu(x):
    """``x`` with every tensor (also inside dicts, lists, tuples) moved to the CPU."""
    if isinstance(x, Tensor):
        return x.cpu()
    if isinstance(x, dict):
        return {k: _cpu(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_cpu(v) for v in x)
    return x


def _returns_cpu(fn):
    """Decorator: the driver's result comes back on the CPU (notebooks print and plot it)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return _cpu(fn(*args, **kwargs))
    return wrapper


def _runs(runs, R: int) -> tuple[int, int]:
    """``(r0, r1)``: the runs ``r0 <= r < r1`` of ``R`` a driver computes (``runs=None``: all)."""
    if runs is None:
        return 0, R
    if not (isinstance(runs, (list, tuple)) and len(runs) == 2
            and all(isinstance(r, int) and not isinstance(r, bool) for r in runs)
            and 0 <= runs[0] < runs[1] <= R):
        raise ValueError(f"runs must be [r0, r1] with 0 <= r0 < r1 <= R = {R}, got {runs!r}")
    return int(runs[0]), int(runs[1])


def _gens(part: str, cfg: dict, R: int, runs=None) -> list[torch.Generator]:
    """The generators of runs ``runs = (r0, r1)`` (default all ``R``) of ``part``: run ``r`` draws from
    ``config.generators(EXPERIMENT + "." + part, cfg, R)[r]`` whichever runs are computed together."""
    r0, r1 = _runs(runs, R)
    return config.generators(f"{EXPERIMENT}.{part}", cfg, r1 - r0, start=r0)


def _subset(values, chosen, name: str) -> list:
    """``chosen`` (default all ``values``), each of which must be one of ``values``."""
    if chosen is None:
        return list(values)
    chosen = list(chosen)
    bad = [v for v in chosen if v not in values]
    if bad or not chosen:
        raise ValueError(f"{name} must be a non-empty selection of {list(values)}, got {chosen!r}")
    return chosen


# --- data ----------------------------------------------------------------------------------------


def gaussian_problem(gens: list[torch.Generator], n: int, d: int) -> tuple[Tensor, Tensor]:
    """``X [R, n, d]`` with i.i.d. ``N(0, 1)`` entries and ``y [R, n] ~ N(0, 1)``, one run per generator."""
    V.generators("gens", gens)
    V.integer("n", n, 1)
    V.integer("d", d, n + 1)
    X = torch.stack([torch.randn(n, d, generator=g, dtype=torch.float64) for g in gens])
    y = torch.stack([torch.randn(n, generator=g, dtype=torch.float64) for g in gens])
    return X.to(_device()), y.to(_device())


def spectral_problem(gens: list[torch.Generator], n: int, d: int, s_max: float, s_min: float
                     ) -> tuple[Tensor, Tensor]:
    """``X = U diag(sqrt(n s)) V^T`` with Haar-random ``U [n, n]``, ``V [d, n]`` (QR of Gaussian matrices) and
    the eigenvalues ``s`` of ``X X^T / n`` log-spaced from ``s_max`` down to ``s_min``; ``y ~ N(0, I_n)``."""
    V.generators("gens", gens)
    V.integer("n", n, 2)
    V.integer("d", d, n + 1)
    V.positive("s_min", s_min)
    V.real("s_max", s_max, s_min, lo_open=True)
    s = torch.logspace(math.log10(s_max), math.log10(s_min), n, dtype=torch.float64)
    Xs, ys = [], []
    for g in gens:
        U, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
        Q, _ = torch.linalg.qr(torch.randn(d, n, generator=g, dtype=torch.float64))
        Xs.append(U @ torch.diag((n * s).sqrt()) @ Q.T)
        ys.append(torch.randn(n, generator=g, dtype=torch.float64))
    return torch.stack(Xs).to(_device()), torch.stack(ys).to(_device())


def digits_problem(gens: list[torch.Generator], n: int) -> tuple[Tensor, Tensor]:
    """``n`` random digits per run: ``X [R, n, 64]`` (pixels in [0, 1], each image scaled to unit norm) and
    one-hot targets ``Y [R, n, 10]``."""
    from cnnbias.data.digits import load_digits

    V.generators("gens", gens)
    V.integer("n", n, 1, 1797)
    x, lab, _ = load_digits()
    X = x.reshape(len(x), -1).to(torch.float64)
    X = X / torch.linalg.vector_norm(X, dim=-1, keepdim=True)
    lab = torch.as_tensor(lab).long()
    idx = torch.stack([torch.randperm(len(X), generator=g)[:n] for g in gens])
    return X[idx].to(_device()), torch.nn.functional.one_hot(lab[idx], 10).to(torch.float64).to(_device())


# --- training ------------------------------------------------------------------------------------


def _loss(X: Tensor, y: Tensor, w: Tensor) -> Tensor:
    return ((X @ w[..., None])[..., 0] - y).pow(2).mean(-1) / 2


def _diverged(loss: Tensor, loss0: Tensor) -> Tensor:
    return ~torch.isfinite(loss) | (loss > 1e8 * (loss0 + 1e-300))


def run_gd(X: Tensor, y: Tensor, eta: float | Tensor, steps: int, w0: Tensor | None = None,
           record: int = 0, on_diverge: str = "raise") -> dict:
    """Full-batch GD on ``L(w) = ||X w - y||^2 / (2n)`` (Eq. 49), all runs at once.

    ``eta``: a number or a tensor ``[R]`` (one step size per run).  ``record > 0`` stores the iterate every
    ``record`` steps.  Returns ``w`` (final), ``loss``, ``diverged [R]`` and, when recording, ``steps`` and
    ``trace [K, R, d]``.  ``on_diverge``: ``"raise"`` (:class:`DivergedError` naming the runs) or ``"flag"``.
    """
    M.check_problem(X, y, w0)
    V.integer("steps", steps, 0)
    V.integer("record", record, 0)
    V.choice("on_diverge", on_diverge, ("raise", "flag"))
    eta_t = torch.as_tensor(eta, dtype=X.dtype, device=X.device)
    if not bool((eta_t > 0).all()):
        raise ValueError("eta must be > 0 (a number or one step size per run)")
    if eta_t.dim() == 1:
        eta_t = eta_t[:, None]
    n = X.shape[-2]
    w = torch.zeros(X.shape[:-2] + (X.shape[-1],), dtype=X.dtype, device=X.device) if w0 is None else w0.clone()
    loss0 = _loss(X, y, w)
    Xt = X.transpose(-1, -2)
    trace, at = [], []
    bad = torch.zeros(X.shape[:-2], dtype=torch.bool, device=X.device)
    for t in range(steps + 1):
        if record and t % record == 0:
            trace.append(w.clone())
            at.append(t)
        if t == steps:
            break
        resid = (X @ w[..., None])[..., 0] - y
        w = w - eta_t * (Xt @ resid[..., None])[..., 0] / n
        if t % 50 == 49:
            bad |= _diverged(_loss(X, y, w), loss0)
            w = torch.where(bad[..., None], torch.nan, w)
    loss = _loss(X, y, w)
    bad |= _diverged(loss, loss0)
    if bool(bad.any()) and on_diverge == "raise":
        raise DivergedError(f"GD diverged in runs {bad.nonzero().flatten().tolist()} (step size too large?)")
    out = dict(w=w, loss=loss, diverged=bad)
    if record:
        out.update(steps=at, trace=torch.stack(trace))
    return out


def run_sgd(X: Tensor, y: Tensor, eta: float, steps: int, gens: list[torch.Generator],
            w0: Tensor | None = None, record: int = 0) -> dict:
    """SGD with one example per step, ``w <- w - eta (x_i . w - y_i) x_i`` (App. 9.6), all runs at once.

    Run ``r`` draws its example indices (uniform, with replacement) from ``gens[r]``.  Returns as
    :func:`run_gd`; a diverged run raises :class:`DivergedError`.
    """
    M.check_problem(X, y, w0)
    V.positive("eta", eta)
    V.integer("steps", steps, 0)
    V.integer("record", record, 0)
    R, n, d = X.shape
    V.generators("gens", gens, R)
    idx = torch.stack([torch.randint(0, n, (steps,), generator=g) for g in gens]).to(X.device)  # [R, T]
    w = torch.zeros(R, d, dtype=X.dtype, device=X.device) if w0 is None else w0.clone()
    loss0 = _loss(X, y, w)
    rows = torch.arange(R, device=X.device)
    trace, at = [], []
    for t in range(steps + 1):
        if record and t % record == 0:
            trace.append(w.clone())
            at.append(t)
        if t == steps:
            break
        i = idx[:, t]
        x = X[rows, i]
        w = w - eta * ((x * w).sum(-1) - y[rows, i])[:, None] * x
    loss = _loss(X, y, w)
    bad = _diverged(loss, loss0)
    if bool(bad.any()):
        raise DivergedError(f"SGD diverged in runs {bad.nonzero().flatten().tolist()} (step size too large?)")
    out = dict(w=w, loss=loss, diverged=bad)
    if record:
        out.update(steps=at, trace=torch.stack(trace))
    return out


def _rel(a: Tensor, b: Tensor) -> Tensor:
    return torch.linalg.vector_norm(a - b, dim=-1) / torch.linalg.vector_norm(b, dim=-1)


def _spectrum(X: Tensor) -> Tensor:
    return torch.linalg.svdvals(X) ** 2 / X.shape[-2]


def fit_loglog(x, y) -> tuple[float, float]:
    """Least-squares slope and intercept of ``log y`` against ``log x``."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    A = np.stack([lx, np.ones_like(lx)], 1)
    sol = np.linalg.lstsq(A, ly, rcond=None)[0]
    return float(sol[0]), float(sol[1])


# --- experiments ---------------------------------------------------------------------------------


@_returns_cpu
def min_norm_runs(cfg: dict, runs=None) -> dict:
    """GD (``eta = 1 / s_max``) and SGD (``eta = 1 / max_i ||x_i||^2``) from zero on Gaussian problems.

    Returns per-run relative distances to ``w_dagger``, the relative null-space norm of every recorded
    iterate (max over the trajectory), the GD contraction bound ``(1 - eta s_min)^T`` and the relative
    distance of another interpolating solution (``w_dagger + `` a random null-space vector of norm
    ``||w_dagger||``) for scale.  ``runs = (r0, r1)``: only those runs (the SGD step, a maximum over all
    ``R`` problems, and every run's draws are those of the whole batch).
    """
    c = cfg["min_norm"]
    r0, r1 = _runs(runs, c["R"])
    gens = _gens("min_norm", c, c["R"])
    X, y = gaussian_problem(gens, c["n"], c["d"])
    eta_sgd = 1.0 / float((X * X).sum(-1).max())
    if (r0, r1) != (0, c["R"]):
        gens, X, y = gens[r0:r1], X[r0:r1], y[r0:r1]
    wd = M.min_norm_solution(X, y)
    Pn = M.null_space_projector(X)
    s = _spectrum(X)
    eta_gd = 1.0 / s[:, 0]
    gd = run_gd(X, y, eta_gd, c["gd_steps"], record=c["record"])
    sgd = run_sgd(X, y, eta_sgd, c["sgd_steps"], gens, record=c["record"] * 10)

    def null_rel(trace: Tensor) -> Tensor:  # [K, R, d] -> [K, R]: ||P_null w_t|| / ||w_dagger||
        return torch.linalg.vector_norm((Pn @ trace[..., None])[..., 0], dim=-1) / torch.linalg.vector_norm(wd, dim=-1)

    contraction = (1 - eta_gd * s[:, -1]) ** c["gd_steps"]
    z = torch.stack([torch.randn(c["d"], generator=g, dtype=torch.float64) for g in gens]).to(X.device)
    z = (Pn @ z[..., None])[..., 0]
    other = wd + z / torch.linalg.vector_norm(z, dim=-1, keepdim=True) * torch.linalg.vector_norm(wd, dim=-1,
                                                                                                 keepdim=True)
    return dict(
        X=X, y=y, w_dagger=wd,
        gd_err=_rel(gd["w"], wd), sgd_err=_rel(sgd["w"], wd),
        gd_loss=gd["loss"], sgd_loss=sgd["loss"],
        gd_null=null_rel(gd["trace"]), sgd_null=null_rel(sgd["trace"]),
        gd_steps=gd["steps"], sgd_steps=sgd["steps"],
        gd_path_err=_rel(gd["trace"], wd[None]), sgd_path_err=_rel(sgd["trace"], wd[None]),
        gd_bound=contraction, eta_gd=eta_gd, eta_sgd=eta_sgd, kappa=s[:, 0] / s[:, -1],
        other_err=_rel(other, wd), other_loss=_loss(X, y, other),
    )


@_returns_cpu
def init_scale_sweep(cfg: dict, scales=None, runs=None) -> dict:
    """GD from ``w0 = scale * g``, ``g ~ N(0, I_d / d)``, for every scale: distances of the limit to
    ``w_dagger`` and to ``w_dagger + P_null w0`` (relative to ``||w_dagger||``); all scales and seeds as one
    batch ``[S * R]``.  ``scales``, ``runs = (r0, r1)``: only those scales and runs (same draws)."""
    c = cfg["init_scale"]
    chosen = _subset(c["scales"], scales, "scales")
    r0, r1 = _runs(runs, c["R"])
    gens = _gens("init_scale", c, c["R"], runs)
    X, y = gaussian_problem(gens, c["n"], c["d"])
    g0 = torch.stack([torch.randn(c["d"], generator=g, dtype=torch.float64) for g in gens]) / math.sqrt(c["d"])
    g0 = g0.to(X.device)
    scales = torch.tensor(chosen, dtype=torch.float64, device=X.device)
    S, R = len(scales), r1 - r0
    Xb, yb = X.repeat(S, 1, 1), y.repeat(S, 1)
    w0 = (scales[:, None, None] * g0[None]).reshape(S * R, -1)
    eta = 1.0 / _spectrum(Xb)[:, 0]
    out = run_gd(Xb, yb, eta, c["steps"], w0=w0)
    wd = M.min_norm_solution(Xb, yb)
    lim = M.offset_limit(Xb, yb, w0)
    nd = torch.linalg.vector_norm(wd, dim=-1)
    return dict(
        scales=chosen,
        dist_dagger=(torch.linalg.vector_norm(out["w"] - wd, dim=-1) / nd).reshape(S, R),
        dist_offset=(torch.linalg.vector_norm(out["w"] - lim, dim=-1) / nd).reshape(S, R),
        null_w0=(torch.linalg.vector_norm(lim - wd, dim=-1) / nd).reshape(S, R),
        loss=out["loss"].reshape(S, R),
    )


@_returns_cpu
def step_size_sweep(cfg: dict, factors=None, runs=None) -> dict:
    """GD from zero with ``eta = factor / s_max`` for each factor (stable iff ``factor < 2``); all factors and
    seeds as one batch.  Diverged runs are flagged, not raised (the sweep is meant to show them).
    ``factors``, ``runs = (r0, r1)``: only those factors and runs (same draws)."""
    c = cfg["step_size"]
    chosen = _subset(c["factors"], factors, "factors")
    r0, r1 = _runs(runs, c["R"])
    gens = _gens("step_size", c, c["R"], runs)
    X, y = gaussian_problem(gens, c["n"], c["d"])
    F, R = len(chosen), r1 - r0
    Xb, yb = X.repeat(F, 1, 1), y.repeat(F, 1)
    fac = torch.tensor(chosen, dtype=torch.float64, device=X.device).repeat_interleave(R)
    eta = fac / _spectrum(Xb)[:, 0]
    out = run_gd(Xb, yb, eta, c["steps"], on_diverge="flag")
    wd = M.min_norm_solution(Xb, yb)
    return dict(factors=chosen, err=_rel(out["w"], wd).reshape(F, R),
                diverged=out["diverged"].reshape(F, R), loss=out["loss"].reshape(F, R))


@_returns_cpu
def tikhonov_sweep(cfg: dict, lams=None, runs=None) -> dict:
    """``||w_lam - w_dagger|| / ||w_dagger||`` for each ``lam`` (ridge in closed form), per run.  ``lams``,
    ``runs = (r0, r1)``: only those values and runs (same draws)."""
    c = cfg["tikhonov"]
    chosen = _subset(c["lams"], lams, "lams")
    gens = _gens("tikhonov", c, c["R"], runs)
    X, y = gaussian_problem(gens, c["n"], c["d"])
    wd = M.min_norm_solution(X, y)
    errs = torch.stack([_rel(M.ridge_solution(X, y, lam), wd) for lam in chosen])  # [L, R]
    return dict(lams=chosen, err=errs, s_min=_spectrum(X)[:, -1])


@_returns_cpu
def gd_ridge_sweep(cfg: dict, runs=None) -> dict:
    """GD from zero (``eta = 1 / s_max``) on problems with a log-spaced spectrum, iterates recorded at
    log-spaced ``T``; for each, the ridge ``lam*`` closest to ``w_T``.  The exponent of ``lam* ~ T^p`` is fitted
    on the ``T`` with ``fit_margin * s_min <= 1 / (eta T) <= s_max`` (where the filter edge lies inside the
    spectrum), per run.  ``runs = (r0, r1)``: only those runs (same draws)."""
    c = cfg["gd_ridge"]
    gens = _gens("gd_ridge", c, c["R"], runs)
    X, y = spectral_problem(gens, c["n"], c["d"], c["s_max"], c["s_min"])
    eta = 1.0 / c["s_max"]
    Ts = sorted({int(round(10 ** (k / c["per_decade"])))
                 for k in range(int(c["per_decade"] * math.log10(c["T_max"])) + 1)})
    w = torch.zeros(X.shape[0], X.shape[-1], dtype=X.dtype, device=X.device)
    n = X.shape[-2]
    Xt = X.transpose(-1, -2)
    iters, t = [], 0
    for T in Ts:  # one GD trajectory, stopped at every T (GD itself, not its closed form)
        while t < T:
            w = w - eta * (Xt @ ((X @ w[..., None])[..., 0] - y)[..., None])[..., 0] / n
            t += 1
        iters.append(w.clone())
    lam, dist = [], []
    for wT in iters:
        lk, dk = M.matching_ridge_lambda(X, y, wT, lam_min=c["s_min"] * 1e-6, lam_max=c["s_max"] * 1e3)
        lam.append(lk)
        dist.append(dk / torch.linalg.vector_norm(wT, dim=-1))
    lam = torch.stack(lam, 1).cpu()  # [R, K]
    Tt = torch.tensor(Ts, dtype=torch.float64)
    fit = (1.0 / (eta * Tt) >= c["fit_margin"] * c["s_min"]) & (1.0 / (eta * Tt) <= c["s_max"])
    slopes = [fit_loglog(Tt[fit].numpy(), lam[r, fit].numpy())[0] for r in range(lam.shape[0])]
    closed = M.gd_closed_form(X, y, eta, Ts[-1])
    return dict(T=Ts, lam=lam, rel_dist=torch.stack(dist, 1), fit=fit, slopes=np.array(slopes), eta=eta,
                lam_eta_T=lam * eta * Tt, closed_form_err=_rel(iters[-1], closed))


# --- first layer (Eqs. 69-71) -------------------------------------------------------------------

MODELS = ("linear", "poly2", "poly3", "relu", "relu_deep")


def _net_forward(model: str, params: list[Tensor], X: Tensor) -> Tensor:
    """``[R, n, 10]`` outputs; ``params[0] = W1 [R, p, D]``, the others the upper layers."""
    h = X @ params[0].transpose(-1, -2)  # [R, n, p]
    if model == "linear":
        pass
    elif model == "poly2":
        h = h ** 2
    elif model == "poly3":
        h = h ** 3
    else:
        h = torch.relu(h)
    if model == "relu_deep":
        h = torch.relu(h @ params[1].transpose(-1, -2))
        return h @ params[2].transpose(-1, -2)
    return h @ params[1].transpose(-1, -2)


@_returns_cpu
def first_layer_span(cfg: dict, models=None, scales=None, runs=None) -> dict:
    """Two-layer nets ``W2 act(W1 x)`` (``act``: identity, Eq. 69; ``z^2``, ``z^3``, Eq. 70; ReLU) and a three-layer
    ReLU net, trained by full-batch GD on the square loss to one-hot digit labels from ``N(0, scale^2 / fan_in)``
    initial weights, for every initial scale; all models, scales and seeds are batched per model.

    Returns, per model and scale ``[R]``: ``update_out`` = ``||(W1_T - W1_0) P_null||_F / ||W1_T - W1_0||_F`` with
    ``W1_T - W1_0 = -lr sum_t grad_t`` accumulated separately (so that the rounding of ``W1`` itself does not enter;
    Eq. 71: 0 up to rounding), ``final_out`` = ``||W1_T P_null||_F / ||W1_T||_F`` (what the null-space part of the
    initialization leaves), ``loss0``, ``loss``.  ``models``, ``scales``, ``runs = (r0, r1)``: only those
    models, initial scales and runs (same draws: the initial weights of the models before the first chosen
    one are drawn and dropped); ``null_dims`` holds each run's codimension of the data span.
    """
    c = cfg["first_layer"]
    chosen_models = _subset(MODELS, models, "models")
    chosen = _subset(c["init_scales"], scales, "scales")
    r0, r1 = _runs(runs, c["R"])
    gens = _gens("first_layer", c, c["R"], runs)
    X, Y = digits_problem(gens, c["n"])
    Pn = M.null_space_projector(X)  # [R, 64, 64]
    scales = torch.tensor(chosen, dtype=torch.float64, device=X.device)
    S, R, p, D = len(scales), r1 - r0, c["width"], X.shape[-1]
    Xb, Yb, Pb = X.repeat(S, 1, 1), Y.repeat(S, 1, 1), Pn.repeat(S, 1, 1)
    sc = scales.repeat_interleave(R)[:, None, None]
    out = {}
    for model in MODELS:
        def draw(shape, fan_in):
            z = torch.stack([torch.randn(shape, generator=g, dtype=torch.float64) for g in gens]).to(X.device)
            return z.repeat(S, 1, 1) * sc / math.sqrt(fan_in)

        shapes = [((p, D), D), ((10, p), p)] if model != "relu_deep" else [((p, D), D), ((p, p), p), ((10, p), p)]
        params = [draw(sh, fi) for sh, fi in shapes]
        if model not in chosen_models:
            continue
        W10 = params[0].clone()
        G = torch.zeros_like(W10)  # sum of the first-layer gradients: W1_T - W1_0 = -lr G
        loss0 = None
        for _ in range(c["steps"]):
            params = [q.detach().requires_grad_(True) for q in params]
            loss = ((_net_forward(model, params, Xb) - Yb) ** 2).sum((-1, -2)) / (2 * c["n"])
            if loss0 is None:
                loss0 = loss.detach()
            grads = torch.autograd.grad(loss.sum(), params)
            G += grads[0]
            params = [q.detach() - c["lr"] * gq for q, gq in zip(params, grads)]
        with torch.no_grad():
            loss = ((_net_forward(model, params, Xb) - Yb) ** 2).sum((-1, -2)) / (2 * c["n"])
        if not bool(torch.isfinite(loss).all()):
            raise DivergedError(f"first_layer_span: model {model!r} diverged (lower lr)")
        dW = -c["lr"] * G
        upd = torch.linalg.matrix_norm(dW @ Pb) / torch.linalg.matrix_norm(dW)
        fin = torch.linalg.matrix_norm(params[0] @ Pb) / torch.linalg.matrix_norm(params[0])
        out[model] = dict(update_out=upd.reshape(S, R), final_out=fin.reshape(S, R),
                          loss0=loss0.reshape(S, R), loss=loss.reshape(S, R))
    null_dims = torch.diagonal(Pn, dim1=-2, dim2=-1).sum(-1).round().long()
    return dict(models=tuple(m for m in MODELS if m in chosen_models), scales=chosen, results=out,
                null_dim=int(null_dims[0]), null_dims=null_dims.tolist(), n=c["n"], D=D)


# --- polynomials (Sec. 9.10.5) -----------------------------------------------------------------


def _poly_data(c: dict, gens: list[torch.Generator]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    exps = PF.monomial_exponents(c["d"], c["degree"])
    Xs = torch.stack([torch.rand(c["n"], c["d"], generator=g, dtype=torch.float64) * 2 - 1 for g in gens])
    a_true = torch.stack([torch.randn(len(exps), generator=g, dtype=torch.float64) for g in gens])
    Xs, a_true = Xs.to(_device()), a_true.to(_device())
    Phi = PF.monomial_features(Xs, exps)  # [R, n, D]
    y = (Phi @ a_true[..., None])[..., 0]
    return exps, Xs, Phi, y


@_returns_cpu
def poly_standard(cfg: dict) -> dict:
    """GD from ``a = 0`` on the monomial coefficients (standard parameterization, Sec. 9.10.3): relative distance
    ``err`` of the result to ``a_dagger = Phi^+ y`` (the minimum-norm interpolating coefficients), its relative
    null-space part ``null``, the final loss and the predicted GD error factor ``bound = (1 - s_min / s_max)^T``."""
    c = cfg["poly"]
    gens = _gens("poly", c, c["R"])
    exps, Xs, Phi, y = _poly_data(c, gens)
    a_dag = M.min_norm_solution(Phi, y)
    s = _spectrum(Phi)
    out = run_gd(Phi, y, 1.0 / s[:, 0], c["std_steps"])
    null = torch.linalg.vector_norm((M.null_space_projector(Phi) @ out["w"][..., None])[..., 0], dim=-1)
    return dict(err=_rel(out["w"], a_dag), null=null / torch.linalg.vector_norm(a_dag, dim=-1), loss=out["loss"],
                bound=(1 - s[:, -1] / s[:, 0]) ** c["std_steps"], D=len(exps), n=c["n"])


@_returns_cpu
def poly_weight(cfg: dict) -> dict:
    """GD on the weights of ``f(x) = sum_k c_k (<w_k, x> + b_k)^m`` (weight parameterization, Eq. 67; ``m`` =
    ``degree``), from ``N(0, scale^2)`` weights, for every initial scale (batched), on the same data as
    :func:`poly_standard`.  Returns per scale ``[R]``: the final loss, ``||a(w_T) - a_dagger|| / ||a_dagger||``,
    ``||a(w_T)|| / ||a_dagger||`` and the same distance for the coefficients at initialization."""
    c = cfg["poly"]
    gens = _gens("poly", c, c["R"])
    exps, Xs, Phi, y = _poly_data(c, gens)
    a_dag = M.min_norm_solution(Phi, y)
    scales = torch.tensor(c["init_scales"], dtype=torch.float64, device=Xs.device)
    S, R, N, d, m = len(scales), c["R"], c["width"], c["d"], c["degree"]
    wg = _gens("poly.weights", c, R)
    z = torch.stack([torch.randn(N, d + 2, generator=g, dtype=torch.float64) for g in wg]).to(Xs.device)
    z = z.repeat(S, 1, 1) * scales.repeat_interleave(R)[:, None, None]
    W, b, cc = z[..., :d].clone(), z[..., d].clone(), z[..., d + 1].clone()
    Xb, yb = Xs.repeat(S, 1, 1), y.repeat(S, 1)
    a0 = PF.power_net_coefficients(W, b, cc, m, exps)
    loss0 = None
    for _ in range(c["steps"]):
        W, b, cc = (q.detach().requires_grad_(True) for q in (W, b, cc))
        loss = ((PF.power_net_forward(W, b, cc, Xb, m) - yb) ** 2).mean(-1) / 2
        if loss0 is None:
            loss0 = loss.detach()
        gW, gb, gc = torch.autograd.grad(loss.sum(), (W, b, cc))
        W, b, cc = W.detach() - c["lr"] * gW, b.detach() - c["lr"] * gb, cc.detach() - c["lr"] * gc
    with torch.no_grad():
        loss = ((PF.power_net_forward(W, b, cc, Xb, m) - yb) ** 2).mean(-1) / 2
        a = PF.power_net_coefficients(W, b, cc, m, exps)
    ab = a_dag.repeat(S, 1)
    if not bool(torch.isfinite(loss).all()):
        raise DivergedError("poly_weight: GD on the weights diverged (lower lr)")
    nd = torch.linalg.vector_norm(ab, dim=-1)
    return dict(
        scales=c["init_scales"],
        loss=loss.reshape(S, R), rel_loss=(loss / loss0).reshape(S, R),
        dist=_rel(a, ab).reshape(S, R),
        norm_ratio=(torch.linalg.vector_norm(a, dim=-1) / nd).reshape(S, R),
        dist0=_rel(a0, ab).reshape(S, R),
        n_params=N * (d + 2), D=len(exps),
    )


@_returns_cpu
def poly_product(cfg: dict, scales=None) -> dict:
    """GD on the *product* (weight) parameterization of the same polynomial, ``a = u * v`` elementwise (each
    monomial coefficient a product of two weights, as ``a_5 = 2 sum_i w_1i w_2i`` in Sec. 9.10.4), from
    ``u_0, v_0 ~ N(0, scale^2 I)`` for every initial scale (batched), full-batch GD with step ``lr / (s_max (max_j (u_0j^2 + v_0j^2) + 2 max_j |a_dagger_j|))`` (the
    curvature of the product form).

    Returns per scale ``[R]``: the final loss relative to the initial one, ``||a_T - a_dagger|| / ||a_dagger||``,
    ``||a_T|| / ||a_dagger||`` and ``||a_T||_1 / ||a_dagger||_1``, the null-space part ``||P_null a_T|| / ||a_dagger||`` (what the standard
    parameterization keeps at 0) and a bound on the row-space error from the final loss,
    ``sqrt(2 L / s_min) / ||a_dagger||``.  ``scales``: only those initial scales (same draws)."""
    c = cfg["poly"]
    chosen = _subset(c["product_scales"], scales, "scales")
    gens = _gens("poly", c, c["R"])
    exps, Xs, Phi, y = _poly_data(c, gens)
    a_dag = M.min_norm_solution(Phi, y)
    scales = torch.tensor(chosen, dtype=torch.float64, device=Xs.device)
    S, R, D = len(scales), c["R"], len(exps)
    wg = _gens("poly.product", c, R)
    z = torch.stack([torch.randn(2, D, generator=g, dtype=torch.float64) for g in wg]).to(Xs.device)  # [R, 2, D]
    z = z.repeat(S, 1, 1) * scales.repeat_interleave(R)[:, None, None]
    u, v = z[:, 0].clone(), z[:, 1].clone()
    Pb, yb = Phi.repeat(S, 1, 1), y.repeat(S, 1)
    n = Pb.shape[-2]
    # curvature of the product form ~ (u_j^2 + v_j^2) s_max: the step is scaled down accordingly
    curv = (u * u + v * v).amax(-1) + 2 * a_dag.abs().amax(-1).repeat(S)
    eta = (c["product_lr"] / (_spectrum(Pb)[:, 0] * curv))[:, None]
    Pt = Pb.transpose(-1, -2)
    loss0 = _loss(Pb, yb, u * v)
    for _ in range(c["product_steps"]):
        g = (Pt @ ((Pb @ (u * v)[..., None])[..., 0] - yb)[..., None])[..., 0] / n
        u, v = u - eta * v * g, v - eta * u * g
    a = u * v
    loss = _loss(Pb, yb, a)
    if not bool(torch.isfinite(loss).all()):
        raise DivergedError("poly_product: GD on the product weights diverged (lower product_lr)")
    ab = a_dag.repeat(S, 1)
    nd = torch.linalg.vector_norm(ab, dim=-1)
    return dict(
        scales=chosen,
        rel_loss=(loss / loss0).reshape(S, R),
        dist=_rel(a, ab).reshape(S, R),
        norm_ratio=(torch.linalg.vector_norm(a, dim=-1) / nd).reshape(S, R),
        l1_ratio=(a.abs().sum(-1) / ab.abs().sum(-1)).reshape(S, R),
        null=(torch.linalg.vector_norm((M.null_space_projector(Pb) @ a[..., None])[..., 0], dim=-1)
              / nd).reshape(S, R),
        row_err_bound=(torch.sqrt(2 * loss / _spectrum(Pb)[:, -1]) / nd).reshape(S, R),
        D=D, n=c["n"],
    )


# --- robust optimization (App. 9.4.1) ----------------------------------------------------------


@_returns_cpu
def robust_check(cfg: dict) -> dict:
    """Random ``w, x, y`` (``x`` on the unit sphere) per run; the worst weight perturbation ``||dw|| <= rho ||w||``
    of the margin and of the square loss, and the worst input perturbation ``||dx|| <= rho`` of the margin, found
    by projected gradient ascent, against the closed forms; two residual regimes: ``y = w . x + r`` with ``r`` of
    order 1 and with ``r = 0`` (an interpolating ``w``)."""
    c = cfg["robust"]
    gens = _gens("robust", c, c["R"])
    R, d, rho = c["R"], c["d"], c["rho"]
    w = torch.stack([torch.randn(d, generator=g, dtype=torch.float64) for g in gens]) / math.sqrt(d)
    x = torch.stack([torch.randn(d, generator=g, dtype=torch.float64) for g in gens])
    x = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    r = torch.stack([torch.randn((), generator=g, dtype=torch.float64) for g in gens])
    lab = torch.where(r >= 0, 1.0, -1.0).to(torch.float64)
    nw = torch.linalg.vector_norm(w, dim=-1)
    g0 = gens[0]
    res = {}
    # margins (labels +-1)
    val, _ = M.pga_worst_perturbation(lambda u: -(lab * ((w + u) * x).sum(-1)), (R, d), rho * nw, g0,
                                      steps=c["steps"], starts=c["starts"])
    res["margin_w_pga"], res["margin_w_closed"] = -val, M.worst_margin_weights(w, x, lab, rho)
    val, _ = M.pga_worst_perturbation(lambda u: -(lab * (w * (x + u)).sum(-1)), (R, d),
                                      torch.full((R,), rho, dtype=torch.float64), g0,
                                      steps=c["steps"], starts=c["starts"])
    res["margin_x_pga"], res["margin_x_closed"] = -val, M.worst_margin_inputs(w, x, lab, rho)
    res["margin"] = lab * (w * x).sum(-1)
    res["w_norm"] = nw
    # square loss, two residual regimes
    for name, yy in (("resid", (w * x).sum(-1) + r), ("interp", (w * x).sum(-1))):
        val, _ = M.pga_worst_perturbation(lambda u, yy=yy: (yy - ((w + u) * x).sum(-1)) ** 2, (R, d), rho * nw,
                                          g0, steps=c["steps"], starts=c["starts"])
        res[f"loss_{name}_pga"] = val
        res[f"loss_{name}_closed"] = M.robust_square_loss(w, x, yy, rho)
        res[f"loss_{name}_eq42"] = M.eq42_loss(w, x, yy, rho)
    return res
