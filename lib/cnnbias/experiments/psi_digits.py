"""PSI paper, Sec. 8 / App. G and Fig. 2: the colored-digits experiment as the sweep ``psi.digits``.

A point is n = 9 digit images (:mod:`cnnbias.data.colored_digits`): for y = +1 one of them is colored blue
and the other eight green, for y = -1 the discriminative digit is red.  The network is ``N_W`` of Eq. 1 with
``2k`` filters, trained by SGD (batch ``min{10, m}``, learning rate ``1e-4``, hinge loss, ``max_epochs``
epochs) by :func:`cnnbias.experiments.psi.run_digits`, ``R`` independent runs batched in one program.

Cells (one per sub-experiment, the key ``part`` tells them apart):

- ``part = "m"``: one cell per training-set size ``m`` (the paper's ``m = 6, 20, 1000``), ``k = 20``: test
  and training accuracy (App. G: 88.09%, 99.84%, 100%), the green ratio (mean strength of green detectors
  over that of blue and red ones, Fig. 2c), the color purity of the learned filters, and the filters of
  run 0 (Figs. 2c, 5-7);
- ``part = "k1"``: the ``k = 1`` network (one ``w``, one ``u``) of Fig. 2b ("the data can be perfectly
  classified with a network with k = 1").

The seeds are those of the chapter: the generators of a ``part = "m"`` cell are
``config.generators("psi.digits", ...)``, those of the ``k = 1`` cell ``config.generators("psi.digits_k1",
...)`` (see :func:`~cnnbias.experiments.psi.run_digits`).  The declared cells use scikit-learn's bundled 8x8
digits (``digits = "sklearn-8x8"``); :func:`digits_cells` with ``digits="mnist"`` gives the same cells on
MNIST (IDX files in ``CNNBIAS_MNIST_DIR``), the data source being part of each cell's configuration.
"""

from __future__ import annotations

import math

import torch

from cnnbias.data import colored_digits as cd
from cnnbias.experiments.psi import run_digits

__all__ = ["CONFIGS", "DIGITS", "PAPER_ACC", "LR", "K", "digits_cells", "digits_cell", "by_m", "k1_result",
           "claim_accuracy_grows", "claim_large_m_accuracy", "claim_acc_vs_paper", "claim_train_fit",
           "claim_spurious_detectors_fade", "claim_k1_classifies", "claim_filters_split_by_color",
           "CLAIM_IDS"]

#: The data source of the declared cells (scikit-learn's bundled digits).
DIGITS = "sklearn-8x8"
#: Filters per sign (``2k = 40`` filters), App. G.
K = 20
#: The constant SGD learning rate of App. G.
LR = 1e-4
#: For each scale, the training-set sizes ``ms``, runs per size ``R``, epochs, test points per run, and the
#: ``k = 1`` experiment ``k1`` (its ``m``, runs and epochs).
CONFIGS = {
    "smoke": {"ms": [6, 20], "R": {6: 3, 20: 3}, "max_epochs": 20, "m_test": 200,
              "k1": {"m": 20, "R": 2, "max_epochs": 3}},
    "book": {"ms": [6, 20, 1000], "R": {6: 10, 20: 10, 1000: 3}, "max_epochs": 200, "m_test": 1000,
             "k1": {"m": 1000, "R": 4, "max_epochs": 20}},
    "paper": {"ms": [6, 20, 1000], "R": {6: 10, 20: 10, 1000: 10}, "max_epochs": 200, "m_test": 10000,
              "k1": {"m": 1000, "R": 10, "max_epochs": 200}},
}
#: The paper's test accuracy in percent (mean, standard deviation over 10 runs) per m, App. G (MNIST).
PAPER_ACC = {6: (88.09, 12.7), 20: (99.84, 0.35), 1000: (100.0, 0.0)}

_PARTS = ("m", "k1")
_KEYS = ("part", "m", "R", "k", "lr", "max_epochs", "m_test", "digits")


def digits_cells(scale: str, digits: str = DIGITS) -> list[dict]:
    """The cells at ``scale``: one per ``m`` of ``CONFIGS[scale]["ms"]`` (``part = "m"``, ``k = 20``), then
    the ``k = 1`` cell (``part = "k1"``), on ``digits`` (``"sklearn-8x8"`` or ``"mnist"``)."""
    if scale not in CONFIGS:
        raise ValueError(f"scale must be one of {', '.join(CONFIGS)}, got {scale!r}")
    if digits not in (DIGITS, "mnist"):
        raise ValueError(f"digits must be {DIGITS!r} or 'mnist', got {digits!r}")
    c = CONFIGS[scale]
    out = [{"part": "m", "m": int(m), "R": int(c["R"][m]), "k": K, "lr": LR, "max_epochs": int(c["max_epochs"]),
            "m_test": int(c["m_test"]), "digits": digits} for m in c["ms"]]
    k1 = c["k1"]
    out.append({"part": "k1", "m": int(k1["m"]), "R": int(k1["R"]), "k": 1, "lr": LR,
                "max_epochs": int(k1["max_epochs"]), "m_test": int(c["m_test"]), "digits": digits})
    return out


def _check_cfg(cfg) -> None:
    missing = [key for key in _KEYS if key not in cfg]
    if missing:
        raise ValueError(f"cfg lacks the key(s) {', '.join(repr(k) for k in missing)} (a cell of psi.digits "
                         f"needs {', '.join(_KEYS)})")
    if cfg["part"] not in _PARTS:
        raise ValueError(f"cfg['part'] must be 'm' (one training-set size, k = 20) or 'k1' (the k = 1 "
                         f"network), got {cfg['part']!r}")
    for key in ("m", "R", "k", "max_epochs", "m_test"):
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"cfg[{key!r}] must be an integer >= 1, got {v!r}")
    if cfg["part"] == "k1" and cfg["k"] != 1:
        raise ValueError(f"cfg['k'] must be 1 in a cell with part 'k1', got {cfg['k']!r}")
    lr = cfg["lr"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"cfg['lr'] must be a positive number, got {lr!r}")
    if cfg["digits"] not in (DIGITS, "mnist"):
        raise ValueError(f"cfg['digits'] must be {DIGITS!r} or 'mnist', got {cfg['digits']!r}")


def _nan_to_none(x: torch.Tensor) -> list:
    return [None if math.isnan(v) else v for v in x.tolist()]


def digits_cell(cfg: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """One sub-experiment (all ``R`` runs batched): per-run lists ``train_acc``, ``test_acc``, ``epochs``,
    ``green_ratio`` and ``green_ratio_init`` (of the trained and of the initial filters), ``n_green``,
    ``purity`` (mean over the filters that moved of the share of a filter's learned positive mass
    ``sum max{0, W_T - W_0}`` in its dominant color channel; None when no filter moved), ``purity_init``
    (the same share for the positive part of ``W_0``), ``move`` (``||W_T - W_0|| / ||W_0||``),
    ``dominant_color`` ``[R][2k]`` (0 red, 1 green, 2 blue, -1 unmoved; the first ``k`` are the ``w``
    filters, read out +1), and the filters of run 0, ``W_run0`` and ``W0_run0`` ``[2k][d]``, plus the
    digit source, the image shape and ``d``."""
    _check_cfg(cfg)
    pools = cd.load_pools()
    if pools.source != cfg["digits"]:
        hint = ("set CNNBIAS_MNIST_DIR to the folder of the IDX files" if cfg["digits"] == "mnist"
                else "unset CNNBIAS_MNIST_DIR")
        raise ValueError(f"cfg['digits'] is {cfg['digits']!r} but load_pools gave {pools.source!r} digits: {hint}")
    experiment = "psi.digits" if cfg["part"] == "m" else "psi.digits_k1"
    r = run_digits(experiment, pools, cfg["m"], cfg["R"], k=cfg["k"], lr=float(cfg["lr"]),
                   max_epochs=cfg["max_epochs"], m_test=cfg["m_test"], device=device, dtype=dtype)
    W, W0 = r["W"].double(), r["W0"].double()
    P0 = W0.clamp(min=0).reshape(W0.shape[0], W0.shape[1], 3, -1).sum(-1)  # [R, 2k, 3]
    purity_init = (P0.max(-1).values / P0.sum(-1)).mean(1)
    move = (W - W0).flatten(1).norm(dim=1) / W0.flatten(1).norm(dim=1)
    H, Wd = pools.shape
    return {
        "digits": pools.source,
        "shape": [H, Wd],
        "d": pools.d,
        "train_acc": r["train_acc"].double().tolist(),
        "test_acc": r["test_acc"].double().tolist(),
        "epochs": [int(e) for e in r["epochs"].tolist()],
        "green_ratio": r["green_ratio"].double().tolist(),
        "green_ratio_init": r["green_ratio_init"].double().tolist(),
        "n_green": [int(v) for v in r["n_green"].tolist()],
        "purity": _nan_to_none(torch.nanmean(r["purity"].double(), dim=1)),
        "purity_init": purity_init.tolist(),
        "move": move.tolist(),
        "dominant_color": r["dominant_color"].long().tolist(),
        "W_run0": W[0].tolist(),
        "W0_run0": W0[0].tolist(),
    }


_TENSOR_KEYS = ("train_acc", "test_acc", "green_ratio", "green_ratio_init", "purity", "purity_init", "move")


def _tensors(res: dict) -> dict:
    out = dict(res)
    for key in _TENSOR_KEYS:
        out[key] = torch.tensor([math.nan if v is None else v for v in res[key]], dtype=torch.float64)
    out["epochs"] = torch.tensor(res["epochs"], dtype=torch.long)
    out["n_green"] = torch.tensor(res["n_green"], dtype=torch.long)
    out["dominant_color"] = torch.tensor(res["dominant_color"], dtype=torch.long)
    out["W_run0"] = torch.tensor(res["W_run0"], dtype=torch.float64)
    out["W0_run0"] = torch.tensor(res["W0_run0"], dtype=torch.float64)
    return out


def by_m(cells: list[tuple[dict, dict]]) -> dict[int, dict]:
    """``{m: result}`` of the ``part = "m"`` cells, ascending in m, the per-run lists as float64 tensors
    (``dominant_color``, ``epochs``, ``n_green`` as integer tensors, the run-0 filters ``[2k, d]``)."""
    sel = sorted(((c, r) for c, r in cells if c["part"] == "m"), key=lambda cr: cr[0]["m"])
    if not sel:
        raise ValueError("no cell with part 'm' among the cells")
    return {int(c["m"]): _tensors(r) for c, r in sel}


def k1_result(cells: list[tuple[dict, dict]]) -> tuple[dict, dict]:
    """``(config, result)`` of the ``k = 1`` cell (its result's lists as tensors, as in :func:`by_m`)."""
    sel = [(c, r) for c, r in cells if c["part"] == "k1"]
    if len(sel) != 1:
        raise ValueError(f"expected one cell with part 'k1', got {len(sel)}")
    return sel[0][0], _tensors(sel[0][1])


# -- claims ------------------------------------------------------------------------------------------
def _lo_hi(cells):
    from cnnbias import stats

    res = by_m(cells)
    ms = list(res)
    lo, hi = ms[0], ms[-1]
    return res, lo, hi, stats.mean_se(res[lo]["test_acc"]), stats.mean_se(res[hi]["test_acc"])


def claim_accuracy_grows(cells, claims) -> None:
    """``psi.digits_accuracy_grows``: the mean test accuracy at the largest m exceeds that at the smallest by
    more than 2 standard errors (App. G: 88.09% at m = 6 < 99.84% at m = 20 < 100% at m = 1000)."""
    _, lo, hi, (acc_lo, se_lo), (acc_hi, se_hi) = _lo_hi(cells)
    claims.greater("psi.digits_accuracy_grows", f"mean test accuracy at m={hi} exceeds that at m={lo}",
                   float(acc_hi), float(acc_lo), float((se_lo**2 + se_hi**2) ** 0.5),
                   paper="88.09% (m=6) < 99.84% (m=20) < 100% (m=1000) (Sec. 8, App. G)")


def claim_large_m_accuracy(cells, claims) -> None:
    """``psi.digits_large_m_accuracy``: the mean test accuracy at the largest m is at least 0.99 (App. G:
    100% +- 0 at m = 1000)."""
    _, _, hi, _, (acc_hi, _) = _lo_hi(cells)
    claims.at_least("psi.digits_large_m_accuracy", f"mean test accuracy at m={hi} (paper: 100% +- 0 at m=1000)",
                    float(acc_hi), 0.99, paper="100% at m=1000 (App. G)")


def claim_acc_vs_paper(cells, claims) -> None:
    """``psi.digits_acc_vs_paper``: at every m of App. G among the cells, the mean test accuracy lies within
    5 points + 3 standard errors of the paper's value (the substitute 8x8 digits are coarser than MNIST and
    the initialization scale is not stated; an intersection-union test, false-fail chance at most
    3 x 0.14% for a true match)."""
    from cnnbias import stats
    from cnnbias.claims import fmt_se

    res = by_m(cells)
    rows, ok = [], True
    for m_p, (acc_p, _sd_p) in PAPER_ACC.items():
        if m_p in res:
            a_p, s_p = (float(v) for v in stats.mean_se(res[m_p]["test_acc"]))
            tol = 0.05 + 3 * s_p
            ok &= abs(a_p - acc_p / 100) <= tol
            rows.append((m_p, a_p, s_p, acc_p, tol))
    claims.check(
        "psi.digits_acc_vs_paper",
        "mean test accuracy at each m of App. G within 5 points + 3 se of the paper's value",
        ok,
        measured="; ".join(f"m={m}: {fmt_se(100 * a, 100 * s)}% (tol {100 * t:.1f})" for m, a, s, _, t in rows),
        paper="; ".join(f"m={m}: {p}%" for m, _, _, p, _ in rows) + " (App. G, MNIST)",
        tolerance="|ours - paper| <= 5 points + 3 se at every m",
        value={f"m={m}": a for m, a, _, _, _ in rows},
    )


def claim_train_fit(cells, claims) -> None:
    """``psi.digits_train_fit``: every run (all m) reaches 100% training accuracy (App. G)."""
    res = by_m(cells)
    train_all = torch.cat([r["train_acc"] for r in res.values()])
    claims.at_least("psi.digits_train_fit", "every run reaches 100% training accuracy", float(train_all.min()),
                    1.0, paper="in all runs SGD gets 100% train accuracy (App. G)")


def claim_spurious_detectors_fade(cells, claims) -> None:
    """``psi.digits_spurious_detectors_fade``: the green ratio (mean strength of green detectors over that of
    blue and red ones) is lower at the largest m than at the smallest by more than 2 standard errors
    (Fig. 2c: green detectors darken as m grows)."""
    from cnnbias import stats

    res = by_m(cells)
    ms = list(res)
    lo, hi = ms[0], ms[-1]
    gr_lo, gse_lo = stats.mean_se(res[lo]["green_ratio"])
    gr_hi, gse_hi = stats.mean_se(res[hi]["green_ratio"])
    claims.greater("psi.digits_spurious_detectors_fade",
                   f"green/discriminative detector-strength ratio is lower at m={hi} than at m={lo}",
                   float(gr_lo), float(gr_hi), float((gse_lo**2 + gse_hi**2) ** 0.5),
                   paper="green detectors darken as m grows, red/blue stay bright (Fig. 2c)")


def claim_k1_classifies(cells, claims) -> None:
    """``psi.digits_k1_classifies``: the ``k = 1`` network's mean test accuracy is within 1 point + 3 standard
    errors of 100% (Sec. 8, Fig. 2b: "the data can be perfectly classified with a network with k = 1")."""
    from cnnbias import stats

    cfg1, r1 = k1_result(cells)
    acc1, se1 = (float(v) for v in stats.mean_se(r1["test_acc"]))
    claims.close(
        "psi.digits_k1_classifies",
        f"the k = 1 network trained on m={cfg1['m']} points classifies the test set: mean test accuracy "
        "within 1 point + 3 se of 100%",
        acc1, 1.0, 0.01 + 3 * se1,
        paper="the data can be perfectly classified with a network with k = 1 (Sec. 8, Fig. 2b)",
        se=se1,
    )


def claim_filters_split_by_color(cells, claims) -> None:
    """``psi.digits_filters_split_by_color``: at every m the mean purity over runs exceeds 3/4 (halfway
    between one and two colors) by more than 2 standard errors (Fig. 2c: "the filters come in three
    colors"; an intersection-union test)."""
    from cnnbias import stats
    from cnnbias.claims import fmt_se

    res = by_m(cells)
    purity = {m: stats.mean_se(r["purity"]) for m, r in res.items()}
    ok = all(float(mu) - 2 * float(se) > 0.75 for mu, se in purity.values())
    claims.check(
        "psi.digits_filters_split_by_color",
        "learned filters have one color: at every m the mean purity (share of a filter's learned "
        "positive mass in its dominant color) exceeds 3/4 by more than 2 se over runs",
        ok,
        measured="; ".join(f"m={m}: {fmt_se(float(mu), float(se))}" for m, (mu, se) in purity.items()),
        paper="the filters come in three colors (blue, red, green) corresponding to the three pattern "
        "types they detect (Sec. 8, Fig. 2c)",
        tolerance="mean - 2 se > 0.75 at every m",
        value={f"m={m}": float(mu) for m, (mu, _) in purity.items()},
    )


# -- the sweep and its claims -------------------------------------------------------------------------
from cnnbias.sweeps.spec import ClaimSpec as _ClaimSpec  # noqa: E402  (the sweep declarations end the module)
from cnnbias.sweeps.spec import Sweep as _Sweep  # noqa: E402
from cnnbias.sweeps.spec import register as _register  # noqa: E402
from cnnbias.sweeps.spec import register_claim as _register_claim  # noqa: E402


def _label(c) -> str:
    return f"m={c['m']}" if c["part"] == "m" else f"k=1,m={c['m']}"


SWEEP = _register(_Sweep(
    "psi.digits", digits_cell, cells={s: digits_cells(s) for s in CONFIGS},
    code=("cnnbias.config", "cnnbias.engine", "cnnbias.stats", "cnnbias.validate", "cnnbias.data.digits",
          "cnnbias.data.colored_digits", "cnnbias.models.init", "cnnbias.models.maxpool", "cnnbias.theory.psi",
          "cnnbias.experiments.psi"),
    description="PSI Sec. 8 / App. G, Fig. 2: colored digits, accuracy, green ratio, filters per m; k = 1",
    label=_label,
))

#: The claims computed from the cells of ``psi.digits`` (all of the chapter's claims).
CLAIM_IDS = (
    "psi.digits_accuracy_grows",
    "psi.digits_large_m_accuracy",
    "psi.digits_acc_vs_paper",
    "psi.digits_train_fit",
    "psi.digits_spurious_detectors_fade",
    "psi.digits_k1_classifies",
    "psi.digits_filters_split_by_color",
)


def _is_m(c) -> bool:
    return c["part"] == "m"


def _is_k1(c) -> bool:
    return c["part"] == "k1"


for _id, _fn, _sel in (
    ("psi.digits_accuracy_grows", claim_accuracy_grows, _is_m),
    ("psi.digits_large_m_accuracy", claim_large_m_accuracy, _is_m),
    ("psi.digits_acc_vs_paper", claim_acc_vs_paper, _is_m),
    ("psi.digits_train_fit", claim_train_fit, _is_m),
    ("psi.digits_spurious_detectors_fade", claim_spurious_detectors_fade, _is_m),
    ("psi.digits_k1_classifies", claim_k1_classifies, _is_k1),
    ("psi.digits_filters_split_by_color", claim_filters_split_by_color, _is_m),
):
    _register_claim(_ClaimSpec(_id, "psi.digits", _fn, select=_sel))
