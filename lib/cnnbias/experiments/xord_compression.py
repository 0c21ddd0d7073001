"""XORD paper, Sec. 6.2 and Fig. 3: compressing an over-parameterized digits CNN by clustering its filters.

For each training-set size ``n`` (one cell of the sweep ``xord.compression``), ``R`` runs each train on
their own ``n`` digits (0-1 label: the digit's parity is not used; the 10-class task of Sec. 6.2):

1. a 120-channel CNN (:mod:`cnnbias.models.small_cnn`) with Adam for ``cnn_epochs`` epochs;
2. a 4-channel CNN, same training;
3. k-means of the 120 trained filters (with biases) into 4 centres (:func:`~cnnbias.experiments.xord.cluster_filters`),
   a 4-channel network with these filters frozen and a fresh fully connected layer, only that layer
   trained for ``fc_epochs`` epochs.

The paper: the compressed 4-channel network "nearly matches" the 120-channel one and is better than the
4-channel network trained from scratch.  The sweep is declared on scikit-learn's bundled 8x8 digits
(1797 images: 797 held out as the test set, the other 1000 form the training pool, so the paper's
``n = 5000`` is not available and is left out).  Cells with ``digits="mnist"``
(:func:`compression_cells` with ``digits="mnist"``; the IDX files in ``CNNBIAS_MNIST_DIR``) train on the
MNIST training set and test on its 10,000 test digits, at all of the paper's sizes; the data source is
part of each cell's configuration, hence of its key in the results store.
"""

from __future__ import annotations

import torch

from cnnbias import config
from cnnbias.data.digits import load_digits
from cnnbias.experiments.xord import cluster_filters, train_cnn
from cnnbias.models import small_cnn as S

__all__ = ["CONFIGS", "DIGITS", "N_TEST", "MNIST_SIZES", "TOL_MATCH", "compression_cells", "compression_cell",
           "digits_split", "by_size", "claim_compression", "claim_compression_matches_120"]

#: The data source of the declared cells (scikit-learn's bundled digits).
DIGITS = "sklearn-8x8"
#: Bundled digits held out as the test set (the other 1000 are the training pool).
N_TEST = 797
#: For each scale the training-set sizes, runs, epochs (CNN, FC-only) and minibatch size.
CONFIGS = {
    "smoke": {"sizes": [50], "R": 2, "cnn_epochs": 30, "fc_epochs": 60, "batch": None},
    "book": {"sizes": [50, 100, 200], "R": 5, "cnn_epochs": 150, "fc_epochs": 600, "batch": None},
    # Sec. 6.2: sizes 100, 500, 1000, 5000 (5000 exceeds the bundled pool), 10 runs, batch 500
    "paper": {"sizes": [100, 500, 1000], "R": 10, "cnn_epochs": 100, "fc_epochs": 1000, "batch": 500},
}
#: Adam's learning rate (Sec. 6.2 does not state one; this book's choice).
LR = 0.01


#: The paper's training-set sizes (Sec. 6.2), all available on MNIST.
MNIST_SIZES = {"smoke": [50], "book": [50, 100, 200], "paper": [100, 500, 1000, 5000]}


def compression_cells(scale: str, digits: str = DIGITS) -> list[dict]:
    """The cells at ``scale``: one per training-set size, on ``digits`` (``"sklearn-8x8"`` or ``"mnist"``)."""
    if scale not in CONFIGS:
        raise ValueError(f"scale must be one of {', '.join(CONFIGS)}, got {scale!r}")
    if digits not in (DIGITS, "mnist"):
        raise ValueError(f"digits must be {DIGITS!r} or 'mnist', got {digits!r}")
    c = CONFIGS[scale]
    sizes = c["sizes"] if digits == DIGITS else MNIST_SIZES[scale]
    return [{"n": int(n), "R": int(c["R"]), "cnn_epochs": int(c["cnn_epochs"]), "fc_epochs": int(c["fc_epochs"]),
             "batch": c["batch"], "lr": LR, "digits": digits} for n in sizes]


def digits_split(digits: str = DIGITS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(images float64 [N, H, W], labels [N], test indices, training-pool indices)``.

    Bundled digits: split once by a fixed seed (the first :data:`N_TEST` of a permutation are the test
    set).  MNIST: the training and test files concatenated, the test digits last."""
    images, labels, source = load_digits()
    if source != digits:
        hint = ("set CNNBIAS_MNIST_DIR to the folder of the IDX files" if digits == "mnist"
                else "unset CNNBIAS_MNIST_DIR")
        raise ValueError(f"cells on {digits!r} digits need {digits!r} data, load_digits gave {source!r}: {hint}")
    if digits == "mnist":
        te_images, te_labels, _ = load_digits(split="test")
        n = len(labels)
        images, labels = torch.cat([images, te_images]), torch.cat([labels, te_labels])
        return images.double(), labels, torch.arange(n, len(labels)), torch.arange(n)
    gen = torch.Generator().manual_seed(config.run_seed("xord.digits.split", {}, 0))
    perm = torch.randperm(len(labels), generator=gen)
    return images.double(), labels, perm[:N_TEST], perm[N_TEST:]


def compression_cell(cfg: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """One training-set size: per-run test errors ``{"err_120", "err_4", "err_compressed"}`` (lists of R
    floats) and the training errors of the three networks (``train_120`` ...)."""
    images, labels, test, pool = digits_split(cfg.get("digits", DIGITS))
    n, R = int(cfg["n"]), int(cfg["R"])
    if not 1 <= n <= len(pool):
        raise ValueError(f"cfg['n'] must be in 1..{len(pool)} (the training pool of the digits), got {n}")
    H, W = images.shape[1:]
    gens = config.generators("xord.digits", {"n": n}, R)
    sel = torch.stack([pool[torch.randperm(len(pool), generator=g)[:n]] for g in gens])
    xtr, ytr = images[sel].to(device, dtype), labels[sel].to(device)
    seeds = [config.run_seed("xord.digits.shuffle", {"n": n}, r) for r in range(R)]
    kw = dict(batch_size=cfg["batch"], shuffle_seeds=seeds)
    big = train_cnn(S.to_device(S.init_params(120, H, W, gens), device, dtype), xtr, ytr, cfg["lr"],
                    cfg["cnn_epochs"], **kw)
    small = train_cnn(S.to_device(S.init_params(4, H, W, gens), device, dtype), xtr, ytr, cfg["lr"],
                      cfg["cnn_epochs"], **kw)
    centres = cluster_filters(big.params, 4, seeds=[config.run_seed("xord.kmeans", {"n": n}, r) for r in range(R)])
    comp = train_cnn(S.to_device(S.compressed_params(centres, H, W, gens), device, dtype), xtr, ytr, cfg["lr"],
                     cfg["fc_epochs"], trainable=("fc", "fcb"), **kw)
    te_x, te_y = images[test].to(device, dtype), labels[test].to(device)
    out = {"n": n}
    for key, net in (("120", big), ("4", small), ("compressed", comp)):
        out[f"err_{key}"] = S.test_error(net.params, te_x, te_y).tolist()
    return out


def by_size(cells: list[tuple[dict, dict]]) -> dict[str, list[torch.Tensor]]:
    """``{"sizes": [n...], "120": [tensor R]..., "4": ..., "compressed": ...}`` from ``(config, result)`` cells."""
    out: dict = {"sizes": [int(c["n"]) for c, _ in cells]}
    for key in ("120", "4", "compressed"):
        out[key] = [torch.tensor(r[f"err_{key}"], dtype=torch.float64) for _, r in cells]
    return out


# -- the sweep and its claims -------------------------------------------------------------------------
from cnnbias.sweeps.spec import ClaimSpec as _ClaimSpec  # noqa: E402  (the sweep declarations end the module)
from cnnbias.sweeps.spec import Sweep as _Sweep  # noqa: E402
from cnnbias.sweeps.spec import register as _register  # noqa: E402
from cnnbias.sweeps.spec import register_claim as _register_claim  # noqa: E402

SWEEP = _register(_Sweep(
    "xord.compression", compression_cell, cells={s: compression_cells(s) for s in CONFIGS},
    code=("cnnbias.config", "cnnbias.data.digits", "cnnbias.engine", "cnnbias.models.small_cnn",
          "cnnbias.experiments.xord"),
    description="XORD Sec. 6.2 / Fig. 3: 120 vs 4 channels vs 4 from clustered filters, bundled digits",
    label=lambda c: f"n={c['n']}",
))


#: The tolerance of "nearly matches" (Sec. 6.2), one percentage point of test error, up to 2 standard errors.
TOL_MATCH = 0.01


def claim_compression_matches_120(cells, claims) -> None:
    """``xord.compression_matches_120``: the compressed net's test error minus the 120-channel net's,
    paired over runs and sizes, is at most :data:`TOL_MATCH` up to 2 standard errors."""
    from cnnbias import stats
    from cnnbias.claims import fmt_se

    t = by_size(cells)
    m, s = (float(v) for v in stats.mean_se(torch.cat([a - b for a, b in zip(t["compressed"], t["120"])])))
    claims.check(
        "xord.compression_matches_120",
        "Sec. 6.2: the 4-channel net from clustered filters 'nearly matches the performance of the "
        "over-parameterized network' (test error difference to 120 channels, paired, all sizes)",
        m - 2 * s <= TOL_MATCH,
        measured=f"compressed - 120 channels = {fmt_se(m, s)}",
        paper="nearly matches (Fig. 3, MNIST)",
        tolerance=f"difference - 2 SE <= {TOL_MATCH} (one percentage point)",
        value={"diff": m},
        se=s,
    )


def claim_compression(cells, claims) -> None:
    """``xord.compression``: the compressed 4-channel net beats the 4-channel net trained from scratch
    (paired over runs and sizes: the same training sets and initial generators)."""
    from cnnbias import stats

    t = by_size(cells)
    diff = torch.cat([a - b for a, b in zip(t["4"], t["compressed"])])
    md, sd = stats.mean_se(diff)
    claims.greater(
        "xord.compression",
        "Fig. 3: 4-channel net from clustered 120-channel filters (FC trained) beats the 4-channel "
        "net trained normally (test error difference, paired, all sizes)",
        float(md), 0.0, float(sd),
        paper="clustered init improves the small net, nearly matches 120 channels",
    )


_register_claim(_ClaimSpec("xord.compression", "xord.compression", claim_compression))
_register_claim(_ClaimSpec("xord.compression_matches_120", "xord.compression", claim_compression_matches_120))
