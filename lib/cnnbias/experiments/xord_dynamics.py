"""XORD paper (:cite:`xord`), Sections 3-5 and Appendices A.5-A.7, B: the randomized experiments of the chapter
"XOR detection: the problem and the dynamics of gradient descent", as two sweeps.

``xord.dynamics``, one cell per sub-experiment (``cfg["part"]``):

* ``eq56_check``: Eq. 5-6 in closed form (:func:`cnnbias.theory.xord.eq56_step`) against autograd gradient
  descent on Eq. 1 and Eq. 3 through the engine, ``k = 120``, ``c_eta = 1/410``, ``gamma = 8``, one diverse pair;
* ``k1_search``: Sec. 3, "for k = 1, f* cannot be realized": random ``k = 1`` networks (Gaussian filters with
  log-uniform scales) and ``k = 1`` networks trained by gradient descent on the 15 pattern sets;
* ``filters``: the filters of one ``k = 2`` and one ``k = 120`` run in the plane, ``S_t^+``, ``N_W(x^+-)`` along
  the ``k = 120`` run and the sizes of the sets of Eq. 4 (the chapter's two figures);
* ``thm52``: Theorem 5.2 (``k = 120``, ``c_eta = 1/410``, ``gamma = 8``, ``sigma_g = c_eta / (16 k^(3/2))``):
  convergence, realization of ``f*``, detection scores, Lemma A.4, and ``S_t^+`` with the increments of Lemma A.9
  (:func:`cnnbias.theory.xord_lemmas.track_S_plus`);
* ``thm52_k``: Theorem 5.2 at width ``k`` (one cell per ``k`` of 120, 240, 480);
* ``lemma_a12``: Lemmas A.1 and A.2 on many initializations;
* ``thm53``: Theorem 5.3 (``k = 2``, ``c_eta = 1/41``, ``gamma = 1``): wrong global minima, the events a)-d)
  of App. A.6, and the test error under the distribution of part 2 (``p+- = 0.92``);
* ``xor``: Theorem B.5, XOR (``d = 1``) converges within ``4k / (k - 2 sqrt k) + 40`` iterations (one cell per
  ``k`` of 25, 100).

``xord.sample_complexity``: Theorem 4.1 measured on the ``D`` of Theorem 5.3, part 2 (``p+- = 0.92``,
``delta = 0.16``, ``epsilon = 0.01``) with :mod:`cnnbias.experiments.xord_sample_complexity`: one cell for
``k = 120`` at ``m = 1`` (stratified over the nine training pairs) and one cell per ``m`` for ``k = 2``.

Every run draws from the generators the chapter used before the sweep existed (``config.generators(name, ...)``
with the same names and keys), so a cell reproduces the chapter's runs.  All cells run on the CPU in float64.
"""

from __future__ import annotations

import math

import torch

from cnnbias import config
from cnnbias.data import xord as X
from cnnbias.engine import StopRule, train
from cnnbias.experiments import xord as XE
from cnnbias.experiments import xord_sample_complexity as SC
from cnnbias.models import init, maxpool
from cnnbias.theory import xord as T
from cnnbias.theory import xord_lemmas as XL

__all__ = [
    "CONFIGS", "PARTS", "K52", "CE52", "GAMMA52", "KS52", "KS_XOR", "P41", "DELTA41", "EPS41", "P53",
    "gaussian_init", "dynamics_cells", "dynamics_cell", "sample_complexity_cells", "sample_complexity_cell",
    "part", "thm41_summary",
    "claim_k1_cannot_realize", "claim_eq56_matches_gd", "claim_thm52", "claim_s_plus", "claim_thm52_vs_k",
    "claim_lemma_a12", "claim_thm53", "claim_xor_converges", "claim_thm41_gap_measured",
]

#: For each scale the runs of Theorem 5.2 (``R52``, ``R52k`` per width), of Theorem 5.3 (``R53``), of XOR
#: (``R_xor``), steps of the Eq. 5-6 check, initializations of Lemmas A.1/A.2 (``R_init``), the ``k = 1`` search
#: (``n_k1`` random and ``R_k1`` trained networks) and the Theorem 4.1 measurement (``R41_type`` runs per training
#: pair at ``k = 120``, ``R41_k2`` runs per ``m`` of ``ms41`` at ``k = 2``, iteration caps).
CONFIGS = {
    "smoke": {"R52": 4, "R53": 200, "R_xor": 20, "steps_check": 50,
              "R_init": 200, "R52k": 2, "R41_type": 1, "R41_k2": 10, "ms41": [1, 2, 4, 8, 16],
              "max_steps41_k120": 20000, "max_steps41_k2": 2000, "n_k1": 20000, "R_k1": 50},
    "book": {"R52": 20, "R53": 2000, "R_xor": 200, "steps_check": 300,
             "R_init": 5000, "R52k": 10, "R41_type": 3, "R41_k2": 50,
             "ms41": [1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32],
             "max_steps41_k120": 20000, "max_steps41_k2": 3000, "n_k1": 100000, "R_k1": 200},
    "paper": {"R52": 200, "R53": 10000, "R_xor": 1000, "steps_check": 1000,
              "R_init": 100000, "R52k": 100, "R41_type": 20, "R41_k2": 500,
              "ms41": [1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 48, 64],
              "max_steps41_k120": 30000, "max_steps41_k2": 10000, "n_k1": 1000000, "R_k1": 2000},
}
#: The sub-experiments of ``xord.dynamics``.
PARTS = ("eq56_check", "k1_search", "filters", "thm52", "thm52_k", "lemma_a12", "thm53", "xor")
#: The setting of Theorem 5.2 (``k``, ``c_eta``, ``gamma``).
K52, CE52, GAMMA52 = 120, 1 / 410, 8.0
#: Widths of the detection-confidence experiment and of the XOR experiment.
KS52, KS_XOR = (120, 240, 480), (25, 100)
#: The ``p+ = p-``, ``delta`` and ``epsilon`` of Theorem 4.1 measured, and the ``p+ = p-`` of Theorem 5.3, part 2.
P41, DELTA41, EPS41, P53 = 0.92, 0.16, 0.01, 0.92
#: Iterations of the Theorem 5.3 runs and of the XOR runs.
STEPS53, STEPS_XOR = 5000, 1000


def gaussian_init(k: int, sigma: float, gens: list[torch.Generator]) -> torch.Tensor:
    """``[R, 2k, 2]`` i.i.d. ``N(0, sigma^2)`` filters (``w`` then ``u``), run ``r`` from ``gens[r]``."""
    return init.normal(gens, (2 * k, 2), sigma)


def _run_dyn(k: int, c_eta: float, gamma: float, name: str, R: int, max_steps: int, snaps=None) -> dict:
    gens = config.generators(name, {"k": k, "c_eta": c_eta, "gamma": gamma}, R)
    W0 = gaussian_init(k, T.sigma_g_max(c_eta, k), gens)
    return T.simulate_diverse(W0, c_eta / k, gamma, max_steps, snapshots=snaps)


def dynamics_cells(scale: str) -> list[dict]:
    """The cells of ``xord.dynamics`` at ``scale``: one per sub-experiment of :data:`PARTS` (``thm52_k`` per
    ``k`` of :data:`KS52`, ``xor`` per ``k`` of :data:`KS_XOR`)."""
    if scale not in CONFIGS:
        raise ValueError(f"scale must be one of {', '.join(CONFIGS)}, got {scale!r}")
    c = CONFIGS[scale]
    return [
        {"part": "eq56_check", "steps": c["steps_check"]},
        {"part": "k1_search", "n": c["n_k1"], "R": c["R_k1"]},
        {"part": "filters"},
        {"part": "thm52", "R": c["R52"]},
        *({"part": "thm52_k", "k": k, "R": c["R52k"]} for k in KS52),
        {"part": "lemma_a12", "R": c["R_init"]},
        {"part": "thm53", "R": c["R53"]},
        *({"part": "xor", "k": k, "R": c["R_xor"]} for k in KS_XOR),
    ]


def _need(cfg: dict, *keys: str) -> None:
    for key in keys:
        if key not in cfg:
            raise ValueError(f"cfg[{key!r}] is missing (part {cfg.get('part')!r} needs {', '.join(keys)})")
        v = cfg[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"cfg[{key!r}] must be an integer >= 1, got {v!r}")


def _eq56_check(cfg: dict) -> dict:
    steps = cfg["steps"]
    k, ce, gam, d = K52, CE52, GAMMA52, 6
    gens = config.generators("xord.eq56_check", {"k": k}, 4)
    W0 = gaussian_init(k, T.sigma_g_max(ce, k), gens)
    xp, xm = X.diverse_pair(d)
    Xpair = X.to_dense(torch.stack([xp, xm]))[None].expand(4, -1, -1, -1)
    ypair = torch.tensor([1.0, -1.0], dtype=torch.float64).expand(4, 2)

    def loss_pair(params, batch):
        return XE.eq3_loss(maxpool.forward_fixed(params["W"], X=batch.take(Xpair)), batch.take(ypair), gam)

    res = train(loss_pair, {"W": W0}, lr=ce / k, stop=StopRule(max_epochs=steps), trainable=("W",))
    W_eq = W0.clone()
    for _ in range(steps):
        W_eq = T.eq56_step(W_eq, ce / k, gam)
    return {"max_dev": float((res.params["W"] - W_eq).abs().max())}


def _k1_search(cfg: dict) -> dict:
    n, R = cfg["n"], cfg["R"]
    g = torch.Generator().manual_seed(config.run_seed("xord.k1_search", {}, 0))
    scale_k1 = torch.exp(torch.empty(n, 2, 1, dtype=torch.float64).uniform_(-5.0, 5.0, generator=g))
    W_k1 = torch.randn(n, 2, 2, generator=g, dtype=torch.float64) * scale_k1
    W0 = init.normal(config.generators("xord.k1_trained", {}, R), (2, 2), 1.0)
    trained = XL.gd_sets(W0, X.SUBSETS.expand(R, 15, 4), X.SUBSET_LABELS.expand(R, 15),
                         torch.ones(R, 15, dtype=torch.float64), 0.05, 1.0, 2000)["W"]
    return {"n_networks": n + R, "fewest_random": int(XL.k1_errors(W_k1).min()),
            "fewest_trained": int(XL.k1_errors(trained).min()),
            "certificate_violations": int(XL.k1_certificate(W_k1).sum() + XL.k1_certificate(trained).sum())}


def _filters(cfg: dict) -> dict:
    dyn2 = _run_dyn(2, 1 / 41, 1.0, "xord.dyn_fig", 1, 400, snaps=[0, 20, 60, 400])
    dyn120 = _run_dyn(K52, CE52, GAMMA52, "xord.dyn_fig", 1, 20000, snaps=[0, 500, 2000])
    t_end = int(dyn120["T"][0])
    dyn120["snap"][t_end] = dyn120["W"]
    gens = config.generators("xord.dyn_fig", {"k": K52, "c_eta": CE52, "gamma": GAMMA52}, 1)
    Wt = gaussian_init(K52, T.sigma_g_max(CE52, K52), gens)
    S_hist, np_hist, nn_hist, set_rows = [], [], [], []
    for t in range(t_end + 1):
        S_hist.append(float(T.S_plus(Wt)[0]))
        a_, b_ = T.diverse_outputs(Wt)
        np_hist.append(float(a_[0]))
        nn_hist.append(float(b_[0]))
        if t in (0, 1, 2, 10, 100, 1000, t_end):
            sets = T.eq4_sets(Wt)
            cnt = {key: [int((sets[key][0] == i).sum()) for i in range(4)] for key in sets}
            set_rows.append({"t": t, **cnt})
        Wt = T.eq56_step(Wt, CE52 / K52, GAMMA52)
    Xp, Yp = T.XY_plus(dyn120["W"])
    return {
        "T2": int(dyn2["T"][0]), "T120": t_end,
        "snap2": {str(t): W[0].tolist() for t, W in sorted(dyn2["snap"].items())},
        "snap120": {str(t): W[0].tolist() for t, W in sorted(dyn120["snap"].items())},
        "S_plus": S_hist, "N_plus": np_hist, "N_minus": nn_hist, "sets": set_rows,
        "X_plus": Xp[0].tolist(), "Y_plus": Yp[0].tolist(),
    }


def _thm52(cfg: dict, k: int, name: str, track: bool) -> dict:
    R = cfg["R"]
    T52 = T.thm52_T(GAMMA52, CE52)
    d = _run_dyn(k, CE52, GAMMA52, name, R, int(math.ceil(T52)))
    out = {"T": d["T"].tolist(), "realizes": T.realizes_fstar(d["W"]).tolist(),
           "det": T.detection_scores(d["W"]).tolist(), "confidence": T.thm52_confidence(k, CE52),
           "T_bound": T52, "sets_changed": d["sets_changed"].tolist(),
           "sets0_sizes": torch.stack([(d["sets0"] == i).sum(-1) for i in range(4)], -1).tolist()}
    if track:
        gens = config.generators(name, {"k": k, "c_eta": CE52, "gamma": GAMMA52}, R)
        trk = XL.track_S_plus(gaussian_init(k, T.sigma_g_max(CE52, k), gens), CE52 / k, GAMMA52,
                              int(math.ceil(T52)))
        out["track"] = {key: trk[key].tolist() for key in ("min_dS", "ratio_min", "ratio_max", "case2_max",
                                                             "n_case13", "n_case2")}
    return out


def _lemma_a12(cfg: dict) -> dict:
    R = cfg["R"]
    W = gaussian_init(K52, T.sigma_g_max(CE52, K52), config.generators("xord.lemma_a12", {}, R))
    sizes = XL.lemma_a1_sizes(W).double()
    return {"violations": int(XL.lemma_a1_violations(W).sum()), "ratio_a2": float(XL.lemma_a2_ratio(W, CE52 / K52).max()),
            "mean_size_w": float(sizes[:, 0].mean())}


def _thm53(cfg: dict) -> dict:
    d = _run_dyn(2, 1 / 41, 1.0, "xord.thm53", cfg["R"], STEPS53)
    W = d["W"]
    cond = T.thm53_conditions(W)
    qp, qm = XL.thm53_class_distributions(P53, P53)
    return {"T": d["T"].tolist(), "realizes": T.realizes_fstar(W).tolist(),
            **{c: cond[c].tolist() for c in ("a", "b", "c", "d", "E")},
            "det": T.detection_scores(W).tolist(),
            "test_error": XL.error_under(W, 0.5 * qp + 0.5 * qm, ties="error").tolist(),
            "test_error_half": XL.error_under(W, 0.5 * qp + 0.5 * qm).tolist()}


def _xor(cfg: dict) -> dict:
    k, R = cfg["k"], cfg["R"]
    if k < 25:
        raise ValueError(f"cfg['k'] must be >= 25 (Theorem B.5), got {k}")
    gens = config.generators("xord.xor", {"k": k}, R)
    W0, mask = XE.init_filters([k] * R, [T.sigma_g_max(1.0, k)] * R, gens)
    idx = torch.arange(4).reshape(1, 4, 1).expand(R, 4, 1).contiguous()
    y = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64).expand(R, 4).contiguous()
    # Eq. 3 with gamma = 1 divides by m = 2 positives; the paper sums over the 4 points: lr = 2 eta
    res = XE.train_xord_sets(W0, mask, idx, y, torch.full((R,), 2 * 1.0 / k, dtype=torch.float64), 1.0,
                             STEPS_XOR, patience=None)
    return {"converged": [r == "loss_below" for r in res.stop_reason], "epochs": res.epochs.tolist(),
            "bound": T.xor_sec_b_bound(k)}


def dynamics_cell(cfg: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """One sub-experiment of ``xord.dynamics`` (``cfg["part"]`` in :data:`PARTS`); see the module docstring for
    what each returns.  Runs on the CPU in float64 (``device`` and ``dtype`` are not used)."""
    p = cfg.get("part")
    if p not in PARTS:
        raise ValueError(f"cfg['part'] must be one of {', '.join(PARTS)}, got {p!r}")
    if p == "eq56_check":
        _need(cfg, "steps")
        return _eq56_check(cfg)
    if p == "k1_search":
        _need(cfg, "n", "R")
        return _k1_search(cfg)
    if p == "filters":
        return _filters(cfg)
    if p == "thm52":
        _need(cfg, "R")
        return _thm52(cfg, K52, "xord.thm52", track=True)
    if p == "thm52_k":
        _need(cfg, "k", "R")
        if cfg["k"] < 120:
            raise ValueError(f"cfg['k'] must be >= 120 (Theorem 5.2), got {cfg['k']}")
        return _thm52(cfg, cfg["k"], "xord.thm52_k", track=False)
    if p == "lemma_a12":
        _need(cfg, "R")
        return _lemma_a12(cfg)
    if p == "thm53":
        _need(cfg, "R")
        return _thm53(cfg)
    _need(cfg, "k", "R")
    return _xor(cfg)


def part(cells: list[tuple[dict, dict]], name: str) -> list[tuple[dict, dict]]:
    """The ``(config, result)`` cells of sub-experiment ``name`` (a ValueError when there are none)."""
    out = [(c, r) for c, r in cells if c.get("part") == name]
    if not out:
        raise ValueError(f"no cell of part {name!r} among {[c.get('part') for c, _ in cells]}")
    return out


# -- claims of xord.dynamics ---------------------------------------------------------------------------------------
def claim_eq56_matches_gd(cells, claims) -> None:
    """``xord.eq56_matches_gd``: Eq. 5-6 iterates equal autograd gradient descent (max deviation <= 1e-10)."""
    (_, r), = part(cells, "eq56_check")
    claims.at_most("xord.eq56_matches_gd", "Eq. 5-6 closed-form iterates equal autograd GD on Eq. 1 (k=120)",
                   r["max_dev"], 1e-10, paper="Eq. 5-6")


def claim_k1_cannot_realize(cells, claims) -> None:
    """``xord.k1_cannot_realize``: no ``k = 1`` network classifies all 15 pattern sets, none is positive on both
    constant points ``(x1, .., x1)`` and ``(x3, .., x3)``."""
    (_, r), = part(cells, "k1_search")
    best = min(r["fewest_random"], r["fewest_trained"])
    cert = r["certificate_violations"]
    claims.check(
        "xord.k1_cannot_realize",
        "Sec. 3: 'for k = 1, f* cannot be realized': no k=1 network among random and GD-trained ones "
        "classifies all 15 pattern sets, and none is positive on both (x1,..,x1) and (x3,..,x3)",
        best >= 1 and cert == 0,
        measured=f"fewest errors {best} of 15 sets over {r['n_networks']} networks; "
        f"{cert} positive on both constant points",
        paper="k=1 cannot realize f*",
        tolerance="no network with 0 errors; 0 certificate violations",
        value={"fewest_errors": best, "certificate_violations": cert},
    )


def _thm52_ok(r: dict) -> torch.Tensor:
    det = torch.tensor(r["det"], dtype=torch.float64)
    return ((torch.tensor(r["T"]) >= 0) & torch.tensor(r["realizes"]) & (det > r["confidence"]).all(-1))


def claim_thm52(cells, claims) -> None:
    """``xord.thm52_overparam_detects_all`` and ``xord.lemma_a4_sets_fixed`` (Theorem 5.2, Lemma A.4)."""
    (_, r), = part(cells, "thm52")
    R = len(r["T"])
    n_ok = int(_thm52_ok(r).sum())
    p_target = 1 - 16 * math.exp(-8)
    tmax, dmin = max(r["T"]), min(min(v) for v in r["det"])
    claims.check(
        "xord.thm52_overparam_detects_all",
        "k=120, c_eta=1/410, gamma=8: fraction of runs at a global minimum within T that realizes f* "
        "and detects all 4 patterns with c_d=(1-5c_eta/4)/(alpha(k)+1)",
        n_ok / R >= p_target or n_ok == R,
        measured=f"{n_ok}/{R} runs (max T={tmax}, min D_v={dmin:.3f})",
        paper=f">= 1-c-16e^-8 = {p_target:.4f}",
        tolerance="all runs, or fraction >= bound",
    )
    changed = sum(bool(v) for v in r["sets_changed"])
    claims.check(
        "xord.lemma_a4_sets_fixed",
        "W_t^+(1), W_t^+(3) equal W_0^+(1), W_0^+(3) at every iteration (Lemma A.4)",
        changed == 0,
        measured=f"{changed} runs changed",
        paper="never change",
        tolerance="0 runs",
    )


def claim_s_plus(cells, claims) -> None:
    """``xord.s_plus_nondecreasing`` and ``xord.lemma_a9_increment`` (Sec. 5, Lemma A.9) along the Theorem 5.2
    runs."""
    from cnnbias.claims import fmt_bound

    (_, r), = part(cells, "thm52")
    trk = r["track"]
    R = len(r["T"])
    min_dS = min(trk["min_dS"])
    r_lo, r_hi, c2 = min(trk["ratio_min"]), max(trk["ratio_max"]), max(trk["case2_max"])
    claims.check(
        "xord.s_plus_nondecreasing",
        "Sec. 5 / Lemma A.9: S_t^+ never decreases along GD on a diverse pair (k=120, c_eta=1/410, "
        "gamma=8), every iteration of every run",
        min_dS >= -1e-9,
        measured=f"smallest (S_t+1 - S_t)/eta = {min_dS:.3f} over {R} runs",
        paper="S_t^+ cannot decrease",
        tolerance=">= -1e-9 (rounding)",
        value=min_dS,
    )
    claims.check(
        "xord.lemma_a9_increment",
        "Lemma A.9 as printed: S_t+1 - S_t = eta |W_t+(1) u W_t+(3)| when N(x+) < gamma, "
        "and 0 in case 2",
        abs(r_lo - 1) <= 1e-6 and abs(r_hi - 1) <= 1e-6 and c2 <= 1e-9,
        measured=f"increment / (eta |W+(1) u W+(3)|) in [{r_lo:.6f}, {r_hi:.6f}]; case 2 "
        f"{fmt_bound(c2, 1e-9)}",
        paper="ratio 1 (cases 1, 3), 0 (case 2)",
        tolerance="|ratio - 1| <= 1e-6",
        value={"ratio_min": r_lo, "ratio_max": r_hi},
    )


def claim_thm52_vs_k(cells, claims) -> None:
    """``xord.thm52_detection_vs_k``: at each width the fraction of runs detecting all patterns with that width's
    confidence is not significantly below ``1 - c - 16 e^-8`` (one-sided exact binomial tests, Holm at 0.05)."""
    from scipy.stats import binomtest

    from cnnbias import stats

    p_target = 1 - 16 * math.exp(-8)
    rows, pv = [], []
    for c, r in part(cells, "thm52_k"):
        nk, R = int(_thm52_ok(r).sum()), len(r["T"])
        pv.append(float(binomtest(nk, R, p_target, alternative="less").pvalue))
        rows.append((c["k"], r["confidence"], nk, R))
    rej = stats.holm_reject(pv)
    claims.check(
        "xord.thm52_detection_vs_k",
        "Thm 5.2 at k = 120, 240, 480: fraction of runs detecting all patterns with confidence "
        "(1-5c_eta/4)/(alpha(k)+1), which grows with k, not significantly below 1-c-16e^-8",
        not bool(rej.any()),
        measured="; ".join(f"k={k}: {n}/{R} at c_d={cd:.3f}" for k, cd, n, R in rows),
        paper=f">= 1-c-16e^-8 = {p_target:.4f} at every k",
        tolerance="one-sided binomial tests, Holm family at 0.05",
        value={f"k{k}": n for k, _, n, _ in rows},
    )


def claim_lemma_a12(cells, claims) -> None:
    """``xord.lemma_a1_init`` (violations of Lemma A.1 consistent with its bound, exact binomial tails below
    Hoeffding's) and ``xord.lemma_a2_init`` (largest ``|w_0 . x_i| / (eta/4)`` at most 1)."""
    from scipy.stats import binomtest

    (c, r), = part(cells, "lemma_a12")
    R, viol = c["R"], r["violations"]
    p_a1 = float(binomtest(viol, R, XL.lemma_a1_bound(), alternative="greater").pvalue)
    tail_ratio = max(XL.lemma_a1_exact_tail(k) for k in (120, 240, 480, 960)) / (2 * math.exp(-8))
    claims.check(
        "xord.lemma_a1_init",
        "Lemma A.1: | |W0+(1) u W0+(3)| - k/2 | <= 2 sqrt k (and for the u's) with probability "
        ">= 1 - 4e^-8 (k=120, Thm 5.2 initialization); exact binomial tails below Hoeffding's 2e^-8",
        p_a1 >= 0.05 and tail_ratio <= 1,
        measured=f"{viol} violations in {R} draws (p = {p_a1:.2f}); "
        f"largest exact tail / 2e^-8 = {tail_ratio:.2f} (k=120..960)",
        paper="P[violation] <= 4e^-8",
        tolerance="one-sided binomial test p >= 0.05; exact tail <= 2e^-8",
        value={"violations": viol, "p_value": p_a1, "tail_ratio": tail_ratio},
    )
    claims.at_most(
        "xord.lemma_a2_init",
        "Lemma A.2: max_j,i |w0.x_i|, |u0.x_i| <= eta/4 (failure probability "
        "sqrt(2k)/(sqrt(pi) e^8k)); largest ratio over all draws",
        r["ratio_a2"], 1.0, paper="<= eta/4",
    )


def thm53_summary(r: dict) -> dict:
    """The numbers of Theorem 5.3 from a ``thm53`` cell's result: failure fraction ``f_bad`` and its ``se``,
    ``P[E | converged]``, the proof's intermediate frequencies, and the test errors of the wrong minima."""
    from cnnbias import stats

    conv = torch.tensor(r["T"]) >= 0
    real = torch.tensor(r["realizes"])
    a, b, c, d, E = (torch.tensor(r[x]) for x in ("a", "b", "c", "d", "E"))
    bad = conv & ~real
    f_bad, se_bad = (float(v) for v in stats.mean_se(bad.double()))
    nconv = int(conv.sum())
    both = ~a & ~b & conv
    det = torch.tensor(r["det"], dtype=torch.float64)
    te = torch.tensor(r["test_error"], dtype=torch.float64)
    te_half = torch.tensor(r["test_error_half"], dtype=torch.float64)
    bound = XL.thm53_error_bound(P53, P53)
    te_bad = te[bad]
    return {
        "R": len(r["T"]), "n_conv": nconv, "f_bad": f_bad, "se_bad": se_bad,
        "pE": float((E & conv).sum()) / nconv, "p_both": float(both.sum()) / nconv,
        "p_cd": float((both & ~c & ~d).sum()) / max(1, int(both.sum())),
        "freq": {x: float((t & conv).double().mean()) for x, t in zip("abcd", (a, b, c, d))},
        "e_implies_fail": int((E & conv & real).sum()),
        "undetected": int(((det <= 2 * (1 / 41)).any(-1) & E & conv).sum()), "n_E": int((E & conv).sum()),
        "bad_outside_E": int((bad & ~E).sum()), "n_bad": int(bad.sum()), "bound": bound,
        "min_bad": float(te_bad.min()) if te_bad.numel() else math.inf,
        "n_below": int((te_bad < bound * (1 - 1e-9)).sum()),
        "n_tie": int((bad & (te_half < te)).sum()),
        "n_half_below": int((bad & (te_half < bound * (1 - 1e-9))).sum()),
    }


def claim_thm53(cells, claims) -> None:
    """``xord.thm53_small_net_fails``, ``xord.thm53_conditions`` and ``xord.thm53_error_floor`` (Theorem 5.3,
    both parts)."""
    (_, r), = part(cells, "thm53")
    s = thm53_summary(r)
    claims.check(
        "xord.thm53_small_net_fails",
        "k=2: fraction of runs converging to a global minimum that does not realize f* "
        "(non-zero test error) is not significantly below 33/48",
        s["f_bad"] + 2 * s["se_bad"] >= 33 / 48,
        measured=f"{s['f_bad']:.4f} +- {s['se_bad']:.4f} ({s['R']} runs)",
        paper=">= 33/48 = 0.6875",
        tolerance="fraction + 2 SE >= 33/48",
    )
    claims.check(
        "xord.thm53_conditions",
        "k=2: E (conditions a-d) implies failure and an undetected pattern at c_d = 2c_eta",
        s["e_implies_fail"] == 0 and s["undetected"] == s["n_E"],
        measured=f"{s['e_implies_fail']} counterexamples; P[E|conv]={s['pE']:.3f}",
        paper="E => N != f*, P[E|conv] >= 11/12",
        tolerance="0 counterexamples",
    )
    claims.check(
        "xord.thm53_error_floor",
        "Thm 5.3 part 2: on the D of App. A.6 (p+-=0.92) every k=2 global minimum with non-zero test "
        "error has test error >= min{(1-p+)/4, (1-p-)/4} (0-1 error of sign N, as in the paper)",
        s["n_below"] == 0,
        measured=f"smallest {s['min_bad']:.4f} over {s['n_bad']} wrong minima; {s['n_below']} below",
        paper=f">= {s['bound']:.2f}",
        tolerance="0 runs below (relative 1e-9)",
        value={"min_error": s["min_bad"], "n_below": s["n_below"]},
    )


def claim_xor_converges(cells, claims) -> None:
    """``xord.xor_converges``: every XOR run reaches zero loss within the bound of Theorem B.5."""
    rows, ok = [], True
    for c, r in part(cells, "xor"):
        tmax = max(r["epochs"])
        ok &= all(r["converged"]) and tmax <= r["bound"]
        rows.append((c["k"], tmax))
    claims.check(
        "xord.xor_converges",
        "XOR (Sec. B), c_eta=1: every run reaches zero hinge loss within 4k/(k-2 sqrt k)+40 iterations",
        ok,
        measured="; ".join(f"k={k}: max {t} it" for k, t in rows),
        paper="<= 4k/(k-2sqrt k)+40 (Thm B.5)",
        tolerance="all runs",
    )


# -- xord.sample_complexity ----------------------------------------------------------------------------------------
def sample_complexity_cells(scale: str) -> list[dict]:
    """The cells of ``xord.sample_complexity``: ``k = 120`` at ``m = 1`` (``R41_type`` runs per training pair),
    then ``k = 2`` at each ``m`` of ``ms41`` (``R41_k2`` runs)."""
    if scale not in CONFIGS:
        raise ValueError(f"scale must be one of {', '.join(CONFIGS)}, got {scale!r}")
    c = CONFIGS[scale]
    return [{"k": 120, "m": 1, "R": c["R41_type"], "max_epochs": c["max_steps41_k120"]},
            *({"k": 2, "m": m, "R": c["R41_k2"], "max_epochs": c["max_steps41_k2"]} for m in c["ms41"])]


def sample_complexity_cell(cfg: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """``k = 120`` (``m = 1``, stratified: :func:`~cnnbias.experiments.xord_sample_complexity.thm41_type_runs`,
    ``c_eta = 1/410``, ``gamma = 8``) or ``k = 2`` at ``m`` points per class
    (:func:`~cnnbias.experiments.xord_sample_complexity.thm41_runs`, ``c_eta = 1/41``, ``gamma = 1``) on the
    ``D`` of Theorem 5.3, part 2, with ``p+- = 0.92``: per-run ``gen_error``, ``test_error``, ``train_error``,
    ``converged`` (and ``type``, ``type_prob`` for ``k = 120``).  Runs on the CPU in float64."""
    _need(cfg, "k", "m", "R", "max_epochs")
    k, m = cfg["k"], cfg["m"]
    if k == 120:
        if m != 1:
            raise ValueError(f"cfg['m'] must be 1 for k = 120 (m1 <= 2 of Theorem 4.1), got {m}")
        r = SC.thm41_type_runs("xord.thm41_m1", 120, 1 / 410, 8.0, cfg["R"], P41, P41, cfg["max_epochs"])
    elif k == 2:
        r = SC.thm41_runs("xord.thm41_k2", 2, 1 / 41, 1.0, [m], cfg["R"], P41, P41, cfg["max_epochs"])
    else:
        raise ValueError(f"cfg['k'] must be 120 or 2 (Theorem 4.1), got {k}")
    keys = ("gen_error", "test_error", "train_error", "converged") + (("type", "type_prob") if k == 120 else ())
    return {key: r[key].tolist() for key in keys}


def thm41_summary(cells: list[tuple[dict, dict]]) -> dict:
    """Theorem 4.1 measured from the cells of ``xord.sample_complexity``: ``P1`` and ``P1_se`` (success at
    ``k = 120``, ``m = 1``), ``succ2`` (``{m: (successes, runs)}`` at ``k = 2``), ``m2_meas``, ``m2_bound``,
    ``small_ms`` (``m`` with ``2m`` below the bound), their p-values ``pv`` and Holm rejections ``rej``,
    ``fail_small`` (the smallest failure fraction among them) and the per-pair counts ``pairs``."""
    from scipy.stats import binomtest

    from cnnbias import stats

    (_, r1), = [(c, r) for c, r in cells if c["k"] == 120]
    runs1 = {key: torch.tensor(r1[key]) for key in ("gen_error", "type", "type_prob")}
    runs1["gen_error"] = runs1["gen_error"].double()
    P1, P1_se = SC.stratified_success(runs1, EPS41)
    k2 = [(c, r) for c, r in cells if c["k"] == 2]
    runs2 = {"gen_error": torch.tensor([e for _, r in k2 for e in r["gen_error"]], dtype=torch.float64),
             "m": torch.tensor([c["m"] for c, r in k2 for _ in r["gen_error"]])}
    succ2 = SC.success_by_m(runs2, EPS41)
    m2_bound = T.thm41_m2_lower(P41, P41, DELTA41)
    small_ms = [m for m in sorted(succ2) if 2 * m < m2_bound]
    pv = [float(binomtest(succ2[m][1] - succ2[m][0], succ2[m][1], DELTA41, alternative="less").pvalue)
          for m in small_ms]
    ok1 = runs1["gen_error"] <= EPS41 + 1e-12
    pairs = [(int(ok1[runs1["type"] == i].sum()), int((runs1["type"] == i).sum())) for i in range(9)]
    return {"P1": P1, "P1_se": P1_se, "succ2": succ2, "m2_meas": SC.sample_complexity(succ2, DELTA41),
            "m2_bound": m2_bound, "small_ms": small_ms, "pv": pv, "rej": stats.holm_reject(pv),
            "fail_small": min(1 - succ2[m][0] / succ2[m][1] for m in small_ms), "pairs": pairs}


def claim_thm41_gap_measured(cells, claims) -> None:
    """``xord.thm41_gap_measured``: ``k = 120`` reaches success probability ``1 - delta`` with 2 points (up to 2
    standard errors) and ``k = 2`` fails with probability at least ``delta`` at every ``2m`` below the bound of
    Theorem 4.1 (one-sided exact binomial tests, Holm at 0.05)."""
    s = thm41_summary(cells)
    m1_txt = "2" if s["P1"] >= 1 - DELTA41 else "> 2"
    m2_txt = f"{s['m2_meas']:.0f}" if math.isfinite(s["m2_meas"]) else f"> {2 * max(s['succ2'])}"
    claims.check(
        "xord.thm41_gap_measured",
        "Thm 4.1 measured (p+-=0.92, delta=0.16, eps=0.01, D of App. A.6): k=120 reaches "
        "P[gen error <= eps] >= 1-delta with 2 points (m1 <= 2), and k=2 fails with probability "
        ">= delta at every 2m below the bound (m2 >= bound)",
        s["P1"] + 2 * s["P1_se"] >= 1 - DELTA41 and not bool(s["rej"].any()),
        measured=f"k=120, m=1: P[success] {s['P1']:.4f}; k=2 failure >= {s['fail_small']:.2f} at 2m <= "
        f"{2 * max(s['small_ms'])} (Holm rejects {int(s['rej'].sum())}); measured m1 = {m1_txt}, "
        f"m2 = {m2_txt}",
        paper=f"m1 <= 2, m2 >= {s['m2_bound']:.2f} (paper: >= 17)",
        tolerance="P1 + 2 SE >= 0.84; one-sided binomial tests, Holm at 0.05",
        value={"P1": s["P1"], "fail_small_min": s["fail_small"]},
    )


# -- the sweeps and their claims -----------------------------------------------------------------------------------
from cnnbias.sweeps.spec import ClaimSpec as _ClaimSpec  # noqa: E402  (the sweep declarations end the module)
from cnnbias.sweeps.spec import Sweep as _Sweep  # noqa: E402
from cnnbias.sweeps.spec import register as _register  # noqa: E402
from cnnbias.sweeps.spec import register_claim as _register_claim  # noqa: E402

_CODE = ("cnnbias.config", "cnnbias.engine", "cnnbias.data.xord", "cnnbias.models.init", "cnnbias.models.maxpool",
         "cnnbias.theory.xord", "cnnbias.theory.xord_lemmas", "cnnbias.experiments.xord", "cnnbias.stats")

SWEEP_DYNAMICS = _register(_Sweep(
    "xord.dynamics", dynamics_cell, cells={s: dynamics_cells(s) for s in CONFIGS}, code=_CODE,
    description="XORD Sec. 3-5, App. A.5-A.7, B: Eq. 5-6, k=1, Thm 5.2/5.3, Lemmas A.1/A.2/A.4/A.9, XOR",
    label=lambda c: ",".join([c["part"], *(f"{k}={c[k]}" for k in ("k", "R", "n", "steps") if k in c)]),
    cpu_only=True,
))
SWEEP_SAMPLE_COMPLEXITY = _register(_Sweep(
    "xord.sample_complexity", sample_complexity_cell, cells={s: sample_complexity_cells(s) for s in CONFIGS},
    code=(*_CODE, "cnnbias.experiments.xord_sample_complexity"),
    description="XORD Theorem 4.1 measured: m1 (k=120, 2 points) and m2 (k=2) on the D of Thm 5.3 part 2",
    label=lambda c: f"k={c['k']},m={c['m']}",
    cpu_only=True,
))


def _sel(name: str):
    return lambda c: c["part"] == name


for _id, _part, _fn in (
    ("xord.eq56_matches_gd", "eq56_check", claim_eq56_matches_gd),
    ("xord.k1_cannot_realize", "k1_search", claim_k1_cannot_realize),
    ("xord.thm52_overparam_detects_all", "thm52", claim_thm52),
    ("xord.lemma_a4_sets_fixed", "thm52", claim_thm52),
    ("xord.s_plus_nondecreasing", "thm52", claim_s_plus),
    ("xord.lemma_a9_increment", "thm52", claim_s_plus),
    ("xord.thm52_detection_vs_k", "thm52_k", claim_thm52_vs_k),
    ("xord.lemma_a1_init", "lemma_a12", claim_lemma_a12),
    ("xord.lemma_a2_init", "lemma_a12", claim_lemma_a12),
    ("xord.thm53_small_net_fails", "thm53", claim_thm53),
    ("xord.thm53_conditions", "thm53", claim_thm53),
    ("xord.thm53_error_floor", "thm53", claim_thm53),
    ("xord.xor_converges", "xor", claim_xor_converges),
):
    _register_claim(_ClaimSpec(_id, "xord.dynamics", _fn, select=_sel(_part)))
_register_claim(_ClaimSpec("xord.thm41_gap_measured", "xord.sample_complexity", claim_thm41_gap_measured))
