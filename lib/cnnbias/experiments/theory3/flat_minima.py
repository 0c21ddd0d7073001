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
outputs, ``paper``: many chains, ``D`` up to 8).

The sweep ``theory3.flat_minima`` (:data:`SWEEP`) declares the computation as cells, one per part
(:data:`PARTS`: the exact Gibbs integrals of eq. 9, the gradient noise, SGD/SGDL, the chains of Figs. 7-9
and Fig. 10), run by :func:`flat_minima_cell`.  At the book scale each part is one cell, the single
batched program above; at the smoke and paper scales (:data:`SPLIT`) SGD/SGDL is split into seed groups
(same initializations, own noise streams) and every chain setting into blocks of independent chains with
their own streams, pooled exactly by :func:`pool` in the tables (:func:`wells_table` ...).  The claim
functions (``claim_*``, :data:`CLAIMS`) compute the chapter's claims from ``(config, result)`` cells, for
the chapter and for ``python -m cnnbias reproduce``.
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
           "wells_chains", "wedge_chains", "wedge_sgd", "occupancy", "ks_normal", "T_FIG7", "GIBBS", "SPLIT",
           "PARTS", "pm", "flat_minima_cells", "flat_minima_cell", "pool", "gibbs_table", "noise_table",
           "sgdl_table", "wells_table", "wedge_table", "fig10_table", "noise_stats", "sgdl_diffs", "gibbs_devs",
           "slice_ratios_fig7", "wells_z", "claim_grad_noise_kurtosis_clt", "claim_grad_noise_gaussian",
           "claim_sgdl_like_sgd", "claim_gibbs_excess_mass_2powD", "claim_gibbs_slice_ratio_grows_with_D",
           "claim_langevin_matches_gibbs", "claim_gibbs_degenerate_preferred", "claim_fig9_isolated_density_falls",
           "claim_langevin_degenerate_2d", "claim_sgd_sgdl_prefer_valley", "CLAIMS", "SWEEP"]

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


def sgd_vs_sgdl(cfg: dict | None = None, seeds: range | None = None) -> dict:
    """SGD (minibatch ``B`` with replacement) and SGDL (full gradient plus Gaussian noise of the same
    covariance, eq. 5; see module doc), ``seeds`` runs each with the same initializations, one batched
    program.  Returns train/test error curves ``[2, seeds, n_records]`` (method 0 SGD, 1 SGDL).

    ``seeds``: a sub-range of ``0 .. cfg["seeds"] - 1`` (a seed group, one cell of the paper sweep):
    its runs have the initializations of the same seeds in the full program and their own stream of
    minibatches and Gaussian noise; ``None`` (all seeds) is the full program."""
    from cnnbias.stats import error_rate

    cfg = dict(config.for_scale(CONFIGS, EXPERIMENT)["sgdl"] if cfg is None else cfg)
    if seeds is None:
        S, first = int(cfg["seeds"]), 0
        g = _gen("sgdl.noise", cfg)
    else:
        if not (isinstance(seeds, range) and seeds.step == 1 and 0 <= seeds.start < seeds.stop <= int(cfg["seeds"])):
            raise ValueError(f"seeds must be a non-empty range inside 0..{int(cfg['seeds'])} (step 1), got {seeds!r}")
        S, first = len(seeds), seeds.start
        g = _gen("sgdl.noise", {**cfg, "seed_group": [seeds.start, seeds.stop]})
    gens = config.generators(f"{EXPERIMENT}.sgdl", cfg, S, start=first)
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
            "n_train": n, "n_test": len(yte), "batch": B, "lr": lr, "seeds": S, "first_seed": first}


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


def _chain_gen(part: str, cfg: dict, block: int | None) -> torch.Generator:
    """The generator of a chain program; ``block`` (a block of independent chains, one cell of the
    paper sweep) gets its own stream."""
    if block is None:
        return _gen(part, cfg)
    if isinstance(block, bool) or not isinstance(block, int) or block < 0:
        raise ValueError(f"block must be None or an integer >= 0, got {block!r}")
    return _gen(part, {**cfg, "block": block})


def wells_chains(cfg: dict | None = None, block: int | None = None) -> dict:
    """GDL chains on :class:`~cnnbias.theory.theory3.gibbs.GaussianWells` for every ``D`` in ``dims`` and step in ``steps_eta`` (one
    program), started uniformly on the torus; occupancy of the two basin boxes and the rest, averaged
    over the recorded times after ``burn_in``, against the exact Gibbs probabilities.  ``block``: see
    :func:`wedge_sgd`."""
    cfg = dict(config.for_scale(CONFIGS, EXPERIMENT)["wells"] if cfg is None else cfg)
    pot = GaussianWells()
    dims, etas = list(cfg["dims"]), [float(e) for e in cfg["steps_eta"]]
    mask = _dims_mask(dims).repeat(len(etas), 1, 1)  # [E*nD, 1, Dmax]
    step = torch.tensor([e for e in etas for _ in dims], dtype=torch.float64).unsqueeze(1)
    g = _chain_gen("wells", cfg, block)
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


def wedge_chains(cfg: dict | None = None, block: int | None = None) -> dict:
    """GDL chains on :class:`~cnnbias.theory.theory3.gibbs.WedgeValley` for every ``D`` in ``dims``, all started at the isolated minimum
    (as in basin_expts); occupancy of the isolated cube, the valley slab and the plateau after burn-in.
    ``block``: see :func:`wedge_sgd`."""
    cfg = dict(config.for_scale(CONFIGS, EXPERIMENT)["wedge"] if cfg is None else cfg)
    pot = WedgeValley()
    dims = list(cfg["dims"])
    mask = _dims_mask(dims)
    g = _chain_gen("wedge", cfg, block)
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


def wedge_sgd(cfg: dict | None = None, block: int | None = None) -> dict:
    """SGD and SGDL on a finite-sum loss whose mean is the 2-D wedge potential (Fig. 10).

    Data: ``n`` examples with per-example loss ``V_i(w) = U(w) - (a/k) sum_d cos(k w_d + theta_id)``,
    ``k = pi`` (period 2, so ``V_i`` lives on the torus), phases ``theta_id = 2 pi j / n`` equally spaced
    (a random permutation per coordinate): the ripples average to zero, so the empirical loss is ``U``
    itself, and the per-coordinate gradient noise has variance ``a^2/2`` at every ``w``.  SGD with batch
    ``B`` and step ``eta`` then injects noise of variance ``eta^2 a^2 / (2B)`` per step, the Langevin
    noise ``2 eta T`` of temperature ``T_eff = eta a^2 / (4B)``; ``a`` is set from ``T_eff``.  SGDL uses
    the full gradient plus Gaussian noise of the same covariance (weights trick of :func:`sgd_vs_sgdl`).
    Chains start at the isolated minimum; GD (no noise) stays there.

    ``block`` (an integer >= 0): the chains are one block of independent chains (a cell of the paper
    sweep) with their own random stream; the data (phases) are those of ``block=None``, drawn from the
    generator of ``cfg``, so all blocks run on the same finite sum."""
    cfg = dict(config.for_scale(CONFIGS, EXPERIMENT)["fig10"] if cfg is None else cfg)
    pot = WedgeValley()
    n, B, eta, T = int(cfg["n_data"]), int(cfg["batch"]), float(cfg["eta"]), float(cfg["T_eff"])
    if n < 3 or B < 1:
        raise ValueError(f"need n_data >= 3 and batch >= 1, got {n}, {B}")
    a = math.sqrt(4 * B * T / eta)
    g = _gen("fig10", cfg)
    base = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    theta = torch.stack([base[torch.randperm(n, generator=g)] for _ in range(2)], 1)  # [n, 2]
    if block is not None:
        g = _chain_gen("fig10", cfg, block)
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


# ----------------------------------------------------------------------------------------------------------------
# The sweep theory3.flat_minima and its claims
# ----------------------------------------------------------------------------------------------------------------
#
# One cell is one sub-experiment ("part"): the exact Gibbs integrals, the gradient noise, a group of SGD/SGDL
# seeds, or a block of independent chains for one setting.  At the book scale every part is one cell computed
# exactly as the functions above compute it (same seeds); at the smoke and paper scales the seeds and chains
# are split into groups and blocks, each with its own random stream, pooled by the tables below.

from cnnbias.langevin import temperature_from_noise  # noqa: E402
from cnnbias.sweeps.spec import ClaimSpec as _ClaimSpec  # noqa: E402  (the sweep declarations end the module)
from cnnbias.sweeps.spec import Sweep as _Sweep  # noqa: E402
from cnnbias.sweeps.spec import register as _register  # noqa: E402
from cnnbias.sweeps.spec import register_claim as _register_claim  # noqa: E402

#: The authors' temperature of Fig. 7, from noise ``A = 0.45`` at step ``eta = 1`` (basin_expts), ``T = A^2/(2 eta)``.
T_FIG7 = temperature_from_noise(0.45, 1.0)
#: Settings of the exact Gibbs integrals (eq. 9), Fig. 7 wells at ``temps`` and ``dims``, the wedge at
#: ``wedge_temps`` and ``wedge_dims`` (the same at every scale, as they cost well under a second).
GIBBS = {"temps": [0.05, round(T_FIG7, 5), 0.3, 0.5], "dims": list(range(1, 9)),
         "wedge_temps": [0.1, 0.25, 0.5, 1.0], "wedge_dims": list(range(2, 9))}
#: How each scale splits its parts into cells, as seeds per SGD/SGDL cell and blocks of chains per
#: setting (``None`` gives one cell per part, the book's single programs).
SPLIT = {
    "smoke": {"sgdl_group": 1, "wells_blocks": 2, "wedge_blocks": 2, "fig10_blocks": 2},
    "book": None,
    "paper": {"sgdl_group": 2, "wells_blocks": 10, "wedge_blocks": 20, "fig10_blocks": 20},
}
#: The parts of the sweep, in the chapter's order.
PARTS = ("gibbs", "noise", "sgdl", "wells", "wedge", "fig10")
_KEYS = {"gibbs": set(GIBBS), "noise": set(_NOISE), "sgdl": set(_SGDL), "wells": set(_WELLS),
         "wedge": set(_WEDGE), "fig10": set(_FIG10)}
_OPTIONAL = {"sgdl": {"seed_group"}, "wells": {"block"}, "wedge": {"block"}, "fig10": {"block"}}
#: Bins of the stored histograms: final states of the 2-D wedge chains on ``[0, 12)^2`` and the
#: standardized gradient noise on ``[-4, 4]`` (the figures' bins).
HIST2_BINS, HIST2_RANGE = 48, [[0.0, 12.0], [0.0, 12.0]]
NOISE_BINS, NOISE_RANGE = 60, (-4.0, 4.0)


def pm(m, se) -> str:
    """A Monte Carlo mean printed to the digits its standard error supports (``"0.123 ± 0.004"``)."""
    se = float(se)
    d = max(0, -math.floor(math.log10(se)) + 1) if se > 0 else 4
    d = min(d, 6)
    return f"{float(m):.{d}f} ± {se:.{d}f}"


def _blocks(n_chains: int, blocks: int, what: str) -> int:
    if n_chains % blocks:
        raise ValueError(f"{what}: chains={n_chains} must be a multiple of the {blocks} blocks")
    return n_chains // blocks


def flat_minima_cells(scale: str) -> list[dict]:
    """The cells at ``scale``: ``{"part": ..., **settings}`` for each part of :data:`PARTS`; at the smoke
    and paper scales (:data:`SPLIT`) SGD/SGDL in seed groups (``seed_group = [first, stop]``) and every
    chain setting (step, dimension) in blocks (``block``, ``chains`` = the block's chains)."""
    if scale not in CONFIGS:
        raise ValueError(f"scale must be one of {', '.join(CONFIGS)}, got {scale!r}")
    c, split = CONFIGS[scale], SPLIT[scale]
    out = [{"part": "gibbs", **GIBBS}, {"part": "noise", **c["noise"]}]
    if split is None:
        return out + [{"part": p, **c[p]} for p in ("sgdl", "wells", "wedge", "fig10")]
    S, k = int(c["sgdl"]["seeds"]), int(split["sgdl_group"])
    out += [{"part": "sgdl", **c["sgdl"], "seed_group": [a, min(a + k, S)]} for a in range(0, S, k)]
    w, nb = c["wells"], int(split["wells_blocks"])
    n = _blocks(int(w["chains"]), nb, "wells")
    out += [{"part": "wells", **w, "dims": [D], "steps_eta": [eta], "chains": n, "block": b}
            for eta in w["steps_eta"] for D in w["dims"] for b in range(nb)]
    w, nb = c["wedge"], int(split["wedge_blocks"])
    n = _blocks(int(w["chains"]), nb, "wedge")
    out += [{"part": "wedge", **w, "dims": [D], "chains": n, "block": b} for D in w["dims"] for b in range(nb)]
    w, nb = c["fig10"], int(split["fig10_blocks"])
    n = _blocks(int(w["chains"]), nb, "fig10")
    out += [{"part": "fig10", **w, "chains": n, "block": b} for b in range(nb)]
    return out


def _check_cell(cfg: dict) -> tuple[str, dict]:
    part = cfg.get("part")
    if part not in PARTS:
        raise ValueError(f"cfg['part'] must be one of {', '.join(PARTS)}, got {part!r}")
    keys = set(cfg) - {"part"}
    missing = sorted(_KEYS[part] - keys)
    unknown = sorted(keys - _KEYS[part] - _OPTIONAL.get(part, set()))
    if missing:
        raise ValueError(f"cfg of part {part!r} lacks the key(s) {', '.join(missing)}")
    if unknown:
        raise ValueError(f"cfg of part {part!r} has unknown key(s) {', '.join(unknown)}")
    return part, {k: v for k, v in cfg.items() if k not in ("part", "block", "seed_group")}


def _hist2(x: Tensor) -> list:
    h, _, _ = np.histogram2d(x[:, 0].numpy(), x[:, 1].numpy(), bins=HIST2_BINS, range=HIST2_RANGE)
    return h.astype(np.int64).tolist()


def _rows(occ, se, exact) -> tuple[list, list, list]:
    return np.asarray(occ).tolist(), np.asarray(se).tolist(), np.asarray(exact).tolist()


def flat_minima_cell(cfg: dict, device: torch.device | None = None, dtype: torch.dtype | None = None) -> dict:
    """One cell of the sweep ``theory3.flat_minima`` (JSON values only; all parts run on the CPU in
    float64, whatever ``device`` and ``dtype``):

    - ``gibbs``: exact eq. 9 for the Fig. 7 wells (basin probabilities, excess-mass ratio ``M2/M1``,
      basin-box ratio, slice ratio ``p(w_1=12)/p(w_1=4)``, each ``[temps, dims]``) and the wedge's basin
      probabilities ``[wedge_temps, wedge_dims, 3]``;
    - ``noise``: :func:`gradient_noise` (Fig. 5), with the standardized sample of the first three
      components reduced to histograms ``hist [batches, 3, 60]`` on ``[-4, 4]``;
    - ``sgdl``: :func:`sgd_vs_sgdl` for the seeds ``seed_group`` (all seeds without it), Fig. 6;
    - ``wells``, ``wedge``: :func:`wells_chains`, :func:`wedge_chains` (Figs. 7-9) for the cell's steps
      and dimensions, one block of chains; per setting the mean occupancy, its standard error over
      chains and the exact Gibbs probabilities; ``hist_d2`` the final states of the 2-D wedge chains;
    - ``fig10``: :func:`wedge_sgd` (Fig. 10), one block of chains, with ``hist [2, 48, 48]`` of the
      final states (SGD, SGDL).
    """
    part, base = _check_cell(cfg)
    block = cfg.get("block")
    if part == "gibbs":
        gw, wv = GaussianWells(), WedgeValley()
        temps, dims = [float(t) for t in base["temps"]], [int(d) for d in base["dims"]]
        out = {"temps": temps, "dims": dims, "basin_prob": [], "excess_ratio": [], "box_ratio": [],
               "slice_ratio": []}
        for T in temps:
            out["basin_prob"].append([gw.basin_probabilities(T, D).tolist() for D in dims])
            out["excess_ratio"].append([math.exp(gw.log_excess_mass(T, D, 1) - gw.log_excess_mass(T, D, 0))
                                        for D in dims])
            out["box_ratio"].append([math.exp(gw.log_mass(T, D, gw.box(1)) - gw.log_mass(T, D, gw.box(0)))
                                     for D in dims])
            out["slice_ratio"].append([float(gw.slice_density(T, D, np.array([12.0]))[0]
                                             / gw.slice_density(T, D, np.array([4.0]))[0]) for D in dims])
        wt, wd = [float(t) for t in base["wedge_temps"]], [int(d) for d in base["wedge_dims"]]
        out.update(wedge_temps=wt, wedge_dims=wd,
                   wedge_prob=[[wv.basin_probabilities(T, D).tolist() for D in wd] for T in wt])
        return out
    if part == "noise":
        r = gradient_noise(base)
        edges = np.linspace(*NOISE_RANGE, NOISE_BINS + 1)
        hist = [[np.histogram(r["sample"][i, :, j].numpy(), bins=edges)[0].tolist() for j in range(3)]
                for i in range(len(r["batches"]))]
        out = {k: v.tolist() if isinstance(v, Tensor) else v for k, v in r.items() if k != "sample"}
        return {**out, "hist": hist}
    if part == "sgdl":
        sg = cfg.get("seed_group")
        if sg is not None and not (isinstance(sg, list) and len(sg) == 2 and all(isinstance(v, int) for v in sg)):
            raise ValueError(f"cfg['seed_group'] must be [first, stop] (integers), got {sg!r}")
        r = sgd_vs_sgdl(base, None if sg is None else range(sg[0], sg[1]))
        return {k: v.tolist() if isinstance(v, Tensor) else v for k, v in r.items()}
    if part == "wells":
        r = wells_chains(base, block)
        rows = [{"eta": eta, "D": D, "chains": int(r["chains"]), "occ": r["occ"][i, j].tolist(),
                 "se": r["se"][i, j].tolist(), "exact": r["exact"][j].tolist()}
                for i, eta in enumerate(r["etas"]) for j, D in enumerate(r["dims"])]
        return {"T": float(r["T"]), "chains": int(r["chains"]), "rows": rows}
    if part == "wedge":
        r = wedge_chains(base, block)
        rows = [{"D": D, "chains": int(r["chains"]), "occ": r["occ"][j].tolist(), "se": r["se"][j].tolist(),
                 "exact": r["exact"][j].tolist()} for j, D in enumerate(r["dims"])]
        out = {"T": float(r["T"]), "eta": float(r["eta"]), "chains": int(r["chains"]), "rows": rows}
        if 2 in r["dims"]:
            out["hist_d2"] = _hist2(r["final"][r["dims"].index(2)])
        return out
    r = wedge_sgd(base, block)
    out = {k: r[k] for k in ("T_eff", "eta", "batch", "n_data", "amplitude", "chains")}
    occ, se, exact = _rows(r["occ"], r["se"], r["exact"])
    return {**out, "occ": occ, "se": se, "exact": exact, "hist": [_hist2(r["final"][m]) for m in range(2)]}


# -- tables: the cells of one part, pooled ----------------------------------------------------------------


def _part(cells, part: str) -> list[tuple[dict, dict]]:
    out = [(c, r) for c, r in cells if c.get("part") == part]
    if not out:
        raise ValueError(f"no cells of part {part!r} among the {len(cells)} cells given")
    return out


def _one(cells, part: str) -> dict:
    sel = _part(cells, part)
    if len(sel) != 1:
        raise ValueError(f"expected one cell of part {part!r}, got {len(sel)}")
    return sel[0][1]


def pool(blocks: list[tuple[np.ndarray, np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray, int]:
    """Pool per-block means ``m_b`` with standard errors ``s_b`` over ``N_b`` independent chains into
    the mean and standard error over all ``N = sum N_b`` chains (exact: the within-block sum of squares
    is ``(N_b - 1) N_b s_b^2``, the between-block one ``N_b (m_b - m)^2``).  One block is returned as is."""
    if len(blocks) == 1:
        m, s, n = blocks[0]
        return np.asarray(m, dtype=float), np.asarray(s, dtype=float), int(n)
    ms = [np.asarray(m, dtype=float) for m, _, _ in blocks]
    ss = [np.asarray(s, dtype=float) for _, s, _ in blocks]
    ns = [int(n) for _, _, n in blocks]
    N = sum(ns)
    mean = sum(n * m for n, m in zip(ns, ms)) / N
    sq = sum((n - 1) * n * s**2 + n * (m - mean) ** 2 for n, m, s in zip(ns, ms, ss))
    return mean, np.sqrt(sq / (N - 1) / N), N


def gibbs_table(cells) -> dict:
    """The ``gibbs`` cell as numpy arrays (see :func:`flat_minima_cell`)."""
    r = _one(cells, "gibbs")
    return {k: (np.asarray(v, dtype=float) if k not in ("temps", "dims", "wedge_temps", "wedge_dims") else v)
            for k, v in r.items()}


def noise_table(cells) -> dict:
    """The ``noise`` cell with ``kappa1, skew1, kurt, ks`` as float64 tensors and ``hist`` as an array."""
    r = dict(_one(cells, "noise"))
    for k in ("kappa1", "skew1", "kurt", "ks"):
        r[k] = torch.tensor(r[k], dtype=torch.float64)
    r["hist"] = np.asarray(r["hist"], dtype=float)
    return r


def sgdl_table(cells) -> dict:
    """The ``sgdl`` cells joined along the seed axis: ``train_err, test_err [2, seeds, records]`` tensors."""
    sel = sorted(_part(cells, "sgdl"), key=lambda cr: cr[1]["first_seed"])
    first = [r["first_seed"] for _, r in sel]
    stops = [r["first_seed"] + r["seeds"] for _, r in sel]
    if first[0] != 0 or any(a != b for a, b in zip(stops, first[1:])):
        raise ValueError(f"the sgdl cells' seed groups must tile 0..seeds-1, got starts {first}, stops {stops}")
    r0 = sel[0][1]
    out = {k: r0[k] for k in ("steps", "n_train", "n_test", "batch", "lr")}
    for k in ("train_err", "test_err"):
        out[k] = torch.cat([torch.tensor(r[k], dtype=torch.float64) for _, r in sel], 1)
    out["seeds"] = stops[-1]
    return out


def _pool_rows(sel, key) -> tuple[list, dict]:
    groups: dict = {}
    for _, r in sel:
        for row in r["rows"]:
            groups.setdefault(key(row), []).append(row)
    pooled = {}
    for k, rows in groups.items():
        m, s, n = pool([(row["occ"], row["se"], row["chains"]) for row in rows])
        pooled[k] = (m, s, n, np.asarray(rows[0]["exact"], dtype=float))
    counts = {v[2] for v in pooled.values()}
    if len(counts) != 1:
        raise ValueError(f"settings have different numbers of chains: {sorted(counts)}")
    return list(groups), pooled


def wells_table(cells) -> dict:
    """The ``wells`` cells pooled per (step, dimension): ``occ, se [etas, dims, 3]`` (narrow box, wide box,
    rest), ``exact [dims, 3]``, ``chains`` per setting."""
    sel = _part(cells, "wells")
    order, pooled = _pool_rows(sel, lambda row: (float(row["eta"]), int(row["D"])))
    etas = list(dict.fromkeys(e for e, _ in order))
    dims = list(dict.fromkeys(D for _, D in order))
    if len(order) != len(etas) * len(dims):
        raise ValueError(f"the wells cells must cover every (step, D) pair, got {order}")
    occ = np.array([[pooled[(e, D)][0] for D in dims] for e in etas])
    se = np.array([[pooled[(e, D)][1] for D in dims] for e in etas])
    exact = np.array([pooled[(etas[0], D)][3] for D in dims])
    return {"etas": etas, "dims": dims, "T": sel[0][1]["T"], "chains": pooled[order[0]][2], "occ": occ,
            "se": se, "exact": exact}


def wedge_table(cells) -> dict:
    """The ``wedge`` cells pooled per dimension: ``occ, se, exact [dims, 3]`` (isolated, valley, plateau)
    and ``hist_d2`` (final states of the 2-D chains, all blocks) when ``D = 2`` was run."""
    sel = _part(cells, "wedge")
    order, pooled = _pool_rows(sel, lambda row: int(row["D"]))
    out = {"dims": order, "T": sel[0][1]["T"], "eta": sel[0][1]["eta"], "chains": pooled[order[0]][2],
           "occ": np.array([pooled[D][0] for D in order]), "se": np.array([pooled[D][1] for D in order]),
           "exact": np.array([pooled[D][3] for D in order])}
    h = [np.asarray(r["hist_d2"], dtype=float) for _, r in sel if "hist_d2" in r]
    if h:
        out["hist_d2"] = sum(h)
    return out


def fig10_table(cells) -> dict:
    """The ``fig10`` cells pooled over blocks: ``occ, se [2, 3]`` (SGD, SGDL x isolated, valley, plateau),
    ``exact [3]`` (Gibbs law at ``T_eff``), ``hist [2, 48, 48]``."""
    sel = _part(cells, "fig10")
    r0 = sel[0][1]
    m, s, n = pool([(r["occ"], r["se"], r["chains"]) for _, r in sel])
    out = {k: r0[k] for k in ("T_eff", "eta", "batch", "n_data", "amplitude")}
    return {**out, "chains": n, "occ": m, "se": s, "exact": np.asarray(r0["exact"], dtype=float),
            "hist": sum(np.asarray(r["hist"], dtype=float) for _, r in sel)}


# -- claims ---------------------------------------------------------------------------------------------------

_PAPER_CLT = (
    "'it turns out that the vector of gradient updates ... empirically shows components with approximate "
    "Gaussian distributions ... This is expected because of the Central Limit Theorem' (Sec. 5.1)"
)


def noise_stats(noise: dict) -> dict:
    """From :func:`noise_table`: mean excess kurtosis per batch size, its fitted log-log slope, the median
    KS distance per batch size (torch's lower median) and the index of ``batch_gauss``."""
    Bs = np.array(noise["batches"], dtype=float)
    kurt_mean = noise["kurt"].mean(1).numpy()
    return {"Bs": Bs, "kurt_mean": kurt_mean, "kappa1_mean": float(noise["kappa1"].mean()),
            "ks_med": noise["ks"].median(1).values.numpy(),
            "slope": float(np.polyfit(np.log(Bs), np.log(kurt_mean), 1)[0]),
            "iG": noise["batches"].index(noise["batch_gauss"])}


def claim_grad_noise_kurtosis_clt(cells, claims) -> None:
    """Library check ``theory3.grad_noise_kurtosis_clt`` (in ``claims.checks``): the excess kurtosis of
    i.i.d. minibatch noise falls like ``kappa_1 / B`` (fitted log-log slope within 0.15 of -1)."""
    noise = noise_table(cells)
    slope = noise_stats(noise)["slope"]
    claims.checks.check(
        "theory3.grad_noise_kurtosis_clt",
        "Minibatch noise (eq. 7) drawn i.i.d. with replacement: the excess kurtosis of its components is exactly "
        "kappa_1 / B (cumulants of a mean), so this tests the sampler, not the paper; fitted log-log slope "
        "of the mean excess kurtosis over B = " + ", ".join(map(str, noise["batches"])) + ". " + _PAPER_CLT,
        abs(slope + 1) <= 0.15,
        f"slope {slope:.2f}",
        "slope -1 (CLT)",
        "|slope + 1| <= 0.15 (MC error of the kurtosis at the largest B, ~10%, moves the slope by < 0.05)",
        value=round(slope, 2),
    )


def claim_grad_noise_gaussian(cells, claims) -> None:
    """``theory3.grad_noise_gaussian`` (Fig. 5): at ``B = batch_gauss`` the median KS distance of the
    standardized noise components to ``N(0, 1)`` is at most 0.05."""
    noise = noise_table(cells)
    st = noise_stats(noise)
    ks_med, iG = st["ks_med"], st["iG"]
    B_G = noise["batch_gauss"]
    claims.check(
        "theory3.grad_noise_gaussian",
        f"At batch size B = {B_G} (the usual CIFAR-10 batch; the memo does not state Fig. 5's) the components of "
        "the minibatch noise are close to Gaussian: median KS distance to N(0,1) over "
        f"{noise['coords']} random components, {noise['draws']} minibatches each, <= 0.05 (at B = "
        f"{noise['batches'][iG - 1]}: {ks_med[iG - 1]:.3f}). " + _PAPER_CLT,
        bool(ks_med[iG] <= 0.05),
        f"median KS {ks_med[iG]:.3f}",
        "approximately Gaussian",
        f"<= 0.05 (MC floor ~{0.87 / math.sqrt(noise['draws']):.3f})",
        value=round(float(ks_med[iG]), 3),
    )


def sgdl_diffs(sg: dict) -> dict:
    """Paired final-error differences SGD - SGDL over seeds (:func:`sgdl_table`): mean and SE, test and train."""
    out = {}
    for key in ("test", "train"):
        d = (sg[f"{key}_err"][0, :, -1] - sg[f"{key}_err"][1, :, -1]).numpy()
        out[key] = (float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))))
    return out


def claim_sgdl_like_sgd(cells, claims) -> None:
    """``theory3.sgdl_like_sgd`` (Fig. 6): the paired difference SGD - SGDL of the final train and test
    error lies within one percentage point together with its 2-SE interval."""
    sg = sgdl_table(cells)
    d = sgdl_diffs(sg)
    (mt, st), (mtr, str_) = d["test"], d["train"]
    claims.check(
        "theory3.sgdl_like_sgd",
        "SGDL (full gradient + Gaussian noise of SGD's covariance) reaches the same train and test error as SGD: "
        "'Equation 5 - that is SGD with added Gaussian (with constant power) - behaves in a similar way to "
        "standard SGD' (Fig. 6): the paired difference SGD - SGDL of the final error, mean over "
        f"{sg['seeds']} seeds (same initialization for both methods; SE over seeds), lies within "
        "0.01 (one percentage point) together with its 2-SE interval, for train and test",
        abs(mt) + 2 * st <= 0.01 and abs(mtr) + 2 * str_ <= 0.01,
        f"test diff {pm(mt, st)}, train diff {pm(mtr, str_)}",
        "similar (SGDL slightly better)",
        "|mean| + 2 se <= 0.01 for train and test",
        value={"d_test": mt, "d_train": mtr},
        se=st,
    )


def gibbs_devs(g: dict) -> tuple[float, float]:
    """``(max |M2/M1/2^D - 1|, max |P(box2)/P(box1)/2^D - 1|)`` over the ``gibbs`` cell's temperatures and
    dimensions (:func:`gibbs_table`)."""
    pow2 = 2.0 ** np.array(g["dims"], dtype=float)
    excess = float(np.abs(g["excess_ratio"] / pow2 - 1).max())
    box = float(np.abs(g["box_ratio"] / pow2 - 1).max())
    return excess, box


def claim_gibbs_excess_mass_2powD(cells, claims) -> None:
    """``theory3.gibbs_excess_mass_2powD`` (eq. 9, Fig. 7): exactly, the wide well's excess mass is ``2^D``
    times the narrow one's (to 1e-9), and the basin boxes keep that ratio within 1%."""
    g = gibbs_table(cells)
    excess_dev, box_dev = gibbs_devs(g)
    claims.check(
        "theory3.gibbs_excess_mass_2powD",
        "Eq. 9 on the Fig. 7 potential: the wide well's Gibbs mass exceeds the narrow one's by 2^D (exact, "
        f"D = {g['dims'][0]}..{g['dims'][-1]}, T in " + ", ".join(map(str, g["temps"]))
        + "): 'among two minimum basins of equal depth, the one with a larger "
        "volume, is much more likely in high dimensions (Figure 7)'",
        excess_dev < 1e-9 and box_dev < 0.01,
        f"max |M2/M1/2^D - 1| {'< 1e-12' if excess_dev < 1e-12 else f'{excess_dev:.1e}'}; "
        f"max |P(box2)/P(box1)/2^D - 1| = {box_dev:.4f}",
        "factor 2 per dimension",
        "excess-mass identity to 1e-9; box probabilities within 1% (tails of the other well)",
        value={"box_dev": round(box_dev, 4)},
    )


def slice_ratios_fig7(g: dict) -> list[float]:
    """The exact slice ratios ``p(w_1=12)/p(w_1=4)`` at the authors' temperature for ``D = 1..5``."""
    i = g["temps"].index(round(T_FIG7, 5))
    j = [g["dims"].index(D) for D in range(1, 6)]
    return [float(g["slice_ratio"][i, k]) for k in j]


def claim_gibbs_slice_ratio_grows_with_D(cells, claims) -> None:
    """``theory3.gibbs_slice_ratio_grows_with_D`` (Fig. 7 on the authors' box and temperature): the exact
    slice ratio increases over ``D = 1..5`` (it does not: the plateau's volume wins)."""
    sr = slice_ratios_fig7(gibbs_table(cells))
    claims.check(
        "theory3.gibbs_slice_ratio_grows_with_D",
        f"Fig. 7 at the authors' temperature T = {T_FIG7:.5f} (A = 0.45, eta = 1) and box [0, 18)^D: the exact "
        "marginal density ratio p(w_1 = 12)/p(w_1 = 4) increases with D for D = 1..5 (the figure's dimensions): "
        "'As expected, higher dimensionality implies higher probability of selecting the flatter minimum'",
        all(b > a for a, b in zip(sr, sr[1:])),
        "ratios " + ", ".join(f"{r:.2f}" for r in sr),
        "increasing in D",
        "strictly increasing over D = 1..5",
        value={f"D{D}": round(r, 3) for D, r in zip(range(1, 6), sr)},
    )


def wells_z(wells: dict) -> tuple[np.ndarray, list[np.ndarray]]:
    """z-scores ``(occ - exact) / se`` of the two basin boxes ``[etas, dims, 2]`` (:func:`wells_table`) and
    Holm's rejections (two-sided, family-wise 0.05) per step size."""
    from cnnbias import stats

    z = (wells["occ"][:, :, :2] - wells["exact"][None, :, :2]) / wells["se"][:, :, :2]
    z = np.asarray(z, dtype=float)
    p = [[math.erfc(abs(v) / math.sqrt(2)) for v in zi.ravel()] for zi in z]
    return z, [stats.holm_reject(pi) for pi in p]


def claim_langevin_matches_gibbs(cells, claims) -> None:
    """``theory3.langevin_matches_gibbs`` (eq. 9, Fig. 7): at the smallest step the chains' basin-box
    occupancies equal the exact Gibbs probabilities (Holm's test rejects none)."""
    wells = wells_table(cells)
    z, holm = wells_z(wells)
    zmax, zmax1 = float(np.abs(z[0]).max()), float(np.abs(z[-1]).max())
    claims.check(
        "theory3.langevin_matches_gibbs",
        f"GDL chains (eta = {wells['etas'][0]}, T = {wells['T']}, D = {wells['dims']}) occupy each basin box of the "
        "Fig. 7 potential with the exact Gibbs probability: 'The asymptotic distribution reached by a Langevin "
        "equation (GDL) ... is the Boltzman distribution' (eq. 9); "
        f"{wells['chains']} independent chains per setting (SE over chains), the "
        f"{holm[0].size} basin probabilities one family",
        not bool(holm[0].any()),
        f"max |z| = {zmax:.1f}, Holm rejects {int(holm[0].sum())} of {holm[0].size} (at eta = "
        f"{wells['etas'][-1]:g}: max |z| {zmax1:.0f}, rejects {int(holm[-1].sum())})",
        "Boltzmann law",
        "Holm's test (two-sided z, family-wise 0.05) rejects none",
        value={"zmax": round(zmax, 1), "rejected": int(holm[0].sum())},
    )


def claim_gibbs_degenerate_preferred(cells, claims) -> None:
    """``theory3.gibbs_degenerate_preferred`` (eq. 9, Figs. 8-9): exactly, the wedge's valley is more
    probable than its isolated minimum, increasingly with ``D``, at every temperature."""
    g = gibbs_table(cells)
    wp = g["wedge_prob"]  # [T, D, 3]
    ok = all(bool(np.all(w[:, 1] > w[:, 0])) and bool(np.all(np.diff(w[:, 1] / w[:, 0]) > 0)) for w in wp)
    r2 = {T: w[0, 1] / w[0, 0] for T, w in zip(g["wedge_temps"], wp)}
    claims.check(
        "theory3.gibbs_degenerate_preferred",
        "Exact Gibbs law of the wedge potential, T in " + ", ".join(map(str, g["wedge_temps"]))
        + f", D = {g['wedge_dims'][0]}..{g['wedge_dims'][-1]}: the degenerate "
        "valley is more probable than the isolated minimum of the same depth, increasingly with D: 'SGD prefers "
        "degenerate minima relative to non-degenerate ones of the same depth'",
        ok,
        f"P(valley)/P(iso) at D = {g['wedge_dims'][0]}: " + ", ".join(f"{r:.3g}" for r in r2.values()),
        "degenerate preferred",
        "ratio > 1 and increasing in D at every T",
        value={f"T{T}": round(float(r), 3) for T, r in r2.items()},
    )


def claim_fig9_isolated_density_falls(cells, claims) -> None:
    """``theory3.fig9_isolated_density_falls`` (Fig. 9): the isolated minimum's exact Gibbs probability
    falls with ``D`` at every temperature, and the chains' occupancy falls by more than 2 SE per step."""
    g, wedge = gibbs_table(cells), wedge_table(cells)
    pi, pise = wedge["occ"][:, 0], wedge["se"][:, 0]
    falls_exact = all(bool(np.all(np.diff(w[:, 0]) < 0)) for w in g["wedge_prob"])
    falls_mc = all(a - b > 2 * math.hypot(sa, sb) for a, b, sa, sb in zip(pi, pi[1:], pise, pise[1:]))
    claims.check(
        "theory3.fig9_isolated_density_falls",
        f"Fig. 9: the isolated minimum's Gibbs probability falls with D (exact, D = {g['wedge_dims'][0]}.."
        f"{g['wedge_dims'][-1]}, all T) and the chains' "
        "occupancy falls with D (each step > 2 SE): 'as dimensions increase the distribution concentrates strongly "
        "around the degenerate minima'",
        falls_exact and falls_mc,
        "chains: " + ", ".join(pm(a, s) for a, s in zip(pi, pise)),
        "falls with D",
        "strict decrease (exact); decrease > 2 SE per step (chains)",
        value={f"D{D}": float(f"{a:.4f}") for D, a in zip(wedge["dims"], pi)},
    )


def claim_langevin_degenerate_2d(cells, claims) -> None:
    """``theory3.langevin_degenerate_2d`` (Fig. 8): the 2-D wedge chains spend more time in the valley
    than at the isolated minimum (by more than 3 SE)."""
    wedge = wedge_table(cells)
    j2 = wedge["dims"].index(2)
    claims.greater(
        "theory3.langevin_degenerate_2d",
        "Fig. 8: GDL chains on the 2-D wedge, started at the isolated minimum, spend more time in the degenerate "
        "valley than at the isolated minimum: 'the Langevin dynamics prefers degenerate minima to "
        "non-degenrate minima of the same depth'",
        round(float(wedge["occ"][j2, 1]), 3),
        round(float(wedge["occ"][j2, 0]), 3),
        float(f"{math.hypot(wedge['se'][j2, 1], wedge['se'][j2, 0]):.1g}"),
        k=3.0,
    )


def claim_sgd_sgdl_prefer_valley(cells, claims) -> None:
    """``theory3.sgd_sgdl_prefer_valley`` (Fig. 10): SGD and SGDL on the finite-sum wedge spend more time in
    the valley than at the sharp minimum (by more than 3 SE each)."""
    f10 = fig10_table(cells)
    ok = all(f10["occ"][m, 1] - f10["occ"][m, 0] > 3 * math.hypot(f10["se"][m, 1], f10["se"][m, 0])
             for m in (0, 1))
    claims.check(
        "theory3.sgd_sgdl_prefer_valley",
        "Fig. 10: SGD and SGDL on a finite-sum loss with a flat valley and a sharp minimum, started at the sharp "
        "one, spend more time in the valley: 'both dynamics prefers degenerate minima to non-degenerate minima "
        "of the same depth'",
        ok,
        "; ".join(f"{n}: valley {pm(f10['occ'][m, 1], f10['se'][m, 1])}, isolated "
                  f"{pm(f10['occ'][m, 0], f10['se'][m, 0])}" for m, n in enumerate(["SGD", "SGDL"])),
        "valley preferred",
        "valley - isolated > 3 SE for both",
        value={"sgd_valley": round(float(f10["occ"][0, 1]), 3), "sgdl_valley": round(float(f10["occ"][1, 1]), 3)},
    )


def _label(c) -> str:
    p = c["part"]
    if p == "sgdl" and "seed_group" in c:
        return f"sgdl seeds {c['seed_group'][0]}..{c['seed_group'][1] - 1}"
    if p == "wells" and "block" in c:
        return f"wells eta={c['steps_eta'][0]:g} D={c['dims'][0]} block {c['block']}"
    if p == "wedge" and "block" in c:
        return f"wedge D={c['dims'][0]} block {c['block']}"
    if p == "fig10" and "block" in c:
        return f"fig10 block {c['block']}"
    return p


#: The sweep ``theory3.flat_minima`` (registered): the cells of :func:`flat_minima_cells` at each scale.
SWEEP = _register(_Sweep(
    "theory3.flat_minima", flat_minima_cell, cells={s: flat_minima_cells(s) for s in CONFIGS},
    code=("cnnbias.config", "cnnbias.data.digits", "cnnbias.langevin", "cnnbias.models.mlp", "cnnbias.stats",
          "cnnbias.theory.theory3.gibbs"),
    description="Theory III Sec. 5 / Figs. 5-10: gradient noise, SGD vs SGDL, exact Gibbs law, Langevin chains",
    label=_label,
    cpu_only=True,
))


def _is(*parts):
    return lambda c: c.get("part") in parts


#: The claims computed from the sweep's cells, in the chapter's order, as (id, function, parts it reads).
CLAIMS = (
    ("theory3.grad_noise_gaussian", claim_grad_noise_gaussian, ("noise",)),
    ("theory3.sgdl_like_sgd", claim_sgdl_like_sgd, ("sgdl",)),
    ("theory3.gibbs_excess_mass_2powD", claim_gibbs_excess_mass_2powD, ("gibbs",)),
    ("theory3.gibbs_slice_ratio_grows_with_D", claim_gibbs_slice_ratio_grows_with_D, ("gibbs",)),
    ("theory3.langevin_matches_gibbs", claim_langevin_matches_gibbs, ("wells",)),
    ("theory3.gibbs_degenerate_preferred", claim_gibbs_degenerate_preferred, ("gibbs",)),
    ("theory3.fig9_isolated_density_falls", claim_fig9_isolated_density_falls, ("gibbs", "wedge")),
    ("theory3.langevin_degenerate_2d", claim_langevin_degenerate_2d, ("wedge",)),
    ("theory3.sgd_sgdl_prefer_valley", claim_sgd_sgdl_prefer_valley, ("fig10",)),
)
for _id, _fn, _parts in CLAIMS:
    _sel = _is(*_parts)
    if _id == "theory3.langevin_degenerate_2d":  # only the cells that ran D = 2
        _sel = lambda c: c.get("part") == "wedge" and 2 in c.get("dims", [])  # noqa: E731
    _register_claim(_ClaimSpec(_id, SWEEP.name, _fn, select=_sel))
