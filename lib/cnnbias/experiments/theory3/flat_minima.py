"""Experiments of Sec. 5.1-5.2 and Figs. 5-10 of :cite:`theory_iii`: SGD noise, Langevin dynamics and flat minima.

- :func:`gradient_noise`: per-example gradients of a one-hidden-layer MLP (:mod:`cnnbias.models.mlp`) on
  scikit-learn's 8x8 digits (even vs odd; the paper uses CIFAR-10), minibatch noise ``xi = grad V(f, z_t) -
  grad I_S(f)`` (eq. 7) sampled for a sweep of batch sizes: excess kurtosis (CLT: ``kappa_1 / B`` for
  minibatches drawn with replacement) and the Kolmogorov-Smirnov distance to a Gaussian (Fig. 5).
- :func:`sgd_vs_sgdl`: SGD against SGDL (eq. 5: full gradient plus Gaussian noise) on the same MLP, both
  written as weighted gradients ``sum_i c_i grad V_i``: SGD has ``c = counts / B`` (multinomial minibatch),
  SGDL ``c = 1/n + (z - mean z) / sqrt(n B)`` with ``z ~ N(0, I_n)``; both noises have covariance
  ``Sigma(w) / B`` exactly (Sigma the per-example gradient covariance), so SGDL is "SGD with matched
  Gaussian noise" at no extra cost (Fig. 6).
- :func:`wells_chains`, :func:`wedge_chains`: batched Langevin chains (:mod:`cnnbias.langevin`) on the
  potentials of :mod:`cnnbias.theory.theory3.gibbs` (Figs. 7-9), compared with the exact Gibbs law (eq. 9).
- :func:`wedge_sgd`: SGD and SGDL on a finite-sum loss whose mean is the wedge potential (Fig. 10).

Settings of every part for each scale are in ``CONFIGS`` (``smoke`` for tests, ``book`` for the stored
outputs, ``paper`` for a GPU: many chains, ``D`` up to 8).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from cnnbias import config
from cnnbias.data.digits import load_digits
from cnnbias.langevin import run_chains
from cnnbias.models import mlp
from cnnbias.theory.theory3.gibbs import GaussianWells, WedgeValley

__all__ = ["CONFIGS", "EXPERIMENT", "digits_task", "per_example_grads", "gradient_noise", "sgd_vs_sgdl",
           "wells_chains", "wedge_chains", "wedge_sgd", "occupancy", "ks_normal"]

EXPERIMENT = "theory3.flat_minima"

_NOISE = {"n_train": 1000, "hidden": 32, "gd_steps": 300, "gd_lr": 1.0, "coords": 64,
          "batches": [1, 2, 4, 8, 16, 32, 64, 128], "draws": 8000, "batch_gauss": 128}
_SGDL = {"n_train": 600, "hidden": 16, "lr": 0.5, "batch": 8, "steps": 1500, "record_every": 100, "seeds": 24}
_WELLS = {"dims": [1, 2, 3], "T": 0.3, "steps_eta": [0.1, 1.0], "chains": 1000, "n_steps": 3000,
          "burn_in": 1500, "every": 50}
_WEDGE = {"dims": [2, 3, 4], "T": 0.25, "eta": 0.1, "chains": 1000, "n_steps": 3000, "burn_in": 1500,
          "every": 50}
_FIG10 = {"n_data": 16, "batch": 1, "eta": 0.1, "T_eff": 0.25, "chains": 1000, "n_steps": 3000,
          "burn_in": 1500, "every": 50}

CONFIGS = {
    "smoke": {
        "noise": {**_NOISE, "n_train": 200, "hidden": 8, "gd_steps": 20, "coords": 8, "batches": [1, 4, 16],
                  "draws": 500, "batch_gauss": 16},
        "sgdl": {**_SGDL, "n_train": 100, "hidden": 4, "steps": 40, "record_every": 20, "seeds": 2},
        "wells": {**_WELLS, "dims": [1, 2], "chains": 100, "n_steps": 200, "burn_in": 100, "every": 20},
        "wedge": {**_WEDGE, "dims": [2, 3], "chains": 100, "n_steps": 200, "burn_in": 100, "every": 20},
        "fig10": {**_FIG10, "chains": 100, "n_steps": 200, "burn_in": 100, "every": 20},
    },
    "book": {"noise": _NOISE, "sgdl": _SGDL, "wells": _WELLS, "wedge": _WEDGE, "fig10": _FIG10},
    "paper": {
        "noise": {**_NOISE, "draws": 100000, "coords": 512},
        "sgdl": {**_SGDL, "n_train": 1000, "hidden": 64, "steps": 10000, "seeds": 32},
        "wells": {**_WELLS, "dims": [1, 2, 3, 4, 5, 6, 7, 8], "chains": 100000, "n_steps": 20000,
                  "burn_in": 10000, "every": 100},
        "wedge": {**_WEDGE, "dims": [2, 3, 4, 5, 6, 7, 8], "chains": 100000, "n_steps": 20000,
                  "burn_in": 10000, "every": 100},
        "fig10": {**_FIG10, "chains": 100000, "n_steps": 20000, "burn_in": 10000, "every": 100},
    },
}


def _gen(part: str, cfg: dict) -> torch.Generator:
    return config.generators(f"{EXPERIMENT}.{part}", cfg, 1)[0]


# ----------------------------------------------------------------------------------------------------------------
# The MLP on digits: data, loss, per-example gradients
# ----------------------------------------------------------------------------------------------------------------


def digits_task(n_train: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Scikit-learn's 8x8 digits (no download), label ``+1`` for odd digits and ``-1`` for even ones,
    pixels in ``[0, 1]``, a random split (``gen``) into ``n_train`` training and the rest test points.
    Returns ``Xtr [n, 64], ytr [n], Xte, yte`` (float64)."""
    images, labels, _ = load_digits()
    X = torch.as_tensor(np.asarray(images), dtype=torch.float64).reshape(len(labels), -1)
    y = torch.where(torch.as_tensor(np.asarray(labels)) % 2 == 1, 1.0, -1.0).to(torch.float64)
    if not 1 <= int(n_train) < len(y):
        raise ValueError(f"n_train must be in 1..{len(y) - 1}, got {n_train}")
    perm = torch.randperm(len(y), generator=gen)
    tr, te = perm[: int(n_train)], perm[int(n_train):]
    return X[tr], y[tr], X[te], y[te]


def _logistic(z: Tensor) -> Tensor:
    """``log(1 + exp(-z))`` computed stably."""
    return torch.relu(-z) + torch.log1p(torch.exp(-z.abs()))


def _forward_grads(params: dict[str, Tensor], X: Tensor, y: Tensor, c: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Loss per example ``l_i = log(1 + exp(-y_i f_i))`` ``[R, n]`` and the weighted gradient
    ``sum_i c_i grad l_i`` (``c [R, n]``) of the MLP in closed form (one hidden ReLU layer)."""
    W1, b1, v = params["W1"], params["b1"], params["v"]
    a = torch.baddbmm(b1.unsqueeze(1), X, W1.transpose(1, 2))  # [R, n, h]
    h = torch.relu(a)
    f = torch.einsum("rnh,rh->rn", h, v) + params["c"].unsqueeze(1)
    loss = _logistic(y * f)
    r = c * (-y * torch.sigmoid(-y * f))  # c_i dl_i/df_i
    rv = r.unsqueeze(-1) * (a > 0).to(X.dtype) * v.unsqueeze(1)  # [R, n, h]
    grads = {"W1": torch.bmm(rv.transpose(1, 2), X), "b1": rv.sum(1),
             "v": torch.einsum("rnh,rn->rh", h, r), "c": r.sum(1)}
    return loss, grads


def per_example_grads(params: dict[str, Tensor], X: Tensor, y: Tensor) -> Tensor:
    """Per-example gradients ``grad V(f, z_i)`` of a single network (run axis of size 1) as ``[n, p]``
    (coordinates ordered W1, b1, v, c)."""
    W1, b1, v = params["W1"][0], params["b1"][0], params["v"][0]
    a = X @ W1.T + b1
    h = torch.relu(a)
    f = h @ v + params["c"][0]
    r = -y * torch.sigmoid(-y * f)  # [n]
    rv = r[:, None] * (a > 0).to(X.dtype) * v[None, :]  # [n, h]
    gW = rv[:, :, None] * X[:, None, :]  # [n, h, d]
    return torch.cat([gW.reshape(len(y), -1), rv, h * r[:, None], r[:, None]], dim=1)


def _train_gd(params, X, y, lr: float, steps: int):
    c = torch.full((1, len(y)), 1.0 / len(y), dtype=X.dtype)
    for _ in range(int(steps)):
        _, g = _forward_grads(params, X[None], y[None], c)
        params = {k: params[k] - lr * g[k] for k in params}
    return params


def ks_normal(samples: Tensor) -> Tensor:
    """Kolmogorov-Smirnov distance ``sup_x |F_R(x) - Phi(x)|`` of each column of ``samples [R, k]``
    (already standardized) to the standard normal CDF ``Phi``."""
    s, _ = torch.sort(samples, dim=0)
    R = s.shape[0]
    phi = 0.5 * (1 + torch.erf(s / math.sqrt(2)))
    i = torch.arange(1, R + 1, dtype=s.dtype).unsqueeze(1)
    return torch.maximum((i / R - phi).abs(), (phi - (i - 1) / R).abs()).amax(0)


def gradient_noise(cfg: dict | None = None) -> dict:
    """Minibatch gradient noise (eq. 7) of the MLP after ``gd_steps`` of full-batch GD (the "asymptotic
    regime" of Fig. 5), for each batch size ``B``: ``draws`` minibatches drawn with replacement, the
    noise of ``coords`` randomly chosen coordinates (among those with nonzero variance).

    Returns the population excess kurtosis ``kappa1 [k]`` and skewness of the per-example gradients,
    the Monte Carlo excess kurtosis ``kurt [nB, k]`` and KS distances ``ks [nB, k]`` of the standardized
    noise, a standardized sample ``sample [nB, draws, 4]`` of four coordinates for histograms, and the
    train/test error of the network."""
    cfg = dict(config.for_scale(CONFIGS, EXPERIMENT)["noise"] if cfg is None else cfg)
    g = _gen("noise", cfg)
    Xtr, ytr, Xte, yte = digits_task(cfg["n_train"], g)
    params = mlp.init(cfg["hidden"], Xtr.shape[1], [g])
    params = _train_gd(params, Xtr, ytr, cfg["gd_lr"], cfg["gd_steps"])
    G = per_example_grads(params, Xtr, ytr)  # [n, p]
    n = G.shape[0]
    mean = G.mean(0)
    var = G.var(0, unbiased=False)
    ok = torch.nonzero(var > 1e-8 * var.max()).squeeze(1)
    pick = ok[torch.randperm(len(ok), generator=g)[: cfg["coords"]]]
    Gs, mu, sd = G[:, pick], mean[pick], var[pick].sqrt()
    Z = (Gs - mu) / sd
    kappa1 = (Z**4).mean(0) - 3
    skew1 = (Z**3).mean(0)
    kurt, ks, sample = [], [], []
    for B in cfg["batches"]:
        idx = torch.randint(n, (cfg["draws"], int(B)), generator=g)
        counts = torch.zeros(cfg["draws"], n, dtype=G.dtype).scatter_add_(
            1, idx, torch.ones(idx.shape, dtype=G.dtype))
        xi = (counts @ Gs) / B - mu  # eq. 7, [draws, k]
        zs = xi / (sd / math.sqrt(B))  # standardized by the exact noise scale
        m2 = (zs - zs.mean(0)).pow(2).mean(0)
        kurt.append((zs - zs.mean(0)).pow(4).mean(0) / m2**2 - 3)
        ks.append(ks_normal((zs - zs.mean(0)) / m2.sqrt()))
        sample.append(zs[:, :4])
    out_tr = mlp.forward(params, Xtr[None])[0]
    out_te = mlp.forward(params, Xte[None])[0]
    from cnnbias.stats import error_rate

    return {"batches": list(cfg["batches"]), "kappa1": kappa1, "skew1": skew1, "kurt": torch.stack(kurt),
            "ks": torch.stack(ks), "sample": torch.stack(sample), "draws": cfg["draws"], "n": n,
            "n_params": G.shape[1], "coords": len(pick), "batch_gauss": cfg["batch_gauss"],
            "train_err": float(error_rate(out_tr, ytr)), "test_err": float(error_rate(out_te, yte))}


def sgd_vs_sgdl(cfg: dict | None = None) -> dict:
    """SGD (minibatch ``B`` with replacement) and SGDL (full gradient plus Gaussian noise of the same
    covariance, eq. 5; see module doc), ``seeds`` runs each with the same initializations, one batched
    program.  Returns train/test error curves ``[2, seeds, n_records]`` (method 0 SGD, 1 SGDL)."""
    from cnnbias.stats import error_rate

    cfg = dict(config.for_scale(CONFIGS, EXPERIMENT)["sgdl"] if cfg is None else cfg)
    S = int(cfg["seeds"])
    gens = config.generators(f"{EXPERIMENT}.sgdl", cfg, S)
    g = _gen("sgdl.noise", cfg)
    Xtr, ytr, Xte, yte = digits_task(cfg["n_train"], _gen("sgdl.data", cfg))
    n, B, lr = len(ytr), int(cfg["batch"]), float(cfg["lr"])
    p0 = mlp.init(cfg["hidden"], Xtr.shape[1], gens)
    params = {k: torch.cat([v, v]) for k, v in p0.items()}  # [2S, ...]: SGD runs then SGDL runs
    R = 2 * S
    Xb, yb = Xtr.expand(R, -1, -1), ytr.expand(R, -1)
    steps, every = int(cfg["steps"]), int(cfg["record_every"])
    rec_steps, tr_err, te_err = [], [], []

    def record(t):
        rec_steps.append(t)
        tr_err.append(error_rate(mlp.forward(params, Xb), ytr).reshape(2, S))
        te_err.append(error_rate(mlp.forward(params, Xte.expand(R, -1, -1)), yte).reshape(2, S))

    record(0)
    for t in range(1, steps + 1):
        idx = torch.randint(n, (S, B), generator=g)
        c_sgd = torch.zeros(S, n, dtype=Xtr.dtype).scatter_add_(1, idx, torch.ones(S, B, dtype=Xtr.dtype)) / B
        z = torch.randn(S, n, generator=g, dtype=Xtr.dtype)
        c_sgdl = 1.0 / n + (z - z.mean(1, keepdim=True)) / math.sqrt(n * B)
        _, grads = _forward_grads(params, Xb, yb, torch.cat([c_sgd, c_sgdl]))
        params = {k: params[k] - lr * grads[k] for k in params}
        if not all(bool(torch.isfinite(v).all()) for v in params.values()):
            raise FloatingPointError(f"SGD/SGDL training diverged at step {t} (lr={lr}); lower the learning rate")
        if t % every == 0 or t == steps:
            record(t)
    return {"steps": rec_steps, "train_err": torch.stack(tr_err, -1), "test_err": torch.stack(te_err, -1),
            "n_train": n, "n_test": len(yte), "batch": B, "lr": lr, "seeds": S}


# ----------------------------------------------------------------------------------------------------------------
# Langevin chains on the potentials of Figs. 7-9 and SGD on the wedge (Fig. 10)
# ----------------------------------------------------------------------------------------------------------------


def occupancy(labels: Tensor, n_labels: int = 3) -> tuple[Tensor, Tensor]:
    """Per-chain time-averaged occupancy of labels ``0..n_labels-1`` from ``labels [times, ..., chains]``
    (label ``-1``, undecided, counts 1/2 to each of the two labels it separates: here spread evenly over
    all labels, a set of measure zero in practice); returns the mean over chains and its standard error
    (chains are independent), each ``[..., n_labels]``."""
    occ = torch.stack([(labels == k).to(torch.float64) for k in range(n_labels)], -1)
    occ = occ + (labels == -1).to(torch.float64).unsqueeze(-1) / n_labels
    per_chain = occ.mean(0)  # [..., chains, n_labels]
    N = per_chain.shape[-2]
    return per_chain.mean(-2), per_chain.std(-2) / math.sqrt(N)


def _dims_mask(dims: list[int]) -> Tensor:
    mask = torch.zeros(len(dims), 1, max(dims), dtype=torch.float64)
    for i, D in enumerate(dims):
        mask[i, 0, :D] = 1.0
    return mask


def wells_chains(cfg: dict | None = None) -> dict:
    """GDL chains on :class:`~cnnbias.theory.theory3.gibbs.GaussianWells` for every ``D`` in ``dims`` and step in ``steps_eta`` (one
    program), started uniformly on the torus; occupancy of the two basin boxes and the rest, averaged
    over the recorded times after ``burn_in``, against the exact Gibbs probabilities."""
    cfg = dict(config.for_scale(CONFIGS, EXPERIMENT)["wells"] if cfg is None else cfg)
    pot = GaussianWells()
    dims, etas = list(cfg["dims"]), [float(e) for e in cfg["steps_eta"]]
    mask = _dims_mask(dims).repeat(len(etas), 1, 1)  # [E*nD, 1, Dmax]
    step = torch.tensor([e for e in etas for _ in dims], dtype=torch.float64).unsqueeze(1)
    g = _gen("wells", cfg)
    N = int(cfg["chains"])
    x0 = torch.rand(mask.shape[0], N, mask.shape[-1], generator=g, dtype=torch.float64) * pot.period
    rec = tuple(range(int(cfg["burn_in"]) + int(cfg["every"]), int(cfg["n_steps"]) + 1, int(cfg["every"])))
    res = run_chains(lambda x: pot.grad(x, mask), x0, step, cfg["T"], int(cfg["n_steps"]), g, mask=mask,
                     period=pot.period, record_at=rec)
    labels = pot.basin(res.snapshots, mask)  # [times, K, N]; 1, 2 boxes; 0 rest
    mean, se = occupancy(labels)
    order = [1, 2, 0]
    exact = np.array([pot.basin_probabilities(cfg["T"], D) for D in dims])
    return {"dims": dims, "etas": etas, "T": cfg["T"], "chains": N,
            "occ": mean[:, order].reshape(len(etas), len(dims), 3).numpy(),
            "se": se[:, order].reshape(len(etas), len(dims), 3).numpy(), "exact": exact,
            "final": res.x.reshape(len(etas), len(dims), N, -1), "times": len(rec)}


def wedge_chains(cfg: dict | None = None) -> dict:
    """GDL chains on :class:`~cnnbias.theory.theory3.gibbs.WedgeValley` for every ``D`` in ``dims``, all started at the isolated minimum
    (as in basin_expts); occupancy of the isolated cube, the valley slab and the plateau after burn-in."""
    cfg = dict(config.for_scale(CONFIGS, EXPERIMENT)["wedge"] if cfg is None else cfg)
    pot = WedgeValley()
    dims = list(cfg["dims"])
    mask = _dims_mask(dims)
    g = _gen("wedge", cfg)
    N = int(cfg["chains"])
    x0 = torch.full((len(dims), N, mask.shape[-1]), pot.iso_center, dtype=torch.float64)
    rec = tuple(range(int(cfg["burn_in"]) + int(cfg["every"]), int(cfg["n_steps"]) + 1, int(cfg["every"])))
    res = run_chains(lambda x: pot.grad(x, mask), x0, cfg["eta"], cfg["T"], int(cfg["n_steps"]), g, mask=mask,
                     period=pot.period, record_at=rec)
    mean, se = occupancy(pot.basin(res.snapshots, mask))
    order = [1, 2, 0]
    exact = np.array([pot.basin_probabilities(cfg["T"], D) for D in dims])
    return {"dims": dims, "T": cfg["T"], "eta": cfg["eta"], "chains": N, "occ": mean[:, order].numpy(),
            "se": se[:, order].numpy(), "exact": exact, "final": res.x}


def wedge_sgd(cfg: dict | None = None) -> dict:
    """SGD and SGDL on a finite-sum loss whose mean is the 2-D wedge potential (Fig. 10).

    Data: ``n`` examples with per-example loss ``V_i(w) = U(w) - (a/k) sum_d cos(k w_d + theta_id)``,
    ``k = pi`` (period 2, so ``V_i`` lives on the torus), phases ``theta_id = 2 pi j / n`` equally spaced
    (a random permutation per coordinate): the ripples average to zero, so the empirical loss is ``U``
    itself, and the per-coordinate gradient noise has variance ``a^2/2`` at every ``w``.  SGD with batch
    ``B`` and step ``eta`` then injects noise of variance ``eta^2 a^2 / (2B)`` per step, the Langevin
    noise ``2 eta T`` of temperature ``T_eff = eta a^2 / (4B)``; ``a`` is set from ``T_eff``.  SGDL uses
    the full gradient plus Gaussian noise of the same covariance (weights trick of :func:`sgd_vs_sgdl`).
    Chains start at the isolated minimum; GD (no noise) stays there."""
    cfg = dict(config.for_scale(CONFIGS, EXPERIMENT)["fig10"] if cfg is None else cfg)
    pot = WedgeValley()
    n, B, eta, T = int(cfg["n_data"]), int(cfg["batch"]), float(cfg["eta"]), float(cfg["T_eff"])
    if n < 3 or B < 1:
        raise ValueError(f"need n_data >= 3 and batch >= 1, got {n}, {B}")
    a = math.sqrt(4 * B * T / eta)
    g = _gen("fig10", cfg)
    base = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    theta = torch.stack([base[torch.randperm(n, generator=g)] for _ in range(2)], 1)  # [n, 2]
    cos_t, sin_t = torch.cos(theta), torch.sin(theta)
    N = int(cfg["chains"])
    x0 = torch.full((2, N, 2), pot.iso_center, dtype=torch.float64)

    def noise(x, gen):
        # ripple gradient of example i at w: a sin(k w_d + theta_id) = a (sin kw cos th + cos kw sin th)
        idx = torch.randint(n, (N, B), generator=gen)
        c_sgd = torch.zeros(N, n, dtype=x.dtype).scatter_add_(1, idx, torch.ones(N, B, dtype=x.dtype)) / B
        z = torch.randn(N, n, generator=gen, dtype=x.dtype)
        c_sgdl = 1.0 / n + (z - z.mean(1, keepdim=True)) / math.sqrt(n * B)
        c = torch.stack([c_sgd, c_sgdl])  # [2, N, n]
        kx = math.pi * x
        gr = a * (torch.sin(kx) * (c @ cos_t) + torch.cos(kx) * (c @ sin_t))
        return -eta * gr

    rec = tuple(range(int(cfg["burn_in"]) + int(cfg["every"]), int(cfg["n_steps"]) + 1, int(cfg["every"])))
    res = run_chains(pot.grad, x0, eta, T, int(cfg["n_steps"]), g, period=pot.period, record_at=rec, noise=noise)
    mean, se = occupancy(pot.basin(res.snapshots))
    order = [1, 2, 0]
    return {"T_eff": T, "eta": eta, "batch": B, "n_data": n, "amplitude": a, "chains": N,
            "occ": mean[:, order].numpy(), "se": se[:, order].numpy(),
            "exact": pot.basin_probabilities(T, 2), "final": res.x}
