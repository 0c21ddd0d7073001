"""Sweeps of the chapter on layerwise gradient descent (max-pooling paper :cite:`maxpool_orthogonal`).

The chapter ``book/part2/layerwise_gd.ipynb`` checks Theorem 5.1 step by step and reproduces the
experiments of Sec. 7.  Its computations are declared here as sweeps (the sample-complexity sweep
``maxpool.lw_sc`` of Theorem 5.1 (2) lives in :mod:`cnnbias.experiments.maxpool`):

- ``maxpool.lucky_filters`` (Lemma 5.2, one cell per ``d``): per-run numbers of lucky filters
  ``|W_0^+ ∩ A^+|`` and ``|W_0^- ∩ A^-|`` (Eq. 6) of ``k = 8 d^3 + 1`` filters drawn uniformly on the
  sphere; the lemma's ``p = (1 - 2^{-d+1}) / (2(d-1))`` and the Hoeffding band of Eq. 13;
- ``maxpool.lw_cnn`` (Algorithm 1, one cell per training-set size ``m``, all repetitions batched):
  the slacks of Lemma 5.3, Cor. 5.4 and Lemma 5.5, the separator ``v*`` of App. E and phase 2;
- ``maxpool.fig3`` (Fig. 3a/3b/3c, one cell per panel and training-set size): ConvPool, MLP and
  hard-margin SVM test and training errors per repetition;
- ``maxpool.fig4`` (Fig. 4, one cell per number of patterns ``n``);
- ``maxpool.sec7_separability`` (Sec. 7, one cell per noise level and ``m``): is the training set
  linearly separable (a linear program)?
- ``maxpool.sec7_layerwise`` (Sec. 7, one cell per ``m``): ConvPool trained end to end with Adam
  against the same network trained layer by layer.

Seeds.  Every run has its own generators, :func:`cnnbias.config.generators` with the chapter's
experiment names and keys (the chapter's whole settings dict of a scale, :data:`CONFIGS`, named in a
cell by its ``"seeds"`` entry).  A run's seed depends only on its index ``rep * S + s`` (repetition,
size), so a cell computes exactly the runs the chapter computed in one batch: the engine trains a
run identically alone or batched (per-run losses, per-run stopping).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cnnbias import config
from cnnbias import validate as V
from cnnbias.data import patterns as P
from cnnbias.experiments import maxpool as MP
from cnnbias.stats import holm_reject, mean_se

__all__ = [
    "CONFIGS", "SEP_CONFIGS", "DIGITS", "LUCKY_CHUNK",
    "lucky_cells", "lucky_cell", "lucky_stats", "binomial_gof", "claim_lucky",
    "lw_cells", "lw_cell", "lw_hparams", "lw_runs", "claim_lw_dynamics", "claim_lw_margin", "claim_lw_zero_loss",
    "fig3_cells", "fig3_cell", "fig4_cells", "fig4_cell", "fig4_advantage", "panel_errors", "advantage",
    "claim_fig3a_best", "claim_fig3a_zero_train", "claim_fig3b_noise", "claim_fig3c_digits", "claim_fig4",
    "sep_cells", "sep_cell", "sep_fractions", "claim_separability",
    "la_cells", "la_cell", "la_errors", "claim_layerwise_like_adam",
]

#: The chapter's settings per scale (the seeds of every run are keyed by the whole dict of a scale).
CONFIGS = {
    "smoke": {
        "lucky_ds": [3, 4], "lucky_runs": 20, "d": 3, "n": 3, "T1": 5, "T2": 100, "lw_sizes": [8, 32],
        "lw_reps": 2, "m_test": 500, "mn_cases": [[2, 3], [3, 4]], "C": 20, "reps": 2, "sizes": [10, 50],
        "sizes_noisy": [10, 50], "epochs": 100, "fig4_ns": [4, 10], "fig4_m": 50, "digit_sizes": [10, 50],
        "lwadam_sizes": [10, 50], "lwadam_reps": 2,
    },
    "book": {
        "lucky_ds": [3, 4, 6, 8, 10], "lucky_runs": 200, "d": 4, "n": 3, "T1": 20, "T2": 2000,
        "lw_sizes": [4, 8, 16, 32, 64, 128], "lw_reps": 3, "m_test": 1000,
        "mn_cases": [[2, 3], [2, 6], [3, 4], [3, 5], [4, 4], [4, 5], [5, 4]], "C": 100, "reps": 5,
        "sizes": [10, 20, 50, 100, 200], "sizes_noisy": [10, 30, 100, 200], "epochs": 300,
        "fig4_ns": [4, 10, 20], "fig4_m": 100, "digit_sizes": [10, 30, 100, 200],
        "lwadam_sizes": [10, 20, 50], "lwadam_reps": 20,
    },
    "paper": {
        "lucky_ds": [3, 4, 6, 8, 10, 12], "lucky_runs": 500, "d": 5, "n": 4, "T1": 50, "T2": 20000,
        "lw_sizes": [4, 8, 16, 32, 64, 128, 256, 512], "lw_reps": 10, "m_test": 1000,
        "mn_cases": [[2, 3], [2, 6], [3, 4], [3, 5], [4, 4], [4, 5], [5, 4], [5, 5], [6, 4]], "C": 500,
        "reps": 5, "sizes": [10, 20, 50, 100, 200, 500, 1000], "sizes_noisy": [10, 20, 50, 100, 200, 500, 1000],
        "epochs": 2000, "fig4_ns": [4, 10, 20, 30, 40], "fig4_m": 200,
        "digit_sizes": [10, 20, 50, 100, 200, 500, 1000], "lwadam_sizes": [10, 20, 50, 100],
        "lwadam_reps": 50,
    },
}
#: Training-set sizes (larger than Fig. 3b's) and independent runs per size of the Sec. 7 separability check.
SEP_CONFIGS = {"smoke": {"sizes": [100, 300], "reps": 2}, "book": {"sizes": [200, 500, 1000], "reps": 5},
               "paper": {"sizes": [200, 500, 1000], "reps": 10}}
#: The digits of the declared Fig. 3c cells (scikit-learn's bundled 8x8 digits).
DIGITS = "sklearn-8x8"
#: Runs per chunk of the lucky-filter draws (bounds memory; the chunking changes no result).
LUCKY_CHUNK = 50
#: Dimension and patches per image of the Sec. 7 data (Figs. 3a/3b, separability, layerwise).
D_SEC7, N_SEC7 = 20, 10


def _need(cfg, keys) -> None:
    if not isinstance(cfg, dict):
        raise ValueError(f"a cell config must be a dict, got {type(cfg).__name__}")
    for key in keys:
        if key not in cfg:
            raise ValueError(f"cfg lacks {key!r} (needs {', '.join(keys)})")


def _seed_key(cfg) -> dict:
    """The chapter's settings dict of the scale named by ``cfg["seeds"]`` (the runs' seed key)."""
    s = cfg["seeds"]
    if s not in CONFIGS:
        raise ValueError(f"cfg['seeds'] must name a scale ({', '.join(CONFIGS)}), got {s!r}")
    return dict(CONFIGS[s])


def _scale(scale: str) -> dict:
    V.choice("scale", scale, tuple(CONFIGS))
    return CONFIGS[scale]


def _run_gens(name: str, key: dict, runs) -> list[torch.Generator]:
    """The generators of runs ``runs`` (indices) of ``config.generators(name, key, ...)``."""
    return [config.generators(name, key, 1, start=int(r))[0] for r in runs]


# ----------------------------------------------------------------------------------------------------
# Lemma 5.2: lucky filters
# ----------------------------------------------------------------------------------------------------


def lucky_cells(scale: str) -> list[dict]:
    """One cell per ``d`` of the scale's ``lucky_ds``."""
    c = _scale(scale)
    return [{"d": int(d), "runs": int(c["lucky_runs"]), "seeds": scale} for d in c["lucky_ds"]]


def lucky_cell(cfg: dict, device=None, dtype=None) -> dict:
    """``runs`` initializations of ``k = 8 d^3 + 1`` filters on the unit sphere with signs ``a`` (Algorithm 1's
    initialization, :func:`cnnbias.experiments.maxpool.sphere_init`): per run the sizes ``n_plus`` of
    ``W_0^+ ∩ A^+`` and ``n_minus`` of ``W_0^- ∩ A^-`` (Eq. 6)."""
    _need(cfg, ("d", "runs", "seeds"))
    V.integer("cfg['d']", cfg["d"], 3)
    V.integer("cfg['runs']", cfg["runs"], 1)
    d, runs = int(cfg["d"]), int(cfg["runs"])
    k = 8 * d**3 + 1
    key = {"d": d, **_seed_key(cfg)}  # as in the chapter (its settings' "d" overrides)
    n_plus, n_minus = [], []
    for c0 in range(0, runs, LUCKY_CHUNK):
        gens = _run_gens("lucky", key, range(c0, min(runs, c0 + LUCKY_CHUNK)))
        W0, a0 = MP.sphere_init(k, d, 1.0, gens)
        lp, lm = MP.lucky_masks(W0, a0)
        n_plus += lp.sum(1).tolist()
        n_minus += lm.sum(1).tolist()
    return {"d": d, "k": k, "n_plus": n_plus, "n_minus": n_minus}


def binomial_gof(counts, k: int, p: float, bins: int = 5) -> float:
    """Chi-square goodness of fit of per-run counts to Binomial(k, p): bins at the binomial's quintiles,
    expected masses exact; the p-value with ``bins - 1`` degrees of freedom."""
    from scipy.stats import binom, chi2

    edges = sorted({int(binom.ppf(q, k, p)) for q in np.linspace(0, 1, bins + 1)[1:-1]})
    cuts = [-1] + edges + [k]
    mass = np.diff([binom.cdf(c, k, p) if c >= 0 else 0.0 for c in cuts])
    c = np.asarray(counts, dtype=float)
    obs = np.array([((c > lo) & (c <= hi)).sum() for lo, hi in zip(cuts[:-1], cuts[1:])])
    exp_ = mass * len(c)
    stat = float(((obs - exp_) ** 2 / exp_).sum())
    return float(chi2.sf(stat, len(obs) - 1))


def lucky_stats(cells) -> dict:
    """Per ``d``: the formula ``p`` (Lemma 5.2), the fractions of lucky+ and lucky- filters, the largest
    ``|z|``, the fraction of runs in the Hoeffding band ``| |lucky|/k - p | <= 1/(4d)`` (both signs) and in
    ``[k/(4d), k/d]``, with the lemma's lower bounds ``1 - 2 * 2 exp(-2k/(4d)^2)`` and ``1 - 4 e^{-d}``.
    Also the p-values of the three test families (z tests, chi-square fits, one-sided binomial tests)."""
    from scipy.stats import binom, norm

    rows, z_p, gof_p, band_p = [], [], [], []
    for _, r in cells:
        d, k = int(r["d"]), int(r["k"])
        cp = torch.tensor(r["n_plus"], dtype=torch.float64)
        cm = torch.tensor(r["n_minus"], dtype=torch.float64)
        runs = len(cp)
        p = MP.lucky_probability(d)
        N = runs * k
        se = math.sqrt(p * (1 - p) / N)
        fp, fm = float(cp.sum() / N), float(cm.sum() / N)
        z = max(abs(fp - p), abs(fm - p)) / se
        in_band = ((cp / k - p).abs() <= 1 / (4 * d)) & ((cm / k - p).abs() <= 1 / (4 * d))
        in_count = (cp >= k / (4 * d)) & (cp <= k / d) & (cm >= k / (4 * d)) & (cm <= k / d)
        gof_p += [binomial_gof(cp.numpy(), k, p), binomial_gof(cm.numpy(), k, p)]
        hb = 1 - 2 * MP.hoeffding_bound(k, d)  # both sets
        qc = 1 - 4 * math.exp(-d)
        band_p.append(float(binom.cdf(int(in_band.sum()), runs, min(hb, 1.0))) if hb > 0 else 1.0)
        band_p.append(float(binom.cdf(int(in_count.sum()), runs, qc)) if qc > 0 else 1.0)
        z_p += [2 * float(norm.sf(abs(fp - p) / se)), 2 * float(norm.sf(abs(fm - p) / se))]
        rows.append({"d": d, "k": k, "p": p, "lucky_plus": fp, "lucky_minus": fm, "max_abs_z": z,
                     "in_band": float(in_band.double().mean()), "band_bound": hb,
                     "in_count": float(in_count.double().mean()), "count_bound": qc})
    return {"rows": rows, "z_p": z_p, "gof_p": gof_p, "band_p": band_p,
            "z_max": max(r_["max_abs_z"] for r_ in rows)}


def claim_lucky(cells, claims) -> None:
    """``maxpool.lucky_probability``, ``maxpool.lemma52_counts`` and ``maxpool.lemma52_band`` (Lemma 5.2,
    Eq. 13): each statement tested at every ``d`` (and sign), one Holm family per statement."""
    s = lucky_stats(cells)
    z_p, gof_p, band_p, z_max = s["z_p"], s["gof_p"], s["band_p"], s["z_max"]
    rej_z, rej_gof, rej_band = holm_reject(z_p), holm_reject(gof_p), holm_reject(band_p)
    claims.check(
        "maxpool.lucky_probability",
        "fraction of lucky+ and lucky- filters = (1-2^(-d+1))/(2(d-1)) at every d: two-sided z tests "
        "(all filters of all runs i.i.d.), one Holm family over d and sign, alpha = 0.05",
        not rej_z.any(),
        measured=f"{int(rej_z.sum())} of {len(z_p)} rejected; largest |z| {z_max:.2f}, smallest p {min(z_p):.2g}",
        paper="P(i lucky) = (1 - 2^(-d+1)) / (2(d-1)) (Lemma 5.2, App. B)",
        tolerance="Holm, family-wise alpha 0.05",
        value={"rejected": int(rej_z.sum()), "max_abs_z": z_max, "min_pvalue": min(z_p)},
    )
    claims.check(
        "maxpool.lemma52_counts",
        "per-run numbers of lucky+ and lucky- filters follow Binomial(k, p) with Lemma 5.2's p "
        "(chi-square at the binomial's quintiles, every d and sign; one Holm family)",
        not rej_gof.any(),
        measured=f"{int(rej_gof.sum())} of {len(gof_p)} rejected; smallest p-value {min(gof_p):.2g}",
        paper="i.i.d. filters, P(i lucky) = (1 - 2^(-d+1)) / (2(d-1)) (Lemma 5.2)",
        tolerance="Holm, family-wise alpha 0.05",
        value={"rejected": int(rej_gof.sum()), "min_pvalue": min(gof_p)},
    )
    claims.check(
        "maxpool.lemma52_band",
        "fraction of runs in the Hoeffding band and in [k/4d, k/d] >= the lemma's probabilities: "
        "one-sided binomial tests over i.i.d. runs, every d, one Holm family",
        not rej_band.any(),
        measured=f"{int(rej_band.sum())} of {len(band_p)} rejected; smallest p-value {min(band_p):.2g}",
        paper="Eq. 13; Lemma 5.2",
        tolerance="Holm, family-wise alpha 0.05",
        value={"rejected": int(rej_band.sum()), "min_pvalue": min(band_p)},
    )


# ----------------------------------------------------------------------------------------------------
# Algorithm 1 (LW_CNN): Lemmas 5.3, 5.5, Cor. 5.4 and Part 3 of the proof of Theorem 5.1
# ----------------------------------------------------------------------------------------------------


def lw_cells(scale: str) -> list[dict]:
    """One cell per training-set size ``m`` of ``lw_sizes`` (its ``lw_reps`` repetitions batched)."""
    c = _scale(scale)
    S = len(c["lw_sizes"])
    return [{"m": int(m), "s": s, "n_sizes": S, "m_pool": int(max(c["lw_sizes"])), "reps": int(c["lw_reps"]),
             "d": int(c["d"]), "n": int(c["n"]), "T1": int(c["T1"]), "T2": int(c["T2"]),
             "m_test": int(c["m_test"]), "seeds": scale} for s, m in enumerate(c["lw_sizes"])]


def lw_hparams(cfg: dict) -> dict:
    """The theorem's largest settings for the cell (:func:`cnnbias.experiments.maxpool.default_hparams`,
    ``eta2 = 0.99 * 8k``) and the bounds of App. E: ``||v*||^2 <= 2 80^2 d / (k eta1^2 T1^2)`` and
    ``||z(x)||^2 <= 4 k eta1^2 T1^2``."""
    hp = MP.default_hparams(int(cfg["d"]), int(cfg["T1"]), eta2_fraction=0.99)
    k, eta1, T1, d = hp["k"], hp["eta1"], int(cfg["T1"]), int(cfg["d"])
    return dict(hp, v_bound=2 * 80**2 * d / (k * eta1**2 * T1**2), z_bound=4 * k * eta1**2 * T1**2)


#: Filters of the first run whose phase-1 trajectories a cell keeps (for the chapter's figure).
N_TRAJ = 30


def lw_cell(cfg: dict, device=None, dtype=None) -> dict:
    """Algorithm 1 on ``reps`` independent runs with ``m`` training points each (run ``rep`` is the chapter's
    run ``rep * n_sizes + s``: its own pool of ``m_pool`` points of ``D``, of which it uses the first ``m``,
    its own test set and initialization).  Per run: Eq. 14, the sizes of the lucky sets, the slacks of
    Lemma 5.3 / Cor. 5.4 / Lemma 5.5 (:func:`cnnbias.experiments.maxpool.dynamics_checks`), the least
    margin ``y v* . z(x)`` over the test points and the norms of App. E, the training error on ``S2``,
    whether ``v*`` separates ``S2`` with margin 1, ``L2`` at the start and end of phase 2 and whether it
    decreased monotonically, and Soudry's step condition ``eta2 < 2 m2 / sigma_max^2(Z)``.  For the first
    run: the phase-1 trajectories (divided by ``eta1``) of up to 30 lucky+ filters (``o_1 . w_i``) and 30
    non-lucky ones (``max_j o_j . w_i``), and ``L2`` along phase 2.  CPU, float64."""
    _need(cfg, ("m", "s", "n_sizes", "m_pool", "reps", "d", "n", "T1", "T2", "m_test", "seeds"))
    if config.device().type != "cpu" or (device is not None and torch.device(device).type != "cpu"):
        raise ValueError("maxpool.lw_cnn cells run on the CPU in float64: set CNNBIAS_DEVICE=cpu")
    m, s, S, M, R = (int(cfg[k]) for k in ("m", "s", "n_sizes", "m_pool", "reps"))
    d, n, T1, T2 = (int(cfg[k]) for k in ("d", "n", "T1", "T2"))
    if not 2 <= m <= M:
        raise ValueError(f"cfg['m'] must be in 2..m_pool={M}, got {m}")
    if not 0 <= s < S:
        raise ValueError(f"cfg['s'] must be in 0..n_sizes-1={S - 1}, got {s}")
    key = _seed_key(cfg)
    hp = lw_hparams(cfg)
    runs = [rep * S + s for rep in range(R)]
    gens = _run_gens("lw_cnn", key, runs)
    idx, y = P.stack_runs(P.sample_D, gens, m=M, n=n, l=d)
    it, yt = P.stack_runs(P.sample_D, gens, m=int(cfg["m_test"]), n=n, l=d)
    res = MP.lw_cnn(idx, y, k=hp["k"], d=d, T1=T1, T2=T2, eta1=hp["eta1"], eta2=hp["eta2"], r=hp["r"],
                    gens=_run_gens("lw_cnn_init", key, runs), sizes=[m] * R,
                    record_loss_every=max(1, T2 // 50))
    chk = MP.dynamics_checks(res)
    eq14 = MP.eq14_holds(y, res.mask1)
    with torch.no_grad():
        z_te = MP.representation(res.W, it)
        z_tr = MP.representation(res.W, idx)
    vs = MP.v_star(res)
    margin_te = (yt * torch.einsum("rmk,rk->rm", z_te, vs)).amin(1)
    out_tr = torch.einsum("rmk,rk->rm", z_tr, res.a)
    err_s2 = (((y * out_tr) <= 0).double() * res.mask2).sum(1) / res.mask2.sum(1)
    Lh = res.loss2_history
    mono = (Lh[1:] <= Lh[:-1] + 1e-15).all(0)
    sig2 = torch.stack([torch.linalg.matrix_norm(z_tr[r][res.mask2[r] > 0], ord=2) ** 2 for r in range(R)])
    m2 = res.mask2.sum(1)
    sep2 = ((y * torch.einsum("rmk,rk->rm", z_tr, vs) > 1).double() * res.mask2).sum(1) == m2
    lp0, lm0 = MP.lucky_masks(res.W0, res.a0)
    H = res.W_history[:, 0]  # [T1+1, k, d], first run
    lucky = torch.nonzero(lp0[0]).flatten()[:N_TRAJ]
    other = torch.nonzero(~(lp0[0] | lm0[0])).flatten()[:N_TRAJ]
    return {
        "m": m, "k": hp["k"], "eq14": eq14.tolist(), "n_plus": chk["n_plus"].tolist(),
        "n_minus": chk["n_minus"].tolist(), "lemma53_growth": chk["lemma53_growth"].tolist(),
        "lemma53_others": chk["lemma53_others"].tolist(), "lemma55": chk["lemma55"].tolist(),
        "margin_te": margin_te.tolist(), "v_norm2": (vs**2).sum(1).tolist(),
        "z_norm2": (z_te**2).sum(-1).amax(1).tolist(), "err_s2": err_s2.tolist(), "mono": mono.tolist(),
        "soudry": (hp["eta2"] < 2 * m2 / sig2).tolist(), "sep2": sep2.tolist(),
        "L2_first": Lh[0].tolist(), "L2_last": Lh[-1].tolist(),
        "L2_epochs": [int(e) for e in res.loss2_epochs], "L2_history_first": Lh[:, 0].tolist(),
        "W_epochs": [int(e) for e in res.W_epochs],
        "traj_lucky": (H[:, lucky, 0] / hp["eta1"]).tolist(),
        "traj_other": (H[:, other].amax(-1) / hp["eta1"]).tolist(),
    }


def lw_runs(cells) -> dict:
    """The per-run values of all cells, concatenated (numpy arrays), and the cells' first config."""
    keys = ("eq14", "lemma53_growth", "lemma53_others", "lemma55", "margin_te", "v_norm2", "z_norm2",
            "err_s2", "mono", "soudry", "sep2", "L2_first", "L2_last", "n_plus", "n_minus")
    out = {k: np.concatenate([np.asarray(r[k]) for _, r in cells]) for k in keys}
    out["m"] = np.concatenate([np.full(len(r["eq14"]), c["m"]) for c, r in cells])
    out["cfg"] = cells[0][0]
    return out


def _min(a) -> float:
    return float(a.min()) if a.size else math.inf


def claim_lw_dynamics(cells, claims) -> None:
    """``maxpool.lemma53_dynamics``: on every run with Eq. 14 the lucky filters' slacks of Lemma 5.3 /
    Cor. 5.4 are ``>= 0``, on every run Lemma 5.5's slack is ``>= 0``, and the theorem's conditions hold."""
    u = lw_runs(cells)
    cfg, hp = u["cfg"], lw_hparams(u["cfg"])
    conds = MP.theorem_conditions(hp["k"], int(cfg["d"]), int(cfg["T1"]), hp["eta1"], hp["eta2"], hp["r"])
    g = u["eq14"].astype(bool)
    gr, ot, l55 = _min(u["lemma53_growth"][g]), _min(u["lemma53_others"][g]), _min(u["lemma55"])
    claims.check(
        "maxpool.lemma53_dynamics",
        "on every run with Eq. 14: o1.w_i(t) >= t eta1/9 and o_j.w_i(t) <= r for lucky filters; all "
        "outputs <= 2 eta1 t",
        bool(gr >= 0 and ot >= 0 and l55 >= 0 and all(conds.values())),
        measured=f"min slacks {gr:.2e}, {ot:.2e}, {l55:.2e}",
        paper="Lemma 5.3, Cor. 5.4, Lemma 5.5",
        tolerance="slack >= 0",
    )


def claim_lw_margin(cells, claims) -> None:
    """``maxpool.thm51_margin``: ``v*`` separates the test points of every run with Eq. 14 with margin
    ``> 1``, and ``||v*||^2``, ``max ||z(x)||^2`` are within the bounds of App. E in every run."""
    u = lw_runs(cells)
    hp = lw_hparams(u["cfg"])
    g = u["eq14"].astype(bool)
    mm = _min(u["margin_te"][g])
    claims.check(
        "maxpool.thm51_margin",
        "v* separates D_z with margin > 1 (test points), norms within the proof's bounds",
        bool(mm > 1 and (u["v_norm2"] <= hp["v_bound"]).all() and (u["z_norm2"] <= hp["z_bound"]).all()),
        measured=f"min margin {mm:.3f}",
        paper="App. E",
        tolerance="margin > 1, norms <= bounds",
    )


def claim_lw_zero_loss(cells, claims) -> None:
    """``maxpool.thm51_zero_loss``: ``L2`` decreases monotonically and Soudry's step condition holds in
    every run; on the runs where ``v*`` separates ``S2`` and Eq. 14 holds, the ``S2`` training error is 0
    and ``L2(T2) < L2(0) / 2``."""
    u = lw_runs(cells)
    zr = u["sep2"].astype(bool) & u["eq14"].astype(bool)
    zero = bool((u["err_s2"][zr] == 0).all())
    L_last = float(u["L2_last"][zr].max()) if zr.any() else math.nan
    claims.check(
        "maxpool.thm51_zero_loss",
        "separable runs: L2 decreases monotonically, S2 training error reaches 0, Soudry's step "
        "condition holds (so L2 -> 0)",
        bool(u["mono"].all() and u["soudry"].all() and zero
             and (u["L2_last"][zr] < u["L2_first"][zr] / 2).all()),
        measured=f"max L2(T2) = {L_last:.4f}, S2 errors 0: {zero}",
        paper="lim L2 = 0 (Thm. 5.1 (1))",
        tolerance="monotone, L2(T2) < L2(0)/2, zero S2 error",
    )


# ----------------------------------------------------------------------------------------------------
# Sec. 7: Figs. 3 and 4 (ConvPool vs MLP vs SVM)
# ----------------------------------------------------------------------------------------------------

_PANELS = {"a": ("sizes", 0.0), "b": ("sizes_noisy", 1.0), "c": ("digit_sizes", None)}


def fig3_cells(scale: str, digits: str = DIGITS) -> list[dict]:
    """One cell per panel (``a``: orthogonal patterns, ``b``: with noise ``||v|| <= 1``, ``c``: digits) and
    training-set size; panel ``c`` names its data source (``digits``)."""
    c = _scale(scale)
    V.choice("digits", digits, (DIGITS, "mnist"))
    out = []
    for panel, (sizes_key, _) in _PANELS.items():
        S = len(c[sizes_key])
        for s, m in enumerate(c[sizes_key]):
            cell = {"panel": panel, "m": int(m), "s": s, "n_sizes": S, "reps": int(c["reps"]), "C": int(c["C"]),
                    "epochs": int(c["epochs"]), "seeds": scale}
            if panel == "c":
                cell["digits"] = digits
            out.append(cell)
    return out


def _models_result(out: dict) -> dict:
    res = {}
    for model, v in out.items():
        res[model] = {"test_err": v["test_err"].tolist(), "train_err": v["train_err"].tolist()}
        if "epochs" in v:
            res[model]["epochs"] = [int(e) for e in torch.as_tensor(v["epochs"]).tolist()]
    return res


def _compare(name: str, cfg: dict, make, **kw) -> dict:
    """The chapter's ``run_figure`` restricted to the cell's runs ``rep * n_sizes + s``."""
    S, s, R = int(cfg["n_sizes"]), int(cfg["s"]), int(cfg["reps"])
    if not 0 <= s < S:
        raise ValueError(f"cfg['s'] must be in 0..n_sizes-1={S - 1}, got {s}")
    V.integer("cfg['m']", cfg["m"], 1)
    V.integer("cfg['reps']", R, 1)
    key = cfg["_key"]
    runs = [rep * S + s for rep in range(R)]
    train, test, extra = make([int(cfg["m"])], R, gens=_run_gens(name, key, runs))
    out = MP.compare_models(train, test, channels=int(cfg["C"]), gens=_run_gens(name + "_init", key, runs),
                            epochs=int(cfg["epochs"]), patterns=extra if torch.is_tensor(extra) else None, **kw)
    return out, extra


def fig3_cell(cfg: dict, device=None, dtype=None) -> dict:
    """One panel and training-set size of Fig. 3: ``reps`` independent runs (the chapter's runs
    ``rep * n_sizes + s`` of ``fig3<panel>``), each model's per-run ``test_err`` and ``train_err``
    (:func:`cnnbias.experiments.maxpool.compare_models`; ``C`` channels, ``epochs`` of Adam).  CPU, float64."""
    _need(cfg, ("panel", "m", "s", "n_sizes", "reps", "C", "epochs", "seeds"))
    panel = cfg["panel"]
    if panel not in _PANELS:
        raise ValueError(f"cfg['panel'] must be one of {', '.join(_PANELS)}, got {panel!r}")
    c = dict(cfg, _key=_seed_key(cfg))
    if panel == "c":
        _need(cfg, ("digits",))

        def make(s_, r_, gens):
            tr, te, source = MP.digit_runs(s_, r_, n=4, gens=gens)
            if source != cfg["digits"]:
                raise ValueError(f"cfg['digits'] is {cfg['digits']!r} but the digits loaded are {source!r} "
                                 "(CNNBIAS_MNIST_DIR selects MNIST)")
            return tr, te, source
    else:
        noise = _PANELS[panel][1]

        def make(s_, r_, gens):
            return MP.pattern_runs(s_, r_, n=N_SEC7, d=D_SEC7, noise=noise, gens=gens)
    out, _ = _compare(f"fig3{panel}", c, make)
    return {"m": int(cfg["m"]), **_models_result(out)}


def fig4_cells(scale: str) -> list[dict]:
    """One cell per number of patches ``n`` of ``fig4_ns`` (``m = fig4_m``, noise ``||v|| <= 1``, ``d = 20``)."""
    c = _scale(scale)
    return [{"n": int(n), "m": int(c["fig4_m"]), "s": 0, "n_sizes": 1, "reps": int(c["reps"]), "C": int(c["C"]),
             "epochs": int(c["epochs"]), "seeds": scale} for n in c["fig4_ns"]]


def fig4_cell(cfg: dict, device=None, dtype=None) -> dict:
    """Fig. 4 at one ``n``: ``reps`` runs of ``fig4_n<n>`` (noisy orthogonal patterns in R^20), per-run errors
    of ConvPool, MLP and SVM.  CPU, float64."""
    _need(cfg, ("n", "m", "s", "n_sizes", "reps", "C", "epochs", "seeds"))
    V.integer("cfg['n']", cfg["n"], 1)
    n4 = int(cfg["n"])
    out, _ = _compare(f"fig4_n{n4}", dict(cfg, _key=_seed_key(cfg)),
                      lambda s_, r_, gens: MP.pattern_runs(s_, r_, n=n4, d=D_SEC7, noise=1.0, gens=gens))
    return {"n": n4, **_models_result(out)}


def panel_errors(cells, panel: str | None = None, what: str = "test_err") -> tuple[list[int], dict]:
    """``(sizes, {model: tensor [reps, S]})`` of Fig. 3's panel ``panel`` (cells ordered by size), or of the
    given cells when ``panel`` is None."""
    sel = sorted([(c, r) for c, r in cells if panel is None or c.get("panel") == panel], key=lambda cr: cr[0]["s"])
    if not sel:
        raise ValueError(f"no cells of panel {panel!r}")
    models = [k for k in sel[0][1] if isinstance(sel[0][1][k], dict)]
    errs = {k: torch.tensor([r[k][what] for _, r in sel], dtype=torch.float64).T for k in models}
    return [int(c["m"]) for c, _ in sel], errs


def advantage(errs: dict, at: str = "all") -> tuple[float, float]:
    """``min(MLP, SVM) - ConvPool`` test error per repetition (rows of ``[reps, S]``), averaged over sizes
    (``at="all"``) or at the last size (``"last"``): mean and standard error over repetitions."""
    V.choice("at", at, ("all", "last"))
    cp = errs["convpool"]
    diff = torch.minimum(errs["mlp"], errs["svm"]) - cp
    diff = diff.mean(1) if at == "all" else diff[:, -1]
    mu, se = mean_se(diff)
    return float(mu), float(se)


def _best(claims, cid, statement, cells, panel, at) -> None:
    mu, se = advantage(panel_errors(cells, panel)[1], at)
    claims.greater(cid, statement, mu, 0.0, se, k=2.0, paper="ConvPool outperforms MLP and SVM")


def claim_fig3a_best(cells, claims) -> None:
    """``maxpool.fig3a_convpool_best``: ConvPool's advantage over the best baseline, averaged over ``m``, > 2 SE."""
    _best(claims, "maxpool.fig3a_convpool_best",
          "Fig. 3a: min(MLP, SVM) - ConvPool test error, averaged over m (mean over reps) > 2 SE", cells, "a", "all")


def claim_fig3a_zero_train(cells, claims) -> None:
    """``maxpool.fig3a_zero_train``: every model fits every training set of Fig. 3a."""
    _, tr = panel_errors(cells, "a", "train_err")
    claims.at_most("maxpool.fig3a_zero_train", "Fig. 3a: largest training error of any model and run",
                   max(float(v.max()) for v in tr.values()), 0.0,
                   paper="all models had zero training error (Fig. 3a caption)")


def claim_fig3b_noise(cells, claims) -> None:
    """``maxpool.fig3b_noise``: with noise, ConvPool's advantage at the largest ``m`` > 2 SE."""
    _best(claims, "maxpool.fig3b_noise",
          "Fig. 3b (noise): min(MLP, SVM) - ConvPool test error at the largest m > 2 SE", cells, "b", "last")


def claim_fig3c_digits(cells, claims) -> None:
    """``maxpool.fig3c_digits``: on digits, ConvPool's advantage at the largest ``m`` > 2 SE."""
    _best(claims, "maxpool.fig3c_digits",
          "Fig. 3c (digits): min(MLP, SVM) - ConvPool test error at the largest m > 2 SE", cells, "c", "last")


def fig4_advantage(cells) -> tuple[float, float, float, float]:
    """Per repetition ``min(MLP, SVM) - ConvPool`` test error at each ``n``: the mean and standard error of
    its growth from the smallest to the largest ``n``, and of its value at the largest ``n``."""
    sel = sorted(cells, key=lambda cr: cr[0]["n"])
    adv = [torch.minimum(torch.tensor(r["mlp"]["test_err"], dtype=torch.float64),
                         torch.tensor(r["svm"]["test_err"], dtype=torch.float64))
           - torch.tensor(r["convpool"]["test_err"], dtype=torch.float64) for _, r in sel]
    g, gs = (float(v) for v in mean_se(adv[-1] - adv[0]))
    last, ls = (float(v) for v in mean_se(adv[-1]))
    return g, gs, last, ls


def claim_fig4(cells, claims) -> None:
    """``maxpool.fig4_n_robust``: per repetition, the best baseline minus ConvPool at the largest ``n`` minus
    the same at the smallest ``n`` (runs at different ``n`` independent) is > 2 SE, and so is the advantage
    at the largest ``n``."""
    from cnnbias.claims import fmt_se

    g, gs, last, ls = fig4_advantage(cells)
    claims.check(
        "maxpool.fig4_n_robust",
        "Fig. 4: the advantage of ConvPool over the best of MLP and SVM grows from the smallest to the "
        "largest n, and is positive at the largest n, each by > 2 SE over independent repetitions",
        g > 2 * gs and last > 2 * ls,
        measured=f"growth {fmt_se(g, gs)}, at largest n {fmt_se(last, ls)}",
        paper="MLP and SVM deteriorate with n, ConvPool only mildly affected (Fig. 4)",
        tolerance="both > 2 SE",
        value={"growth": g, "at_largest_n": last},
        se=gs,
    )


# ----------------------------------------------------------------------------------------------------
# Sec. 7: separability with and without noise; layerwise training against Adam
# ----------------------------------------------------------------------------------------------------


def sep_cells(scale: str) -> list[dict]:
    """One cell per noise level (0 and ``||v|| <= 1``) and training-set size of :data:`SEP_CONFIGS`."""
    V.choice("scale", scale, tuple(SEP_CONFIGS))
    c = SEP_CONFIGS[scale]
    return [{"noise": noise, "m": int(m), "s": s, "sizes": list(c["sizes"]), "reps": int(c["reps"])}
            for noise in (0.0, 1.0) for s, m in enumerate(c["sizes"])]


def sep_cell(cfg: dict, device=None, dtype=None) -> dict:
    """``reps`` independent training sets of ``m`` points (``n = 10``, ``d = 20``, noise ``noise``; runs
    ``rep * len(sizes) + s`` of ``maxpool/sec7_separability``): is each linearly separable (with intercept,
    :func:`cnnbias.theory.separability.linearly_separable`, a linear program)?"""
    from cnnbias.theory.separability import linearly_separable

    _need(cfg, ("noise", "m", "s", "sizes", "reps"))
    sizes, s, R = list(cfg["sizes"]), int(cfg["s"]), int(cfg["reps"])
    if not 0 <= s < len(sizes) or sizes[s] != cfg["m"]:
        raise ValueError(f"cfg['s'] must index cfg['m'] = {cfg['m']} in cfg['sizes'] = {sizes}, got {s}")
    V.nonnegative("cfg['noise']", cfg["noise"])
    noise = float(cfg["noise"])
    gens = _run_gens("maxpool/sec7_separability", {"sizes": sizes, "reps": R, "noise": noise},
                     [rep * len(sizes) + s for rep in range(R)])
    tr, _, pats = MP.pattern_runs([int(cfg["m"])], R, n=N_SEC7, d=D_SEC7, noise=noise, m_test=1, gens=gens)
    flags = [not linearly_separable((Z if pats is None else pats[r][Z]).flatten(1), y)
             for r, (Z, y) in enumerate(tr)]
    return {"m": int(cfg["m"]), "not_separable": flags}


def sep_fractions(cells) -> tuple[list[int], dict[float, list[float]]]:
    """``(sizes, {noise: fraction of runs not separable per size})``."""
    out: dict[float, list] = {}
    sizes = []
    for c, r in sorted(cells, key=lambda cr: (cr[0]["noise"], cr[0]["s"])):
        out.setdefault(float(c["noise"]), []).append(float(np.mean(r["not_separable"])))
        if float(c["noise"]) == 0.0:
            sizes.append(int(c["m"]))
    return sizes, out


def claim_separability(cells, claims) -> None:
    """``maxpool.sec7_noise_not_separable``: clean training sets are separable at every ``m``; noisy ones are
    not separable in at least 80% of the runs at the largest ``m``."""
    sizes, fr = sep_fractions(cells)
    clean, noisy = fr[0.0], fr[1.0]
    reps = int(cells[0][0]["reps"])
    txt = ", ".join(f"{v:.1f}" for v in noisy)
    claims.check(
        "maxpool.sec7_noise_not_separable",
        "Sec. 7: the hard-margin SVM 'will return zero training errors only when the data is linearly "
        "separable. This is the case for our distribution D, but no longer the case when we add "
        f"noise': fraction of training sets (n = 10, d = 20, {reps} per m) that are not linearly separable "
        "(linear program), without noise and with noise ||v|| <= 1",
        max(clean) == 0 and noisy[-1] >= 0.8,
        measured=f"noise: {txt} at m = {', '.join(map(str, sizes))}; clean: max {max(clean):.1f}",
        paper="separable without noise, not with noise",
        tolerance="clean: 0 at every m; noise: >= 0.8 at the largest m",
        value={"noisy_at_max": noisy[-1], "clean_max": max(clean)},
    )


def la_cells(scale: str) -> list[dict]:
    """One cell per training-set size of ``lwadam_sizes`` (``lwadam_reps`` repetitions batched)."""
    c = _scale(scale)
    S = len(c["lwadam_sizes"])
    return [{"m": int(m), "s": s, "n_sizes": S, "reps": int(c["lwadam_reps"]), "C": int(c["C"]),
             "epochs": int(c["epochs"]), "seeds": scale} for s, m in enumerate(c["lwadam_sizes"])]


def la_cell(cfg: dict, device=None, dtype=None) -> dict:
    """Fig. 3a's data (runs ``rep * n_sizes + s`` of ``sec7_layerwise``): ConvPool trained end to end with Adam
    (``convpool``) and, from the same initialization, layer by layer (``layerwise``: ``W`` then ``a``, Adam,
    whole training set); per-run errors.  CPU, float64."""
    _need(cfg, ("m", "s", "n_sizes", "reps", "C", "epochs", "seeds"))
    key = {**_seed_key(cfg), "reps": int(cfg["reps"])}
    out, _ = _compare("sec7_layerwise", dict(cfg, _key=key),
                      lambda s_, r_, gens: MP.pattern_runs(s_, r_, n=N_SEC7, d=D_SEC7, noise=0.0, gens=gens),
                      models=("convpool", "layerwise"))
    return {"m": int(cfg["m"]), **_models_result(out)}


def la_errors(cells) -> tuple[list[int], torch.Tensor, torch.Tensor, float]:
    """``(sizes, Adam test errors [reps, S], layerwise test errors [reps, S], largest training error)``."""
    sizes, te = panel_errors(cells)
    _, tr = panel_errors(cells, what="train_err")
    return sizes, te["convpool"], te["layerwise"], max(float(v.max()) for v in tr.values())


def claim_layerwise_like_adam(cells, claims) -> None:
    """``maxpool.sec7_layerwise_like_adam``: ``|mean over m of (layerwise - Adam)| + 2 SE <= 0.03``, paired
    over independent repetitions."""
    from cnnbias.claims import fmt_se

    _, e_adam, e_layer, _ = la_errors(cells)
    d_la, se_la = (float(v) for v in mean_se((e_layer - e_adam).mean(1)))
    claims.check(
        "maxpool.sec7_layerwise_like_adam",
        "Fig. 3a data: |mean over m of test error (layerwise) - test error (Adam)| + 2 SE <= 0.03 "
        "(paired over independent repetitions): 'layer-wise training performs very similarly to "
        "standard training' (Sec. 7)",
        abs(d_la) + 2 * se_la <= 0.03,
        measured=f"layerwise - Adam {fmt_se(d_la, se_la)}",
        paper="very similar (no number given)",
        tolerance="|diff| + 2 SE <= 0.03",
        value={"diff": d_la},
        se=se_la,
    )


# -- the sweeps and their claims ----------------------------------------------------------------------
from cnnbias.sweeps.spec import ClaimSpec as _ClaimSpec  # noqa: E402  (the sweep declarations end the module)
from cnnbias.sweeps.spec import Sweep as _Sweep  # noqa: E402
from cnnbias.sweeps.spec import register as _register  # noqa: E402
from cnnbias.sweeps.spec import register_claim as _register_claim  # noqa: E402

_CODE = ("cnnbias.config", "cnnbias.stats", "cnnbias.engine", "cnnbias.data.patterns", "cnnbias.models.init",
         "cnnbias.models.maxpool", "cnnbias.experiments.maxpool")
_CODE_SEC7 = _CODE + ("cnnbias.models.mlp", "cnnbias.data.noisy_patterns")

SWEEP_LUCKY = _register(_Sweep(
    "maxpool.lucky_filters", lucky_cell, cells={s: lucky_cells(s) for s in CONFIGS}, code=_CODE,
    description="Lemma 5.2: numbers of lucky filters at initialization (k = 8d^3+1), per d",
    label=lambda c: f"d={c['d']}", cpu_only=True,
))
SWEEP_LW = _register(_Sweep(
    "maxpool.lw_cnn", lw_cell, cells={s: lw_cells(s) for s in CONFIGS}, code=_CODE,
    description="Algorithm 1 (LW_CNN) under Thm. 5.1's conditions: Lemmas 5.3/5.5, v* of App. E, phase 2; per m",
    label=lambda c: f"m={c['m']}", cpu_only=True,
))
SWEEP_FIG3 = _register(_Sweep(
    "maxpool.fig3", fig3_cell, cells={s: fig3_cells(s) for s in CONFIGS},
    code=_CODE_SEC7 + ("cnnbias.data.digit_patterns", "cnnbias.data.digits"),
    description="Sec. 7 Fig. 3a/3b/3c: ConvPool vs MLP vs SVM test error (clean, noisy, digits); per panel and m",
    label=lambda c: f"{c['panel']}/m={c['m']}", cpu_only=True,
))
SWEEP_FIG4 = _register(_Sweep(
    "maxpool.fig4", fig4_cell, cells={s: fig4_cells(s) for s in CONFIGS}, code=_CODE_SEC7,
    description="Sec. 7 Fig. 4: ConvPool vs MLP vs SVM on noisy patterns against the number of patches n",
    label=lambda c: f"n={c['n']}", cpu_only=True,
))
SWEEP_SEP = _register(_Sweep(
    "maxpool.sec7_separability", sep_cell, cells={s: sep_cells(s) for s in SEP_CONFIGS},
    code=_CODE_SEC7 + ("cnnbias.theory.separability",),
    description="Sec. 7: are clean / noisy training sets linearly separable (linear program)? per noise and m",
    label=lambda c: f"noise={c['noise']}/m={c['m']}", cpu_only=True,
))
SWEEP_LA = _register(_Sweep(
    "maxpool.sec7_layerwise", la_cell, cells={s: la_cells(s) for s in CONFIGS}, code=_CODE_SEC7,
    description="Sec. 7: ConvPool trained layer by layer against end-to-end Adam (Fig. 3a data); per m",
    label=lambda c: f"m={c['m']}", cpu_only=True,
))

for _id in ("maxpool.lucky_probability", "maxpool.lemma52_counts", "maxpool.lemma52_band"):
    _register_claim(_ClaimSpec(_id, "maxpool.lucky_filters", claim_lucky))
_register_claim(_ClaimSpec("maxpool.lemma53_dynamics", "maxpool.lw_cnn", claim_lw_dynamics))
_register_claim(_ClaimSpec("maxpool.thm51_margin", "maxpool.lw_cnn", claim_lw_margin))
_register_claim(_ClaimSpec("maxpool.thm51_zero_loss", "maxpool.lw_cnn", claim_lw_zero_loss))
_register_claim(_ClaimSpec("maxpool.fig3a_convpool_best", "maxpool.fig3", claim_fig3a_best,
                           select=lambda c: c["panel"] == "a"))
_register_claim(_ClaimSpec("maxpool.fig3a_zero_train", "maxpool.fig3", claim_fig3a_zero_train,
                           select=lambda c: c["panel"] == "a"))
_register_claim(_ClaimSpec("maxpool.fig3b_noise", "maxpool.fig3", claim_fig3b_noise,
                           select=lambda c: c["panel"] == "b"))
_register_claim(_ClaimSpec("maxpool.fig3c_digits", "maxpool.fig3", claim_fig3c_digits,
                           select=lambda c: c["panel"] == "c"))
_register_claim(_ClaimSpec("maxpool.fig4_n_robust", "maxpool.fig4", claim_fig4))
_register_claim(_ClaimSpec("maxpool.sec7_noise_not_separable", "maxpool.sec7_separability", claim_separability))
_register_claim(_ClaimSpec("maxpool.sec7_layerwise_like_adam", "maxpool.sec7_layerwise", claim_layerwise_like_adam))
