"""Experiments of the XORD paper :cite:`xord`: training on Eq. 3 through :mod:`cnnbias.engine` (all channel
counts of a figure in one batched program), the channel sweeps of Sec. 6 / App. A.2-A.4, OBD, and the
digit CNN of Sec. 6.2 (training and k-means compression)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from cnnbias import config
from cnnbias import validate as V
from cnnbias.data import xord as X
from cnnbias.engine import StopRule, train
from cnnbias.models import init, maxpool
from cnnbias.models import small_cnn as S
from cnnbias.stats import error_rate
from cnnbias.theory.xord import n_detected, test_error_exact

# ----------------------------------------------------------------------------------------------------------------
# Training (Eq. 3) through cnnbias.engine, all channel counts of a figure in one batched program
# ----------------------------------------------------------------------------------------------------------------


def init_filters(ks: list[int] | Tensor, sigma_g: list[float] | Tensor, gens: list[torch.Generator],
                 dim: int = 2, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """Gaussian initialization ``N(0, sigma_g^2)`` of ``2 k_r`` filters for every run ``r``, padded to
    ``K = max k``: returns ``W [R, 2K, dim]`` (w filters in rows ``0..k_r-1``, u filters in rows ``K..K+k_r-1``,
    zeros elsewhere) and the channel mask ``[R, 2K]`` (float 0/1).  Run ``r`` draws from ``gens[r]`` only, so
    the result does not depend on which channel counts share the batch."""
    V.generators("gens", gens)
    V.integer("dim", dim, 1)
    for k in ks:
        V.integer("ks[i]", k, 1)
    for s_ in sigma_g:
        V.positive("sigma_g[i]", s_)
    ks = [int(k) for k in ks]
    if len(ks) != len(gens) or len(ks) != len(sigma_g):
        raise ValueError("ks, sigma_g and gens must have one entry per run")
    if min(ks) < 1:
        raise ValueError(f"every k must be >= 1, got {min(ks)}")
    K = max(ks)
    W = torch.zeros(len(ks), 2 * K, dim, dtype=dtype)
    mask = torch.zeros(len(ks), 2 * K, dtype=dtype)
    for r, (k, s, g) in enumerate(zip(ks, sigma_g, gens)):
        w = init.normal([g], (2 * k, dim), float(s), dtype)[0]
        W[r, :k], W[r, K:K + k] = w[:k], w[k:]
        mask[r, :k], mask[r, K:K + k] = 1.0, 1.0
    return W, mask


def eq3_loss(out: Tensor, y: Tensor, gamma: float | Tensor) -> Tensor:
    """Eq. 3 per run: ``(1/m) sum_pos max{gamma - N, 0} + (1/m) sum_neg max{1 + N, 0}`` with ``m`` points per class
    (``out, y [R, 2m]``; classes balanced).  ``gamma`` may be a float or a per-run tensor ``[R]``.
    Cheap checks only (the engine calls this every step)."""
    if not isinstance(out, Tensor) or not isinstance(y, Tensor) or out.shape != y.shape:
        raise ValueError(f"out and y must be tensors of one shape [R, 2m], got {getattr(out, 'shape', out)!r} and "
                         f"{getattr(y, 'shape', y)!r}")
    g = torch.as_tensor(gamma, dtype=out.dtype, device=out.device)
    if g.ndim == 1:
        g = g[:, None]
    pos = (y > 0).to(out.dtype)
    m = pos.sum(-1).clamp(min=1)
    per = pos * torch.relu(g - out) + (1 - pos) * torch.relu(1 + out)
    return per.sum(-1) / m


def forward_patterns(W: Tensor, pats: Tensor, idx: Tensor, mask: Tensor | None = None) -> Tensor:
    """Eq. 1 / Eq. 8 on pattern-index inputs: ``N_W`` for ``W [R, 2K, dim]``, pattern matrix ``pats [L, dim]`` and
    ``idx [R, m, n]``.  Computed as ``cnnbias.models.maxpool.forward_fixed`` of the projections ``W pats^T``
    (a gather over the ``L`` patterns, ``patterns=`` of the core model), which equals the dense forward pass on
    ``pats[idx]``."""
    if mask is not None:
        W = W * mask[..., None]
    return maxpool.forward_fixed(W, idx=idx, patterns=pats)


def train_fixed_readout(
    W0: Tensor, mask: Tensor, pats: Tensor, idx: Tensor, y: Tensor, lr: Tensor, gamma: float | Tensor,
    max_epochs: int, patience: int | None = 20, record=None, record_every: int = 1,
):
    """Gradient descent on Eq. 3 over the first layer only (readout fixed to +-1), through
    :func:`cnnbias.engine.train`; stops at zero loss (a global minimum, where the gradient vanishes), after
    ``patience`` non-improving iterations, or at ``max_epochs``.  Returns the engine's ``TrainResult``."""
    _check_train_args(W0, mask, y, gamma, max_epochs)
    V.tensor("idx", idx, 3, kind="int")
    V.floating_tensor("pats", pats, 2)
    if pats.shape[1] != W0.shape[2]:
        raise ValueError(f"pats must be [L, dim={W0.shape[2]}], got {tuple(pats.shape)}")
    V.index_in_range("idx", idx, pats.shape[0])
    dev, dt = W0.device, W0.dtype
    gam = torch.as_tensor(gamma, dtype=dt).to(dev)
    pats, idx, mask, y = pats.to(dev, dt), idx.to(dev), mask.to(dev, dt), y.to(dev, dt)
    lr = lr.to(dev, dt) if isinstance(lr, Tensor) else lr

    def loss_fn(params, batch):
        g = batch.take(gam) if gam.ndim == 1 else gam
        out = forward_patterns(params["W"], pats, batch.take(idx), batch.take(mask))
        return eq3_loss(out, batch.take(y), g)

    stop = StopRule(max_epochs=max_epochs, loss_below=0.0, patience=patience)
    return train(loss_fn, {"W": W0}, trainable=("W",), optimizer="gd", lr=lr, stop=stop,
                 record=record, record_every=record_every)


def _check_train_args(W0: Tensor, mask: Tensor, y: Tensor, gamma, max_epochs: int) -> None:
    V.floating_tensor("W0", W0, 3)
    if W0.shape[1] == 0 or W0.shape[1] % 2:
        raise ValueError(f"W0 must have shape [R, 2K, dim] with K >= 1, got {tuple(W0.shape)}")
    V.tensor("mask", mask, shape=(W0.shape[0], W0.shape[1]))
    V.labels_pm1("y", y)
    if y.dim() != 2 or y.shape[0] != W0.shape[0]:
        raise ValueError(f"y must have shape [R={W0.shape[0]}, m], got {tuple(y.shape)}")
    if isinstance(gamma, Tensor) and gamma.numel() != 1:
        V.tensor("gamma", gamma, shape=(W0.shape[0],))
        if not bool(((gamma > 0) & torch.isfinite(gamma)).all()):
            raise ValueError("gamma must be positive and finite (every run)")
    else:
        V.positive("gamma", gamma)
    V.integer("max_epochs", max_epochs, 1)


def compress_to_sets(idx: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Group each run's training points by pattern set (App. C: N_W and its gradient depend on a point only through
    its pattern set).  ``idx [R, m, d], y [R, m]`` -> ``masks [R, U, 4]`` (bool), ``ys [R, U]`` and ``counts [R, U]``
    (number of training points with that set; 0 for padding rows).  The Eq. 3 loss of the compressed data with
    these counts equals the loss of the original data (:func:`eq3_loss_sets`)."""
    V.tensor("idx", idx)
    V.labels_pm1("y", y)
    if idx.ndim != 3 or y.shape != idx.shape[:2]:
        raise ValueError(f"idx must be [R, m, d] and y [R, m], got {tuple(idx.shape)} and {tuple(y.shape)}")
    s = X.pattern_set(idx)  # [R, m, 4]
    code = (s.long() * torch.tensor([1, 2, 4, 8])).sum(-1)  # 1..15
    R = idx.shape[0]
    rows = [torch.unique(code[r], return_counts=True) for r in range(R)]
    U = max(len(u) for u, _ in rows)
    masks = torch.zeros(R, U, 4, dtype=torch.bool)
    counts = torch.zeros(R, U, dtype=y.dtype)
    ys = torch.ones(R, U, dtype=y.dtype)
    bits = torch.tensor([1, 2, 4, 8])
    for r, (u, c) in enumerate(rows):
        masks[r, : len(u)] = (u[:, None] & bits) > 0
        counts[r, : len(u)] = c.to(y.dtype)
        ys[r, : len(u)] = torch.where(masks[r, : len(u), 0] | masks[r, : len(u), 2], 1.0, -1.0).to(y.dtype)
    return masks, ys, counts


def network_on_run_sets(W: Tensor, masks: Tensor, mask_channels: Tensor | None = None) -> Tensor:
    """``N_W`` for per-run pattern sets ``masks [R, U, 4]`` (faster twin of :func:`~cnnbias.theory.xord.network_on_sets`), ``[R, U]``."""
    k = W.shape[1] // 2
    if mask_channels is not None:
        W = W * mask_channels[..., None]
    act = torch.relu(W @ X.patterns(W.dtype, W.device).T)  # [R, C, 4]
    resp = (masks.to(W.dtype)[:, :, None, :] * act[:, None]).max(-1).values  # [R, U, C]
    return resp[..., :k].sum(-1) - resp[..., k:].sum(-1)


def eq3_loss_sets(out: Tensor, ys: Tensor, counts: Tensor, gamma: float | Tensor) -> Tensor:
    """Eq. 3 on compressed data: ``sum_u counts_u * hinge_u / m`` with ``m`` = number of positive points."""
    g = torch.as_tensor(gamma, dtype=out.dtype, device=out.device)
    if g.ndim == 1:
        g = g[:, None]
    pos = (ys > 0).to(out.dtype)
    m = (pos * counts).sum(-1).clamp(min=1)
    per = pos * torch.relu(g - out) + (1 - pos) * torch.relu(1 + out)
    return (counts * per).sum(-1) / m


def train_xord_sets(
    W0: Tensor, mask: Tensor, idx: Tensor, y: Tensor, lr: Tensor, gamma: float | Tensor, max_epochs: int,
    patience: int | None = 20, record=None, record_every: int = 1,
):
    """Like :func:`train_fixed_readout` for XORD data, but on the pattern-set compression of the training set
    (:func:`compress_to_sets`): the same GD iterates (the tests check it against the dense network), fewer
    operations.  Returns the engine's ``TrainResult``."""
    _check_train_args(W0, mask, y, gamma, max_epochs)
    dev, dt = W0.device, W0.dtype
    masks, ys, counts = compress_to_sets(idx.cpu(), y.cpu())
    masks, ys, counts, mask = masks.to(dev), ys.to(dev, dt), counts.to(dev, dt), mask.to(dev, dt)
    gam = torch.as_tensor(gamma, dtype=dt).to(dev)
    lr = lr.to(dev, dt) if isinstance(lr, Tensor) else lr

    def loss_fn(params, batch):
        g = batch.take(gam) if gam.ndim == 1 else gam
        out = network_on_run_sets(params["W"], batch.take(masks), batch.take(mask))
        return eq3_loss_sets(out, batch.take(ys), batch.take(counts), g)

    stop = StopRule(max_epochs=max_epochs, loss_below=0.0, patience=patience)
    return train(loss_fn, {"W": W0}, trainable=("W",), optimizer="gd", lr=lr, stop=stop,
                 record=record, record_every=record_every)


# ----------------------------------------------------------------------------------------------------------------
# Experiments of Sec. 6 / App. A.2-A.4 (channel sweeps)
# ----------------------------------------------------------------------------------------------------------------


def xord_channel_sweep(name: str, cfg: dict, channels: list[int], gammas: list[float], R: int,
                       groups: list[list[int]] | None = None, device: torch.device | str | None = None
                       ) -> dict[str, Tensor]:
    """Fig. 1 / Fig. 5 / Fig. 2b: train ``R`` runs for every channel count ``2k`` in ``channels`` and every
    ``gamma``, on ``m`` positive and ``m`` negative points of the mixture ``D`` with ``p+, p-`` (``cfg`` keys
    ``d, m, p_plus, p_minus, lr_c, sigma_g, max_epochs, patience``), learning rate ``lr_c / channels``.

    Channel counts in one of ``groups`` share one batched program (padding with masked filters).  Run ``r`` of
    setting ``(c, gamma)`` draws its data and initialization from ``config.generators(name, {..c, gamma..})[r]``.
    Returns per-run tensors (on the CPU): ``channels, gamma, test_error`` (exact, :func:`~cnnbias.theory.xord.test_error_exact`),
    ``train_error``, ``n_detected`` (c_d = 1e-4), ``epochs``.  ``device``: where to train (default CPU, float64;
    elsewhere ``config.dtype(device)``); data and initializations are always drawn on the CPU.
    """
    _check_sweep_args(cfg, channels, R, groups, ("d", "m", "p_plus", "p_minus", "lr_c", "sigma_g", "max_epochs",
                                                "patience"))
    if isinstance(gammas, (str, bytes)) or not hasattr(gammas, "__len__") or len(gammas) == 0:
        raise ValueError(f"gammas must be a non-empty list of margins > 0, got {gammas!r}")
    for g_ in gammas:
        V.positive("gammas[i]", g_)
    dev = torch.device(device or "cpu")
    dt = config.dtype(dev) if dev.type != "cpu" else torch.float64

    groups = [g for g in (groups or [channels]) if g]  # empty groups are skipped
    out: dict[str, list] = {k: [] for k in ("channels", "gamma", "test_error", "train_error", "n_detected", "epochs")}
    for grp in groups:
        ks, gams, gens, sig = [], [], [], []
        for c in grp:
            if c % 2 or c < 2:
                raise ValueError(f"channels must be even (2k), got {c}")
            for gam in gammas:
                gs = config.generators(name, {**cfg, "channels": c, "gamma": gam}, R)
                gens += gs
                ks += [c // 2] * R
                gams += [float(gam)] * R
        sig = [cfg["sigma_g"]] * len(ks)
        data = [X.sample_xord(cfg["m"], cfg["m"], cfg["d"], g, cfg["p_plus"], cfg["p_minus"]) for g in gens]
        idx = torch.stack([a for a, _ in data])
        y = torch.stack([b for _, b in data])
        W0, mask = init_filters(ks, sig, gens)
        lr = torch.tensor([cfg["lr_c"] / (2 * k) for k in ks], dtype=torch.float64)
        gam_t = torch.tensor(gams, dtype=torch.float64)
        res = train_xord_sets(W0.to(dev, dt), mask.to(dev, dt), idx, y, lr, gam_t, cfg["max_epochs"], cfg["patience"])
        W = res.params["W"].cpu().double()
        with torch.no_grad():
            tr = forward_patterns(W, X.patterns(), idx, mask)
            tr_err = error_rate(tr, y)
            te = test_error_exact(W, cfg["d"], cfg["p_plus"], cfg["p_minus"], mask)
            nd = n_detected(W, 1e-4, mask)
        out["channels"].append(torch.tensor([2 * k for k in ks]))
        out["gamma"].append(gam_t)
        out["test_error"].append(te)
        out["train_error"].append(tr_err)
        out["n_detected"].append(nd)
        out["epochs"].append(res.epochs)
    return {k: torch.cat(v) for k, v in out.items()}


def _check_sweep_args(cfg: dict, channels, R: int, groups, keys: tuple[str, ...]) -> None:
    if not isinstance(cfg, dict):
        raise TypeError(f"cfg must be a dict of settings, got {type(cfg).__name__}")
    missing = [k for k in keys if k not in cfg]
    if missing:
        raise ValueError(f"cfg is missing the keys {missing} (needs {', '.join(keys)})")
    V.integer("R", R, 1)
    if isinstance(channels, (str, bytes)) or not hasattr(channels, "__iter__"):
        raise ValueError(f"channels must be a list of even channel counts 2k >= 2, got {channels!r}")
    for grp in groups if groups is not None else [channels]:
        for c in grp:
            V.integer("channels[i]", c, 2)
            if c % 2:
                raise ValueError(f"channels must be even (2k), got {c}")
    for nm in ("lr_c", "sigma_g"):
        V.positive(f"cfg[{nm!r}]", cfg[nm])
    V.integer("cfg['max_epochs']", cfg["max_epochs"], 1)
    if cfg["patience"] is not None:
        V.integer("cfg['patience']", cfg["patience"], 1)


def obd_channel_sweep(name: str, cfg: dict, channels: list[int], R: int, groups: list[list[int]] | None = None,
                      device: torch.device | str | None = None) -> dict[str, Tensor]:
    """Fig. 2a/2c: the OBD problem (App. A.4) with ``d1`` (cfg ``d1``), ``m`` points per class (pattern counts
    drawn from cfg ``sizes``, default (4, 6, 8, 10)), learning rate
    ``lr_c / channels``, hinge margin ``gamma``, stop rules ``max_epochs, patience``, initialization ``sigma_g``;
    test error by Monte Carlo on ``n_test`` points per class (one test set shared by all runs, drawn from its own
    seed).  Detection (Def. 5.1 generalized): pattern ``v`` is detected if ``sum_i relu(w(i).v) > 1e-4`` for
    positive patterns (``u`` for negative ones); ``n_detected`` counts the ``2 d1`` patterns.  ``device`` as in
    :func:`xord_channel_sweep`; results are returned on the CPU."""
    _check_sweep_args(cfg, channels, R, groups, ("d1", "m", "n_test", "lr_c", "gamma", "sigma_g", "max_epochs",
                                                "patience"))
    dev = torch.device(device or "cpu")
    dt = config.dtype(dev) if dev.type != "cpu" else torch.float64

    d1 = cfg["d1"]
    pats = X.obd_patterns(d1)
    gt = torch.Generator().manual_seed(config.run_seed(name + ".test", cfg, 0))
    sizes = tuple(cfg.get("sizes", (4, 6, 8, 10)))
    te_idx = torch.cat([X.sample_obd(cfg["n_test"], 1, d1, gt, sizes), X.sample_obd(cfg["n_test"], -1, d1, gt, sizes)])
    te_y = X.obd_label(te_idx, d1)
    groups = [g for g in (groups or [channels]) if g]  # empty groups are skipped
    out: dict[str, list] = {k: [] for k in ("channels", "test_error", "train_error", "n_detected", "epochs")}
    for grp in groups:
        ks, gens = [], []
        for c in grp:
            gs = config.generators(name, {**cfg, "channels": c}, R)
            gens += gs
            ks += [c // 2] * R
        idx = torch.stack([torch.cat([X.sample_obd(cfg["m"], 1, d1, g, sizes), X.sample_obd(cfg["m"], -1, d1, g, sizes)])
                           for g in gens])
        y = X.obd_label(idx, d1)
        W0, mask = init_filters(ks, [cfg["sigma_g"]] * len(ks), gens, dim=d1)
        lr = torch.tensor([cfg["lr_c"] / (2 * k) for k in ks], dtype=torch.float64)
        res = train_fixed_readout(W0.to(dev, dt), mask.to(dev, dt), pats, idx, y, lr, cfg["gamma"], cfg["max_epochs"],
                                  cfg["patience"])
        W = res.params["W"].cpu().double()
        with torch.no_grad():
            tr = forward_patterns(W, pats, idx, mask)
            tr_err = error_rate(tr, y)
            Rr = W.shape[0]
            te = forward_patterns(W, pats, te_idx[None].expand(Rr, -1, -1), mask)
            te_err = error_rate(te, te_y)
            K = W.shape[1] // 2
            act = torch.relu((W * mask[..., None]) @ pats.T)  # [R, 2K, 2 d1]
            D = torch.cat([act[:, :K, :d1].sum(1), act[:, K:, d1:].sum(1)], -1)
            nd = (D > 1e-4).sum(-1)
        out["channels"].append(torch.tensor([2 * k for k in ks]))
        out["test_error"].append(te_err)
        out["train_error"].append(tr_err)
        out["n_detected"].append(nd)
        out["epochs"].append(res.epochs)
    return {k: torch.cat(v) for k, v in out.items()}


# ----------------------------------------------------------------------------------------------------
# The digit CNN of Sec. 6.2
# ----------------------------------------------------------------------------------------------------


def train_cnn(params: dict[str, Tensor], images: Tensor, labels: Tensor, lr: float, epochs: int,
              trainable: tuple[str, ...] = ("conv", "bias", "fc", "fcb"), batch_size: int | None = None,
              shuffle_seeds: list[int] | None = None):
    """Adam on the mean cross-entropy through :func:`cnnbias.engine.train` for a fixed number of epochs: full
    batch by default, minibatches of ``batch_size`` (per-run shuffles from ``shuffle_seeds``) for large training
    sets (paper scale on MNIST)."""
    V.tensor("images", images, 4)
    V.tensor("labels", labels, 2, kind="int")
    if labels.shape != images.shape[:2]:
        raise ValueError(f"images [R, n, H, W] and labels [R, n] must agree, got {tuple(images.shape)} and "
                         f"{tuple(labels.shape)}")
    V.index_in_range("labels", labels, 10)
    V.integer("epochs", epochs, 1)
    if batch_size is not None:
        V.integer("batch_size", batch_size, 1)

    def loss_fn(p, batch):
        return S.cross_entropy(p, batch.take(images), batch.take(labels))

    n = labels.shape[1]
    if batch_size is None or batch_size >= n:
        return train(loss_fn, params, trainable=trainable, optimizer="adam", lr=lr, stop=StopRule(max_epochs=epochs))
    if shuffle_seeds is None:
        raise ValueError("shuffle_seeds (one per run) is required with batch_size < n")

    # the full training loss is evaluated once, at the end (check_every = epochs)
    return train(loss_fn, params, trainable=trainable, optimizer="adam", lr=lr,
                 stop=StopRule(max_epochs=epochs, check_every=epochs),
                 n_train=n, batch_size=batch_size, shuffle_seeds=shuffle_seeds)


def cluster_filters(params: dict[str, Tensor], n_clusters: int = 4, seeds: list[int] | None = None) -> Tensor:
    """k-means (scikit-learn, ``n_init=10``) of each run's filters-with-bias (points of R^10) into ``n_clusters``;
    returns the centres ``[R, n_clusters, 10]`` (first 9 entries: the 3x3 filter, last: the bias)."""
    from sklearn.cluster import KMeans  # heavy import, only when compressing

    if not isinstance(params, dict) or "conv" not in params or "bias" not in params:
        raise ValueError("params must be a dict with keys 'conv' [R, C, 9] and 'bias' [R, C]")
    V.integer("n_clusters", n_clusters, 1)
    pts = torch.cat([params["conv"], params["bias"][..., None]], -1).detach().cpu().numpy()
    R, C, _ = pts.shape
    if n_clusters > C:
        raise ValueError(f"n_clusters must be <= the number of channels {C}, got {n_clusters}")
    seeds = list(range(R)) if seeds is None else seeds
    if len(seeds) != R:
        raise ValueError(f"seeds must hold one seed per run (R={R}), got {len(seeds)}")
    for s_ in seeds:
        V.integer("seeds[i]", s_)
    centres = np.stack([KMeans(n_clusters, n_init=10, random_state=int(s) % (2**31)).fit(pts[r]).cluster_centers_
                        for r, s in enumerate(seeds)])
    return torch.from_numpy(centres).to(params["conv"].dtype)


# ----------------------------------------------------------------------------------------------------------------
# Sweep behind Fig. 1 / Fig. 5 (``python -m cnnbias sweep xord.fig1``) and the claims computed from it
# ----------------------------------------------------------------------------------------------------------------

from cnnbias.sweeps.spec import ClaimSpec as _ClaimSpec  # noqa: E402  (the sweep declarations end the module)
from cnnbias.sweeps.spec import Sweep as _Sweep  # noqa: E402
from cnnbias.sweeps.spec import register as _register  # noqa: E402
from cnnbias.sweeps.spec import register_claim as _register_claim  # noqa: E402

#: The channel counts 2k of Fig. 1 and Fig. 5 (Sec. 6 and App. A.2 of the paper).
FIG1_CHANNELS = (4, 6, 8, 20, 50, 100, 200)
FIG1_GAMMAS = (5.0, 1.0)
FIG1_PROBLEM = {"d": 4, "m": 6, "p_plus": 0.5, "p_minus": 0.9, "lr_c": 0.04, "sigma_g": 1e-3, "patience": 20}
FIG1_SCALES = {"smoke": {"R": 3, "max_epochs": 300}, "book": {"R": 20, "max_epochs": 2000},
               "paper": {"R": 100, "max_epochs": 30000}}
#: Runs of 100 ending at 0 training error per channel count, gamma = 5 (right panel of Fig. 1).
FIG1_PAPER_ZERO = (62, 79, 94, 100, 100, 100, 100)


def fig1_cells(scale: str) -> list[dict]:
    """One cell per (channels, gamma): R runs of :func:`xord_channel_sweep`."""
    s = FIG1_SCALES[scale]
    return [dict(FIG1_PROBLEM, channels=c, gamma=g, R=s["R"], max_epochs=s["max_epochs"])
            for g in FIG1_GAMMAS for c in FIG1_CHANNELS]


def fig1_cell(cfg: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """One Fig. 1/5 cell: R runs with ``cfg["channels"]`` channels and margin ``cfg["gamma"]`` (seeds as in the
    chapter: :func:`xord_channel_sweep` with experiment name ``"xord.fig1"``); per run the exact test error, the
    training error, the number of detected patterns and the epochs."""
    if dtype != config.dtype(device):
        raise ValueError(f"xord.fig1 cells compute in config.dtype(device) = {config.dtype(device)}, not {dtype}; "
                         "set CNNBIAS_DTYPE instead of --dtype")
    prob = {k: cfg[k] for k in (*FIG1_PROBLEM, "max_epochs")}
    r = xord_channel_sweep("xord.fig1", prob, [cfg["channels"]], [cfg["gamma"]], cfg["R"], groups=[[cfg["channels"]]],
                           device=device)
    return {"test_error": r["test_error"].tolist(), "train_error": r["train_error"].tolist(),
            "n_detected": [int(v) for v in r["n_detected"].tolist()], "epochs": [int(v) for v in r["epochs"].tolist()]}


SWEEP_FIG1 = _register(_Sweep(
    "xord.fig1", fig1_cell, cells={s: fig1_cells(s) for s in FIG1_SCALES},
    code=("cnnbias.config", "cnnbias.data.xord", "cnnbias.engine", "cnnbias.models.maxpool", "cnnbias.theory.xord"),
    description="XORD Fig. 1, 2b and 5: test error, 0-train-error runs, detected patterns vs channels (gamma 5, 1)",
    label=lambda c: f"channels={c['channels']}/gamma={c['gamma']:g}",
))


def _fig1_runs(cells, gamma: float, channels=None):
    """All runs' values (a dict of 1-d tensors) of the cells with this gamma (and channel counts)."""
    sel = [r for c, r in cells if c["gamma"] == gamma and (channels is None or c["channels"] in channels)]
    return {k: torch.tensor([v for r in sel for v in r[k]], dtype=torch.float64) for k in sel[0]}


def _claim_fig1_overparam(cells, claims) -> None:
    from cnnbias import stats

    small, large = _fig1_runs(cells, 5.0, (4,)), _fig1_runs(cells, 5.0, (100, 200))
    e_s, se_s = stats.mean_se(small["test_error"])
    e_l, se_l = stats.mean_se(large["test_error"])
    claims.greater("xord.fig1_overparam_helps", "Fig. 1: test error with 4 channels exceeds that with 100-200 channels",
                   float(e_s), float(e_l), float((se_s**2 + se_l**2).sqrt()), paper="decreases with channels")


def zero_train_curve_claim(claims, id: str, figure: str, channels: list[int], zero: list[int], runs: list[int],
                           paper_zero: list[int], paper_runs: int = 100, alpha: float = 0.05):
    """A zero-training-error curve (runs ending at 0 training error per channel count) against the paper's
    counts of ``paper_runs`` runs: the paper's count is itself a binomial sample, so each channel count is
    compared by Fisher's exact two-sided test of equal rates (ours ``zero/runs`` against the paper's
    ``paper_zero/paper_runs``; runs independent, the two samples independent), and the channel counts form one
    family (:func:`cnnbias.stats.holm_reject` at family-wise level ``alpha``).  PASS iff no count is rejected.
    Used by the chapter (book scale) and by the sweeps' claims (paper scale)."""
    from scipy.stats import fisher_exact

    from cnnbias.stats import holm_reject

    n = len(channels)
    if n == 0 or not (len(zero) == len(runs) == len(paper_zero) == n):
        raise ValueError("channels, zero, runs and paper_zero must be non-empty and of equal length")
    V.integer("paper_runs", paper_runs, 1)
    for z, r, pz in zip(zero, runs, paper_zero):
        V.integer("runs[i]", r, 1)
        V.integer("zero[i]", z, 0)
        V.integer("paper_zero[i]", pz, 0)
        if z > r or pz > paper_runs:
            raise ValueError(f"counts must not exceed their runs, got {z}/{r} and paper {pz}/{paper_runs}")
    pvals = [float(fisher_exact([[int(z), int(r) - int(z)], [int(pz), paper_runs - int(pz)]]).pvalue)
             for z, r, pz in zip(zero, runs, paper_zero)]
    rej = holm_reject(pvals, alpha)
    worst = min(range(n), key=lambda i: pvals[i])
    return claims.check(
        id,
        f"{figure}: runs ending at 0 training error per channel count ({', '.join(str(c) for c in channels)}) "
        f"equal the paper's rates (Fisher exact test of our count against the paper's count of {paper_runs} runs "
        f"at each channel count; Holm family over the {n} counts)",
        not bool(rej.any()),
        measured=" ".join(f"{int(z)}/{int(r)}" for z, r in zip(zero, runs))
        + f"; smallest p-value {pvals[worst]:.2g} ({channels[worst]} channels)",
        paper=" ".join(str(int(p)) for p in paper_zero) + f" of {paper_runs} runs",
        tolerance=f"Holm, family-wise level {alpha:g}: no count rejected",
        value={"min_pvalue": pvals[worst], "n_rejected": int(rej.sum())},
    )


def _claim_fig1_zero(cells, claims) -> None:
    zero, runs = [], []
    for c in FIG1_CHANNELS:
        te = _fig1_runs(cells, 5.0, (c,))["train_error"]
        zero.append(int((te == 0).sum()))
        runs.append(te.numel())
    zero_train_curve_claim(claims, "xord.fig1_zero_train_curve", "Fig. 1 (gamma=5)", list(FIG1_CHANNELS), zero,
                           runs, list(FIG1_PAPER_ZERO))


def _claim_fig5(cells, claims) -> None:
    from cnnbias import stats

    m5, s5 = stats.mean_se(_fig1_runs(cells, 5.0)["test_error"])
    m1, s1 = stats.mean_se(_fig1_runs(cells, 1.0)["test_error"])
    claims.greater("xord.fig5_gamma", "Fig. 5: test error averaged over channel counts, gamma=1 above gamma=5",
                   float(m1), float(m5), float((s1**2 + s5**2).sqrt()), paper="gamma=5 better than gamma=1")


_register_claim(_ClaimSpec("xord.fig1_overparam_helps", "xord.fig1", _claim_fig1_overparam,
                           select=lambda c: c["gamma"] == 5.0 and c["channels"] in (4, 100, 200)))
_register_claim(_ClaimSpec("xord.fig1_zero_train_curve", "xord.fig1", _claim_fig1_zero,
                           select=lambda c: c["gamma"] == 5.0))
_register_claim(_ClaimSpec("xord.fig5_gamma", "xord.fig1", _claim_fig5))


# ----------------------------------------------------------------------------------------------------------------
# Sweep behind Fig. 2a / 2c, the OBD problem (``python -m cnnbias sweep xord.obd``)
# ----------------------------------------------------------------------------------------------------------------

#: OBD (App. A.4) settings; channel counts, runs and stop rule per scale (the chapter's CONFIGS).
OBD_PROBLEM = {"d1": 30, "m": 25, "lr_c": 0.2, "gamma": 1.0, "sigma_g": 1e-3, "patience": 20}
OBD_SCALES = {
    "smoke": {"R": 2, "channels": [4, 20], "max_epochs": 300, "n_test": 100},
    "book": {"R": 10, "channels": [4, 8, 20, 100], "max_epochs": 2000, "n_test": 500},
    "paper": {"R": 100, "channels": [4, 6, 8, 20, 100, 200, 500], "max_epochs": 30000, "n_test": 2000},
}


#: Runs of 100 ending at 0 training error per channel count 4, 6, 8, 20, 100, 200, 500 (App. A.4).
OBD_PAPER_ZERO = {4: 96, 6: 99, 8: 100, 20: 100, 100: 100, 200: 100, 500: 100}


def obd_cells(scale: str) -> list[dict]:
    """One cell per channel count: R runs of :func:`obd_channel_sweep`."""
    s = OBD_SCALES[scale]
    return [dict(OBD_PROBLEM, channels=c, R=s["R"], max_epochs=s["max_epochs"], n_test=s["n_test"])
            for c in s["channels"]]


def obd_cell(cfg: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """One Fig. 2a/2c cell: R runs with ``cfg["channels"]`` channels (seeds as in the chapter, experiment name
    ``"xord.obd"``; the test set depends on the problem settings only); per run test and training error,
    detected patterns (of 2 d1) and epochs."""
    if dtype != config.dtype(device):
        raise ValueError(f"xord.obd cells compute in config.dtype(device) = {config.dtype(device)}, not {dtype}; "
                         "set CNNBIAS_DTYPE instead of --dtype")
    prob = {k: cfg[k] for k in (*OBD_PROBLEM, "max_epochs", "n_test")}
    r = obd_channel_sweep("xord.obd", prob, [cfg["channels"]], cfg["R"], groups=[[cfg["channels"]]], device=device)
    return {"test_error": r["test_error"].tolist(), "train_error": r["train_error"].tolist(),
            "n_detected": [int(v) for v in r["n_detected"].tolist()], "epochs": [int(v) for v in r["epochs"].tolist()]}


SWEEP_OBD = _register(_Sweep(
    "xord.obd", obd_cell, cells={s: obd_cells(s) for s in OBD_SCALES},
    code=("cnnbias.config", "cnnbias.data.xord", "cnnbias.engine", "cnnbias.models.maxpool"),
    description="XORD Fig. 2a and 2c (OBD problem): test error and detected patterns vs channels",
    label=lambda c: f"channels={c['channels']}",
))


def _claim_obd_overparam(cells, claims) -> None:
    from cnnbias import stats

    lo, hi = min(c["channels"] for c, _ in cells), max(c["channels"] for c, _ in cells)
    es, es_se = stats.mean_se(torch.tensor([v for c, r in cells if c["channels"] == lo for v in r["test_error"]]))
    el, el_se = stats.mean_se(torch.tensor([v for c, r in cells if c["channels"] == hi for v in r["test_error"]]))
    claims.greater("xord.obd_overparam_helps", f"Fig. 2a: OBD test error with {lo} channels exceeds that with {hi}",
                   float(es), float(el), float((es_se**2 + el_se**2).sqrt()), paper="decreases with channels")


_register_claim(_ClaimSpec("xord.obd_overparam_helps", "xord.obd", _claim_obd_overparam))


def _claim_obd_zero(cells, claims) -> None:
    chans = [c["channels"] for c, _ in cells]
    zero = [sum(1 for v in r["train_error"] if v == 0) for _, r in cells]
    runs = [len(r["train_error"]) for _, r in cells]
    zero_train_curve_claim(claims, "xord.obd_zero_train_curve", "Fig. 2a (OBD)", chans, zero, runs,
                           [OBD_PAPER_ZERO[c] for c in chans])


_register_claim(_ClaimSpec("xord.obd_zero_train_curve", "xord.obd", _claim_obd_zero))
