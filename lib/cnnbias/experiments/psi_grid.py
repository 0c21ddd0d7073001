"""PSI paper (book key ``psi_orthogonal``), Sec. 7, App. C-F: the sweeps of the PSI chapter.

Three sweeps, declared at the end of the module:

- ``psi.grid``: the trained networks of Figs. 1a, 1b, 1c and 3 (App. E.3-E.5).  One cell is one point
  ``(dist, n, d, k, m, R, kappa, p)`` of the grid with its ``R`` runs trained as one batched program by
  :func:`cnnbias.experiments.psi.run_cell` (through ``cnnbias.experiments.psi.GridCells``, so the
  learning rate is ``eta = max(kappa / k, 1e-7)``, the batch 100 for ``k <= 2500`` and 20 above, and the
  seeds are those of the experiment ``"psi.grid"``).  A point used by several figures (e.g. a Fig. 1b
  point that is also a Fig. 3 point) is one cell whose ``figs`` lists them.  Each cell returns per run
  ``c_star`` (Eq. 10 with ``b = 2``), the detection ratios (Eq. 2), the pattern statistics (Eq. 4), the
  Eq. 3 lower bounds, the Eq. 9 test and the test error.
- ``psi.thm61``: Theorem 6.1's union-bound step (App. C): ``max_i |s_i|`` over the spurious patterns for
  many independent training sets of ``D_u``, compared with ``(d - 2) 2 exp(-m t^2 / 2)``.
- ``psi.thm71``: Theorem 7.1 (App. F): exact gradient descent on two points, one cell per ``c_eta``
  (``eta = c_eta / k``), compared with the closed forms of Lemma F.5 and the convergence step of
  Lemma F.6.

The claim functions (``claim_*``) take the ``(config, result)`` pairs of their cells and add the
chapter's claims to a :class:`cnnbias.claims.Claims`; the chapter calls them at book scale and
``python -m cnnbias reproduce <id>`` at any scale with stored cells.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cnnbias import config, stats
from cnnbias.data import patterns as pat
from cnnbias.experiments import psi as PE
from cnnbias.theory import psi
from cnnbias.theory import two_point as tp

__all__ = [
    "PAPER_PS",
    "CONFIGS",
    "B",
    "RHO0",
    "FIGS",
    "grid_cells",
    "grid_cell",
    "as_tensors",
    "select",
    "kappa_rows",
    "fig1c_stats",
    "eq3_stats",
    "eq9_rows",
    "thm61_cells",
    "thm61_cell",
    "thm61_table",
    "thm71_cells",
    "thm71_cell",
    "thm71_summary",
    "claim_cstar_small",
    "claim_cstar_vs_k",
    "claim_cstar_vs_m",
    "claim_ratio_tracks_statistics",
    "claim_eq3",
    "claim_eq9_zero_test_error",
    "claim_thm61",
    "claim_thm71",
]

#: The 28 values of ``p`` of ``D_p`` in Fig. 1c (App. E.5).
PAPER_PS = [0.0, 0.01, 0.03, 0.05, 0.07, 0.1, 0.12, 0.2, 0.21, 0.28, 0.3, 0.4, 0.44, 0.5, 0.51, 0.59, 0.6,
            0.68, 0.7, 0.78, 0.8, 0.9, 0.91, 0.94, 0.95, 0.98, 0.99, 1.0]

#: The chapter's settings per scale (grid of Fig. 1a, Figs. 1b/3 sweeps, Fig. 1c, Thm. 6.1, Thm. 7.1,
#: Lemmas F.1-F.3).
CONFIGS = {
    "smoke": dict(
        grid_u=[(10, 20)], grid_vc=[(10, 20)], k=[20], m=[50, 200], R=2,
        k1b=[10, 40], m1b=200, m3=[50, 100, 200], k3=20, n3=10, d3=20,
        n1c=20, d1c=30, k1c=20, m1c=200, ps=[0.0, 0.5, 1.0], R1c=1,
        kappa=0.05, check_every=5, sigma_g=1e-6, max_epochs=500, max_epochs_1c=500, m_test=200,
        tp_n=6, tp_d=15, tp_k=50, tp_R=4, tp_c=[0.2, 0.8],
        thm61_sets=50, thm61_m=200, kappas=[0.05, 0.2], R1b=2, R3=2,
        lf_n=4, lf_d=20, lf_k=50, lf_R=100,
    ),
    "book": dict(
        grid_u=[(10, 20), (20, 50)], grid_vc=[(10, 20), (25, 50)], k=[50, 200], m=[100, 500, 2000], R=2,
        k1b=[25, 50, 100, 200], m1b=500, m3=[100, 200, 500, 1000, 2000], k3=100, n3=20, d3=50,
        n1c=40, d1c=60, k1c=100, m1c=1000, ps=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
        R1c=1, kappa=0.05, check_every=5, sigma_g=1e-6, max_epochs=2000, max_epochs_1c=2000, m_test=1000,
        tp_n=10, tp_d=30, tp_k=200, tp_R=8, tp_c=[0.05, 0.1, 0.2, 0.4, 0.8],
        thm61_sets=400, thm61_m=1000, kappas=[0.05, 0.2, 0.8], R1b=8, R3=8,
        lf_n=4, lf_d=30, lf_k=200, lf_R=1000,
    ),
    "paper": dict(
        grid_u=[(10, 20), (10, 80), (20, 50), (40, 60)], grid_vc=[(10, 20), (40, 80), (25, 50), (30, 60)],
        k=[1000, 10000], m=[100, 500, 1000, 2000, 5000, 20000, 40000], R=10,
        k1b=[50, 100, 1000, 2500, 5000, 7500, 10000], m1b=2000,
        m3=[100, 200, 500, 1000, 2000, 5000, 20000, 40000, 80000, 120000], k3=2500, n3=20, d3=50,
        n1c=40, d1c=60, k1c=2500, m1c=1000, ps=PAPER_PS, R1c=1,
        kappa=1e-3, check_every=1, sigma_g=1e-6, max_epochs=50000, max_epochs_1c=2000, m_test=1000,
        tp_n=10, tp_d=30, tp_k=1000, tp_R=20, tp_c=[0.02, 0.05, 0.1, 0.2, 0.4, 0.8],
        thm61_sets=2000, thm61_m=1000, kappas=[1e-3, 0.05, 0.2, 0.8], R1b=10, R3=10,
        lf_n=4, lf_d=30, lf_k=200, lf_R=4000,
    ),
}
#: The ``b`` of Definition 4.1 fixed in the experiments (Sec. 7), used in ``c*`` (Eq. 10).
B = 2.0
#: The null hypothesis of "at most slightly correlated" (Figs. 1b and 3) is Spearman rho <= RHO0.
RHO0 = 0.3
#: The figures a grid cell can belong to.
FIGS = ("1a", "1b", "3", "1c")
#: ``(n, d)`` of ``D_u`` in Fig. 1b, (20, 50) (Sec. 7).
N1B, D1B = 20, 50
#: ``(n, d)`` of the ``D_u`` training sets sampled for Thm. 6.1, (10, 20).
N61, D61 = 10, 20
#: The initialization scale ``sigma_g`` of Thm. 7.1 (much smaller than ``eta``).
SIGMA71 = 1e-9

_GRID_KEYS = ("figs", "dist", "n", "d", "k", "m", "R", "kappa", "max_epochs", "sigma_g", "m_test",
              "check_every", "b", "p")


def _cfg(scale: str) -> dict:
    if scale not in CONFIGS:
        raise ValueError(f"scale must be one of {', '.join(CONFIGS)}, got {scale!r}")
    return CONFIGS[scale]


def grid_cells(scale: str) -> list[dict]:
    """The cells of ``psi.grid`` at ``scale``: the Fig. 1a grid (``D_u`` and ``D_vc``, every ``(n, d)``,
    ``k``, ``m``), then Fig. 1b (every kappa, every ``k``), Fig. 3 (every kappa, every ``m``) and Fig. 1c
    (all values of ``p`` in one cell), in the chapter's order; equal points are one cell (``figs``
    names every figure using it)."""
    c = _cfg(scale)
    base = {"sigma_g": float(c["sigma_g"]), "m_test": int(c["m_test"]), "check_every": int(c["check_every"]),
            "b": B}
    out: dict[tuple, dict] = {}

    def add(fig, dist, n, d, k, m, R, kappa, max_epochs, p=None):
        cell = dict(base, dist=dist, n=int(n), d=int(d), k=int(k), m=int(m), R=int(R), kappa=float(kappa),
                    max_epochs=int(max_epochs), p=None if p is None else [float(v) for v in p])
        key = tuple((name, str(cell[name])) for name in _GRID_KEYS if name != "figs")
        if key in out:
            out[key]["figs"].append(fig)
        else:
            out[key] = dict(cell, figs=[fig])

    for dist, grid in (("u", c["grid_u"]), ("vc", c["grid_vc"])):
        for n, d in grid:
            for k in c["k"]:
                for m in c["m"]:
                    add("1a", dist, n, d, k, m, c["R"], c["kappa"], c["max_epochs"])
    for kap in c["kappas"]:
        for k in c["k1b"]:
            add("1b", "u", N1B, D1B, k, c["m1b"], c["R1b"], kap, c["max_epochs"])
    for kap in c["kappas"]:
        for m in c["m3"]:
            add("3", "u", c["n3"], c["d3"], c["k3"], m, c["R3"], kap, c["max_epochs"])
    p_runs = [p for p in c["ps"] for _ in range(c["R1c"])]  # all values of p train as one program
    add("1c", "p", c["n1c"], c["d1c"], c["k1c"], c["m1c"], len(p_runs), c["kappa"], c["max_epochs_1c"], p_runs)
    return list(out.values())


def _require(cfg, keys, what):
    missing = [k for k in keys if k not in cfg]
    if missing:
        raise ValueError(f"{what} config lacks {', '.join(repr(k) for k in missing)}")


def grid_cell(cfg: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """One grid point: :func:`cnnbias.experiments.psi.run_cell` (experiment ``"psi.grid"``) for the
    ``R`` runs, learning rate ``max(kappa / k, 1e-7)``; its tensors as lists (per run, or ``[R, d]``)."""
    _require(cfg, _GRID_KEYS, "psi.grid")
    if not cfg["figs"] or any(f not in FIGS for f in cfg["figs"]):
        raise ValueError(f"cfg['figs'] must be a non-empty list of {FIGS}, got {cfg['figs']!r}")
    if cfg["dist"] not in ("u", "vc", "p"):
        raise ValueError(f"cfg['dist'] must be 'u', 'vc' or 'p', got {cfg['dist']!r}")
    if (cfg["p"] is None) != (cfg["dist"] != "p"):
        raise ValueError(f"cfg['p'] must be a list of R values exactly for dist 'p', got {cfg['p']!r}")
    if cfg["p"] is not None and len(cfg["p"]) != cfg["R"]:
        raise ValueError(f"cfg['p'] must hold one value per run (R={cfg['R']}), got {len(cfg['p'])}")
    if not (isinstance(cfg["kappa"], (int, float)) and cfg["kappa"] > 0):
        raise ValueError(f"cfg['kappa'] must be a positive number, got {cfg['kappa']!r}")
    grid = PE.GridCells({key: cfg[key] for key in ("kappa", "max_epochs", "sigma_g", "m_test", "check_every")},
                        b=float(cfg["b"]), device=device, dtype=dtype)
    p = tuple(cfg["p"]) if cfg["p"] is not None else None
    r = grid(cfg["dist"], int(cfg["n"]), int(cfg["d"]), int(cfg["k"]), int(cfg["m"]), int(cfg["R"]), p=p,
             max_epochs=int(cfg["max_epochs"]), kappa=float(cfg["kappa"]))
    return {key: v.tolist() for key, v in r.items()}


_INT_KEYS = ("epochs",)
_BOOL_KEYS = ("converged", "eq9")


def as_tensors(result: dict) -> dict[str, torch.Tensor]:
    """A grid cell's result as tensors (float64; ``epochs`` int64; ``converged`` and ``eq9`` bool)."""
    out = {}
    for key, v in result.items():
        if key in _BOOL_KEYS:
            out[key] = torch.tensor(v, dtype=torch.bool)
        elif key in _INT_KEYS:
            out[key] = torch.tensor(v, dtype=torch.long)
        else:
            out[key] = torch.tensor(v, dtype=torch.float64)
    return out


def select(cells, fig: str) -> list[tuple[dict, dict[str, torch.Tensor]]]:
    """The ``(config, tensors)`` of the cells of figure ``fig`` (one of :data:`FIGS`), in declaration order."""
    if fig not in FIGS:
        raise ValueError(f"fig must be one of {FIGS}, got {fig!r}")
    return [(c, as_tensors(r)) for c, r in cells if fig in c["figs"]]


def kappa_rows(cells, fig: str):
    """Fig. 1b (``fig="1b"``, x = k) or Fig. 3 (``fig="3"``, x = m): per kappa (ascending) the Spearman rho
    of (x, c*) over all runs and the one-sided p of H0 rho <= :data:`RHO0`
    (:func:`~cnnbias.experiments.psi.rank_trend_test`), Holm over kappa (:func:`cnnbias.stats.holm_reject`),
    and the mean c* at the largest x.  Returns ``(rows, xs, runs_by_kappa)``."""
    xkey = {"1b": "k", "3": "m"}.get(fig)
    if xkey is None:
        raise ValueError(f"fig must be '1b' or '3', got {fig!r}")
    sel = sorted(select(cells, fig), key=lambda cr: (cr[0]["kappa"], cr[0][xkey]))
    if not sel:
        raise ValueError(f"no cells of figure {fig}")
    kappas = sorted({c["kappa"] for c, _ in sel})
    rows, runs_by, xs = [], {}, None
    for kap in kappas:
        part = [(c[xkey], r["c_star"]) for c, r in sel if c["kappa"] == kap]
        xk = [x for x, _ in part]
        if xs is None:
            xs = xk
        elif xk != xs:
            raise ValueError(f"figure {fig}: kappa={kap} has x values {xk}, kappa={kappas[0]} has {xs}")
        runs = [r for _, r in part]
        xcol = torch.cat([torch.full_like(r, float(v)) for v, r in zip(xk, runs)])
        rho, pv = PE.rank_trend_test(xcol, torch.cat(runs), RHO0)
        runs_by[kap] = runs
        mean, se = stats.mean_se(runs[-1])
        rows.append(dict(kappa=kap, N=xcol.numel(), rho=rho, p=pv, last=float(mean), last_se=float(se)))
    for row, rej in zip(rows, stats.holm_reject([row["p"] for row in rows])):
        row["rejected"] = bool(rej)
    return rows, xs, runs_by


def _trend_claim(cells, claims, fig, cid, what, paper):
    from cnnbias.claims import fmt_se

    rows, xs, _ = kappa_rows(cells, fig)
    kappas = [r["kappa"] for r in rows]
    power = PE.rank_trend_power(rows[0]["N"], 0.8, RHO0, 0.05 / len(kappas))  # Holm's strictest level
    ok = all(not r["rejected"] and B**2 * r["last"] ** 2 < 10 for r in rows)
    return claims.check(
        cid,
        f"c* at most slightly correlated with {what} at every kappa in {kappas} (H0 Spearman "
        f"rho <= {RHO0} not rejected; one-sided Fisher z, Holm family over kappa), and "
        f"b^2 mean(c*)^2 < 10 at {what}={xs[-1]}",
        ok,
        measured="; ".join(
            f"kappa={r['kappa']:g}: rho={r['rho']:.2f} (p={r['p']:.1g}"
            f"{', rejected' if r['rejected'] else ''}), mean c*={fmt_se(r['last'], r['last_se'])}"
            for r in rows
        ),
        paper=paper,
        tolerance=f"Holm alpha=0.05 over {len(rows)} kappa; power >= {power:.2f} against rho=0.8",
        value={f"rho_kappa={r['kappa']:g}": r["rho"] for r in rows},
    )


def claim_cstar_small(cells, claims):
    """``psi.cstar_small``: ``b^2 c*^2 < 10`` (``b = 2``) for every network of the Fig. 1a grid (Sec. 7)."""
    cs = torch.cat([r["c_star"] for _, r in select(cells, "1a")])
    worst = float(cs.max())
    return claims.at_most(
        "psi.cstar_small",
        "b^2 c*^2 < 10 (b = 2) for every trained network of the Fig. 1a grid",
        B**2 * worst**2,
        10.0,
        paper="c* < 1 in all experiments, i.e. b^2 c*^2 < 10 (Sec. 7, Fig. 1a)",
    )


def claim_cstar_vs_k(cells, claims):
    """``psi.cstar_vs_k`` (Fig. 1b): c* at most slightly correlated with k at every kappa."""
    return _trend_claim(cells, claims, "1b", "psi.cstar_vs_k", "k",
                        "c* at most slightly correlated with k, low value for large k (Sec. 7, Fig. 1b)")


def claim_cstar_vs_m(cells, claims):
    """``psi.cstar_vs_m`` (Fig. 3, App. D): c* at most slightly correlated with m at every kappa."""
    return _trend_claim(cells, claims, "3", "psi.cstar_vs_m", "m",
                        "c* at most slightly correlated with m, low for large m (App. D, Fig. 3)")


def fig1c_stats(cells) -> dict:
    """Fig. 1c: the pairs ``(max(-s_i/s_1, 0), M_u^+(i)/M_w^+(1))``, ``i`` in ``P_s`` and ``P_+`` (``X``, ``Y``,
    ``finite``), their pooled Spearman ``rho``, its jackknife standard error ``se`` over the ``G``
    independent networks, and ``c_line``, the lowest ``c`` of the PSI line with ``b = 2`` above all pairs."""
    sel = select(cells, "1c")
    if len(sel) != 1:
        raise ValueError(f"figure 1c must have exactly one cell, got {len(sel)}")
    c, r = sel[0]
    keep = torch.ones(c["d"], dtype=torch.bool)
    keep[1] = False
    Xn = torch.clamp(-r["s"] / r["s"][:, :1], min=0)[:, keep]
    Yn = r["ratio_pos"][:, keep]
    X, Y = Xn.reshape(-1), Yn.reshape(-1)
    finite = torch.isfinite(Y)
    rho = stats.spearman(X[finite], Y[finite])
    c_line = float(((Y[finite] - B * X[finite]).max() * math.sqrt(c["m"])).clamp(min=0))
    # the pairs of one network share its training run: the independent units are the networks, so the
    # standard error of the pooled rho is the jackknife over networks (leave one network out)
    G = Xn.shape[0]
    jack = []
    for g in range(G):
        keep_g = torch.arange(G) != g
        fin = torch.isfinite(Yn[keep_g].reshape(-1))
        jack.append(stats.spearman(Xn[keep_g].reshape(-1)[fin], Yn[keep_g].reshape(-1)[fin]))
    jack = np.array(jack)
    se = math.sqrt((G - 1) / G * float(((jack - jack.mean()) ** 2).sum()))
    return dict(config=c, X=X, Y=Y, finite=finite, rho=rho, se=se, c_line=c_line, G=G)


def claim_ratio_tracks_statistics(cells, claims):
    """``psi.ratio_tracks_statistics`` (Fig. 1c): positive rank correlation of detection ratios and
    ``max(-s_i/s_1, 0)``, at least two jackknife standard errors above 0."""
    f = fig1c_stats(cells)
    return claims.greater(
        "psi.ratio_tracks_statistics",
        "positive rank correlation between M_u^+(i)/M_w^+(1) and max(-s_i/s_1, 0) (Fig. 1c; "
        "pooled Spearman rho, jackknife standard error over the independent networks)",
        f["rho"], 0.0, f["se"], paper="clear positive correlation (Fig. 1c)")


def eq3_stats(cells) -> dict:
    """Eq. 3 and Eq. 9 over the networks of the Fig. 1a grid: the slack of the Eq. 3 bounds
    (``min_gap``), per network the Eq. 3 sum ``max(sum_i M_u^+(i)/M_w^+(1), sum_i M_w^-(i)/M_u^-(2))``
    (``sums``), its ``m`` (``ms``), whether Eq. 9 fails (``viol``) and the test errors (``errs``); the
    Spearman rho of (m, -sum) with the one-sided p of H0 rho <= 0 (``rho``, ``p``); the Eq. 9 violation
    fractions at the smallest and largest m with their binomial standard error."""
    gap_p, gap_n, sums, ms, viol, errs = [], [], [], [], [], []
    for c, r in select(cells, "1a"):
        gap_p.append(r["out_pos_min"] - r["eq3_pos"])
        gap_n.append(-r["out_neg_max"] - r["eq3_neg"])
        s_pos = torch.nan_to_num(r["ratio_pos"], nan=0.0).sum(-1)
        s_neg = torch.nan_to_num(r["ratio_neg"], nan=0.0).sum(-1)
        sums.append(torch.maximum(s_pos, s_neg))
        ms.append(torch.full_like(s_pos, float(c["m"])))
        viol.append(~r["eq9"])
        errs.append(r["test_err"])
    gap_p, gap_n, sums = torch.cat(gap_p), torch.cat(gap_n), torch.cat(sums)
    ms, viol = torch.cat(ms), torch.cat(viol)
    rho, p = PE.rank_trend_test(ms, -sums, 0.0)  # H0: rho(m, -sum) <= 0, the sum does not fall with m
    m_lo, m_hi = float(ms.min()), float(ms.max())
    v_lo, v_hi = viol[ms == m_lo].double(), viol[ms == m_hi].double()
    f_lo, f_hi = float(v_lo.mean()), float(v_hi.mean())
    se_v = math.sqrt(f_lo * (1 - f_lo) / v_lo.numel() + f_hi * (1 - f_hi) / v_hi.numel())
    return dict(min_gap=float(torch.minimum(gap_p, gap_n).min()), sums=sums, ms=ms, viol=viol,
                errs=torch.cat(errs), rho=rho, p=p, m_lo=int(m_lo), m_hi=int(m_hi), v_lo=v_lo, v_hi=v_hi,
                f_lo=f_lo, f_hi=f_hi, se_v=se_v)


def claim_eq3(cells, claims):
    """``psi.eq3_sums_fall`` and ``psi.eq9_violations_fall`` on the Fig. 1a grid (and the library check
    ``psi.eq3_bound_valid``: the Eq. 3 lower bounds hold at every test point)."""
    e = eq3_stats(cells)
    ok_gap = e["min_gap"] >= -1e-9
    claims.checks.check(
        "psi.eq3_bound_valid",
        "Eq. 3 lower bounds hold at every test point of every trained network (slack >= 0)",
        passed=ok_gap,
        measured="min slack >= -1e-9" if ok_gap else f"min slack {e['min_gap']:.3e}",
        paper="Eq. 3",
        tolerance="slack >= -1e-9",
    )
    claims.check(
        "psi.eq3_sums_fall",
        "the Eq. 3 sum of detection ratios falls as m grows (Spearman rho(m, sum) < 0, one-sided "
        "Fisher z test of H0 rho >= 0 at level 0.05, independent networks of the Fig. 1a grid)",
        passed=e["p"] < 0.05,
        measured=f"rho = {-e['rho']:.2f}, p = {e['p']:.1g}, N = {e['sums'].numel()}",
        paper="PSI: ratios <= b max(-s_i/s_1, 0) + c/sqrt(m), with |s_i| = O(sqrt(log d / m)) for "
        "spurious i (Def. 4.1, App. C)",
        tolerance="p < 0.05",
        value=-e["rho"],
    )
    claims.greater(
        "psi.eq9_violations_fall",
        f"fewer networks violate Eq. 9 (a spurious detection ratio >= 1/d) at m={e['m_hi']} than at "
        f"m={e['m_lo']}",
        e["f_lo"],
        e["f_hi"],
        e["se_v"],
        paper="Eq. 9 holds once m is large (App. C, D)",
    )


def eq9_rows(cells) -> tuple[int, int, list[tuple]]:
    """App. D at the largest ``k`` and ``m`` of the Fig. 1a grid: ``(kmax, mmax, rows)`` with one row
    ``(dist, n, d, runs with Eq. 9, runs, max spurious ratio, 1/d, max test error)`` per ``(n, d)``."""
    sel = select(cells, "1a")
    kmax, mmax = max(c["k"] for c, _ in sel), max(c["m"] for c, _ in sel)
    rows = []
    for c, r in sel:
        if c["k"] == kmax and c["m"] == mmax:
            rows.append((c["dist"], c["n"], c["d"], int(r["eq9"].sum()), r["eq9"].numel(),
                         float(r["eq9_worst"].max()), 1 / c["d"], float(r["test_err"].max())))
    return kmax, mmax, rows


def claim_eq9_zero_test_error(cells, claims):
    """``psi.eq9_zero_test_error`` (App. D): at the largest ``k`` and ``m`` Eq. 9 holds and the test
    error is 0 in every run."""
    kmax, mmax, rows = eq9_rows(cells)
    ok9 = all(held == n_runs and err == 0.0 for _, _, _, held, n_runs, _, _, err in rows)
    return claims.check(
        "psi.eq9_zero_test_error",
        f"at the largest k={kmax} and m={mmax}: Eq. 9 (all spurious detection "
        "ratios < 1/d) holds and the test error is 0 in every run, for every (n, d) and distribution",
        passed=ok9,
        measured="; ".join(
            f"{a}({b},{c}): {h}/{R_} runs, err {e:.3f}" for a, b, c, h, R_, _, _, e in rows
        ),
        paper="Eq. 9 holds and 0 test error at k=10^4, m=4*10^4 (App. D)",
        tolerance="all runs",
    )


# -- Theorem 6.1 ----------------------------------------------------------------------------------

def thm61_cells(scale: str) -> list[dict]:
    """The one cell of ``psi.thm61`` at ``scale``: ``D_u`` with ``(n, d) = (10, 20)``, ``m`` points,
    ``sets`` independent training sets."""
    c = _cfg(scale)
    return [{"n": N61, "d": D61, "m": int(c["thm61_m"]), "sets": int(c["thm61_sets"])}]


def thm61_cell(cfg: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """``sets`` training sets of ``D_u`` (seeds of experiment ``"psi.thm61"``): ``max_spurious`` =
    ``max_i |s_i|`` over the spurious patterns per set, and the failures of the three events of App. C
    at the Eq. 8 threshold ``4 sqrt(log d / m)`` (:func:`cnnbias.theory.psi.thm61_events`)."""
    _require(cfg, ("n", "d", "m", "sets"), "psi.thm61")
    for key in ("n", "d", "m", "sets"):
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < 1:
            raise ValueError(f"cfg[{key!r}] must be a positive integer, got {cfg[key]!r}")
    n, d, m, S = cfg["n"], cfg["d"], cfg["m"], cfg["sets"]
    gens = config.generators("psi.thm61", {"n": n, "d": d, "m": m}, S)
    idx, y = pat.stack_runs(pat.sample_Du, gens, m=m, n=n, d=d)
    ev = psi.thm61_events(psi.pattern_statistics(idx, y, d), m, d)
    return {"max_spurious": ev["max_spurious"].tolist(),
            "fails": {key: int((~ev[key]).sum()) for key in ("spurious", "s1", "s2")},
            "threshold": float(psi.thm61_spurious_threshold(d, m))}


def thm61_table(cfg: dict, result: dict) -> dict:
    """Failure probability of ``max_i |s_i| > t`` on 8 values of ``t`` where the union bound
    ``(d - 2) 2 exp(-m t^2 / 2)`` (App. C) runs from 1 down to ``1e-3``: ``ts``, ``n_fail``, ``emp``,
    ``bound``, exact binomial p-values of H0 "failure probability <= bound" and Holm's rejections."""
    n_sets, d, m = cfg["sets"], cfg["d"], cfg["m"]
    ms = np.array(result["max_spurious"])
    t_hi = math.sqrt(2 * math.log((d - 2) * 2 / 1e-3) / m)
    t_lo = math.sqrt(2 * math.log((d - 2) * 2) / m)
    ts = np.linspace(t_lo, t_hi, 8)
    n_fail = np.array([int((ms > t).sum()) for t in ts])
    bound = np.minimum(1.0, (d - 2) * 2 * np.exp(-m * ts**2 / 2))
    pvals = [PE.binomial_excess_pvalue(int(f), n_sets, float(b)) for f, b in zip(n_fail, bound)]
    return dict(ts=ts, n_fail=n_fail, emp=n_fail / n_sets, bound=bound, pvals=pvals,
                rejected=stats.holm_reject(pvals))


def claim_thm61(cells, claims):
    """``psi.thm61_failure_prob``: the measured failure probability is at most the union bound at every
    ``t`` (one Holm family of exact binomial tests)."""
    [(cfg, res)] = cells
    t = thm61_table(cfg, res)
    S = cfg["sets"]
    return claims.check(
        "psi.thm61_failure_prob",
        "the measured probability that some spurious statistic exceeds t is at most the "
        "Hoeffding-union "
        "bound (d-2) 2 exp(-m t^2/2) of App. C at every t of a grid where the bound is in [1e-3, 1] "
        "(exact binomial tests over independent training sets, one Holm family)",
        passed=not bool(t["rejected"].any()),
        measured="; ".join(
            f"t={x:.3f}: {int(f)}/{S} vs {b:.2g}" for x, f, b in zip(t["ts"], t["n_fail"], t["bound"])
        ),
        paper="P[max_i |s_i| > t] <= (d-2) 2 exp(-m t^2 / 2); union bound 4/d^3 at Eq. 8 (App. C)",
        tolerance=f"Holm alpha=0.05 over {len(t['ts'])} t",
        value={f"t={x:.3f}": float(e) for x, e in zip(t["ts"], t["emp"])},
    )


# -- Theorem 7.1 ----------------------------------------------------------------------------------

def thm71_cells(scale: str) -> list[dict]:
    """The cells of ``psi.thm71`` at ``scale``: one per ``c_eta`` (the same ``R`` two-point sets and
    initializations in every cell)."""
    c = _cfg(scale)
    return [{"n": int(c["tp_n"]), "d": int(c["tp_d"]), "k": int(c["tp_k"]), "R": int(c["tp_R"]),
             "sigma_g": SIGMA71, "c_eta": float(ce)} for ce in c["tp_c"]]


def thm71_cell(cfg: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """Exact GD on two points (:func:`cnnbias.theory.two_point.gd_two_point`, ``eta = c_eta / k``) for
    ``R`` runs (seeds of experiment ``"psi.thm71"``), up to ``T_max = 20 / (c_eta gamma) + 50`` steps.

    Returns per run ``T`` (steps to zero loss), ``tstar`` (first margin one), ``tpred`` (Lemma F.6's
    ``min(t_+, t_-)``), ``converged`` and ``cstar`` (Eq. 10 with ``b = 1``, ``m = 2``); ``max_dev``, the
    largest ``|W_t - Lemma F.5|`` at the checked ``t <= t*`` (``t`` in 1, 2, 3, n-1, n, t*/2, t*);
    run 0's outputs ``out0`` ``[T_0 + 6, 2]`` and category counts ``counts0`` (``|B_q|``, q = 0..8)."""
    _require(cfg, ("n", "d", "k", "R", "sigma_g", "c_eta"), "psi.thm71")
    for key in ("n", "d", "k", "R"):
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < 1:
            raise ValueError(f"cfg[{key!r}] must be a positive integer, got {cfg[key]!r}")
    for key in ("sigma_g", "c_eta"):
        if not isinstance(cfg[key], (int, float)) or not cfg[key] > 0:
            raise ValueError(f"cfg[{key!r}] must be a positive number, got {cfg[key]!r}")
    n, d, k, R, c_eta = cfg["n"], cfg["d"], cfg["k"], cfg["R"], float(cfg["c_eta"])
    gens = config.generators("psi.thm71", {"n": n, "d": d, "k": k}, R)
    data = tp.sample_two_point(R, n, d, gens)
    W0 = torch.stack([cfg["sigma_g"] * torch.randn(2 * k, d, generator=g, dtype=torch.float64) for g in gens])
    s = psi.pattern_statistics(data.idx, data.y, d)
    T_max = int(20 / (c_eta * tp.gamma(n))) + 50
    tpl, tmn, counts = tp.predicted_convergence(W0, data, c_eta)
    tpred = torch.minimum(tpl, tmn)
    # compare with Lemma F.5 at t = 1, 2, 3, n-1, n, and at each run's predicted t* and t*/2
    check_t = sorted({1, 2, 3, n - 1, n} | set(tpred.tolist()) | set((tpred // 2).clamp(min=1).tolist()))
    run = tp.gd_two_point(W0, data, c_eta, T_max, record=check_t)
    tstar = run.first_margin()
    max_dev = 0.0
    for t in check_t:
        pred = tp.lemma_f5_predict(W0, data, c_eta, t)
        live = tstar >= t
        if bool(live.any()):
            max_dev = max(max_dev, float((pred - run.history[t]).abs()[live].max()))
    T0 = int(run.T[0])
    return {"T": run.T.tolist(), "tstar": tstar.tolist(), "tpred": tpred.tolist(),
            "converged": run.converged.tolist(), "cstar": psi.c_star(run.W, s, 2, b=1.0).tolist(),
            "max_dev": max_dev, "out0": run.outputs[: T0 + 6, 0].tolist(), "counts0": counts[0].tolist()}


def thm71_summary(cells) -> dict:
    """Over the ``c_eta`` cells: ``c_eta``, mean ``T`` and ``t*`` per cell, ``max_dev``, whether ``t*`` is
    predicted in every run (``tstar_ok``), PSI with ``b = 1``, ``c = sqrt(18 c_eta)`` (``psi_ok`` and the
    least ``margin`` in ``c``), convergence, the log-log ``slope`` of mean ``T`` against ``c_eta`` and the
    mean gaps ``T - t*``."""
    ce = [float(c["c_eta"]) for c, _ in cells]
    Ts = [torch.tensor(r["T"], dtype=torch.float64) for _, r in cells]
    tstars = [torch.tensor(r["tstar"], dtype=torch.float64) for _, r in cells]
    cs = [torch.tensor(r["cstar"], dtype=torch.float64) for _, r in cells]
    slope = float(np.polyfit(np.log(ce), np.log([float(T.mean()) for T in Ts]), 1)[0])
    return dict(
        c_eta=ce, T=Ts, tstar=tstars, cstar=cs,
        max_dev=max(float(r["max_dev"]) for _, r in cells),
        tstar_ok=all(r["tstar"] == r["tpred"] for _, r in cells),
        psi_ok=all(bool(torch.all(c <= math.sqrt(18 * e))) for c, e in zip(cs, ce)),
        margin=min(float((math.sqrt(18 * e) - c).min()) for c, e in zip(cs, ce)),
        conv_ok=all(all(r["converged"]) for _, r in cells),
        slope=slope, gaps=[float((T - t).mean()) for T, t in zip(Ts, tstars)],
    )


def claim_thm71(cells, claims):
    """``psi.thm71_two_points`` (Lemmas F.5-F.6, Thm. 7.1) and ``psi.thm71_time_vs_ceta`` (``T`` scales as
    ``1 / c_eta``: log-log slope -1 within 0.15)."""
    s = thm71_summary(cells)
    dev_txt = "< 1e-12" if s["max_dev"] < 1e-12 else f"{s['max_dev']:.2e}"
    claims.check(
        "psi.thm71_two_points",
        "two-point GD: W_t equals the Lemma F.5 closed forms at the checked t <= t*, t* matches "
        "the Lemma F.6 prediction, every run converges, and PSI holds with b = 1, c = sqrt(18 c_eta)",
        passed=(s["max_dev"] < 1e-9) and s["tstar_ok"] and s["psi_ok"] and s["conv_ok"],
        measured=f"max dev {dev_txt}; t* predicted: {s['tstar_ok']}; converged: {s['conv_ok']}; "
        f"min(sqrt(18 c_eta) - c*) = {s['margin']:.3f}",
        paper="Lemma F.5, Lemma F.6, Theorem 7.1",
        tolerance="dev < 1e-9; exact t*; c* <= sqrt(18 c_eta)",
    )
    claims.close(
        "psi.thm71_time_vs_ceta",
        "convergence time T scales as 1/c_eta (log-log slope of mean T vs c_eta)",
        s["slope"],
        -1.0,
        0.15,
        paper="T <= O(1/c_eta) (Theorem 7.1)",
    )


# -- the sweeps and their claims ----------------------------------------------------------------------
from cnnbias.sweeps.spec import ClaimSpec as _ClaimSpec  # noqa: E402  (the sweep declarations end the module)
from cnnbias.sweeps.spec import Sweep as _Sweep  # noqa: E402
from cnnbias.sweeps.spec import register as _register  # noqa: E402
from cnnbias.sweeps.spec import register_claim as _register_claim  # noqa: E402

_CODE = ("cnnbias.config", "cnnbias.stats", "cnnbias.validate", "cnnbias.data.patterns", "cnnbias.engine",
         "cnnbias.models.init", "cnnbias.models.maxpool", "cnnbias.theory.psi", "cnnbias.experiments.psi")


def _grid_label(c) -> str:
    p = f",p*{len(c['p'])}" if c["p"] is not None else ""
    return (f"{'+'.join(c['figs'])}:{c['dist']} n={c['n']} d={c['d']} k={c['k']} m={c['m']} R={c['R']} "
            f"kappa={c['kappa']:g}{p}")


SWEEP_GRID = _register(_Sweep(
    "psi.grid", grid_cell, cells={s: grid_cells(s) for s in CONFIGS}, code=_CODE,
    description="PSI Figs. 1a, 1b, 1c, 3: SGD on N_W over (distribution, n, d, k, m, kappa); c*, "
                "detection ratios, Eq. 3 / Eq. 9 per run",
    label=_grid_label,
))
SWEEP_THM61 = _register(_Sweep(
    "psi.thm61", thm61_cell, cells={s: thm61_cells(s) for s in CONFIGS}, code=_CODE,
    description="PSI Thm. 6.1 (App. C): max spurious pattern statistic of sampled D_u training sets",
    label=lambda c: f"m={c['m']} sets={c['sets']}",
    cpu_only=True,
))
SWEEP_THM71 = _register(_Sweep(
    "psi.thm71", thm71_cell, cells={s: thm71_cells(s) for s in CONFIGS},
    code=(*_CODE, "cnnbias.theory.two_point"),
    description="PSI Thm. 7.1 (App. F): exact two-point GD against Lemmas F.5-F.6, one cell per c_eta",
    label=lambda c: f"c_eta={c['c_eta']:g}",
    cpu_only=True,
))

_register_claim(_ClaimSpec("psi.cstar_small", "psi.grid", claim_cstar_small,
                           select=lambda c: "1a" in c["figs"]))
_register_claim(_ClaimSpec("psi.cstar_vs_k", "psi.grid", claim_cstar_vs_k, select=lambda c: "1b" in c["figs"]))
_register_claim(_ClaimSpec("psi.cstar_vs_m", "psi.grid", claim_cstar_vs_m, select=lambda c: "3" in c["figs"]))
_register_claim(_ClaimSpec("psi.ratio_tracks_statistics", "psi.grid", claim_ratio_tracks_statistics,
                           select=lambda c: "1c" in c["figs"]))
for _id in ("psi.eq3_sums_fall", "psi.eq9_violations_fall"):
    _register_claim(_ClaimSpec(_id, "psi.grid", claim_eq3, select=lambda c: "1a" in c["figs"]))
_register_claim(_ClaimSpec("psi.eq9_zero_test_error", "psi.grid", claim_eq9_zero_test_error,
                           select=lambda c: "1a" in c["figs"]))
_register_claim(_ClaimSpec("psi.thm61_failure_prob", "psi.thm61", claim_thm61))
for _id in ("psi.thm71_two_points", "psi.thm71_time_vs_ceta"):
    _register_claim(_ClaimSpec(_id, "psi.thm71", claim_thm71))
