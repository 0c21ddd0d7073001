"""Paper-scale CPU cost of the experiments the book does not run at paper scale (issue 14).

Each experiment below is timed on a short slice of its paper-scale configuration (the chapter's
``CONFIGS["paper"]``, read from the notebook or the experiments module, so the numbers follow the
chapters), through the same public library functions the chapter calls, and extrapolated linearly
in the quantity that was cut short (steps, epochs, runs, chains, cells).

Method (per component):

- ``two-point``: the component is timed at two values ``u1 < u2`` of the cut quantity; the slope
  ``(t2 - t1) / (u2 - u1)`` is the cost per unit, ``t1 - slope * u1`` the fixed cost (data, set-up,
  evaluation); the estimate is ``fixed + slope * u_paper`` (times a multiplier where only some of
  identical-cost pieces were timed).  If noise makes the slope non-positive, ``t2 / u2`` is used.
- ``full``: the component runs completely at paper scale (it fits in the slice budget).
- ``cost model``: where one cut quantity does not fit (the PSI grid: 127 cells of different size;
  the GD-vs-ridge path: ridge matches grow like log T_max, GD steps like T_max), the pieces are timed
  separately and combined by the formula stated in the record's note.
- ``notebook``: every code cell of the chapter is executed at ``CNNBIAS_SCALE=paper`` in a
  subprocess (with a time limit); the cell times are recorded; cells that did not finish are
  estimated by ``two-point`` components.

Training loops that stop early (a loss threshold, zero training error) are extrapolated to their
epoch/step budget: those estimates are upper bounds, and each record says so.  No GPU was available:
``"gpu"`` is null (no GPU number is invented).

float64 on CPU, ``CNNBIAS_THREADS=1``, niceness 10.  The machine is shared: every slice records
``os.getloadavg()`` at its start, so readers can judge how much the load inflated the times.

    .venv/bin/python benchmarks/paper_cost.py                 # every experiment (~6 min)
    .venv/bin/python benchmarks/paper_cost.py --only psi      # one experiment; others kept
    .venv/bin/python benchmarks/paper_cost.py --list
    .venv/bin/python benchmarks/paper_cost.py --table           # markdown table of the JSON

Writes ``benchmarks/paper_cost.json`` (records of experiments not rerun are kept).
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ["CNNBIAS_THREADS"] = "1"
os.environ["CNNBIAS_DEVICE"] = "cpu"
os.environ["CNNBIAS_SCALE"] = "paper"
os.environ["CNNBIAS_PROGRESS"] = "0"
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "paper_cost.json"
SLICE_LIMIT_S = 90.0  # a slice running longer is stopped and recorded as a lower bound

import torch  # noqa: E402  (after the environment is set)
from cnnbias import config  # noqa: E402

DT = torch.float64
EXPERIMENTS: dict = {}


# --- helpers --------------------------------------------------------------------------------------


def experiment(name: str, chapter: str):
    def deco(fn):
        EXPERIMENTS[name] = (chapter, fn)
        return fn

    return deco


def notebook_configs(path: str, names: tuple[str, ...] = ("CONFIGS",)) -> dict:
    """The chapter's settings dicts, taken from the notebook's own source: the module-level
    assignments to ``names`` (and the constants they use) are executed, nothing else."""
    nb = json.loads((ROOT / path).read_text())
    env: dict = {}
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        tree = ast.parse("".join(cell["source"]))
        for node in tree.body:
            if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
                tgt = [t.id for t in node.targets]
                if any(t in names or t.isupper() for t in tgt):
                    try:
                        exec(compile(ast.Module([node], []), path, "exec"), env)
                    except Exception:  # a constant that depends on run-time values: not a setting
                        pass
    return {k: env[k] for k in names}


class SliceTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise SliceTimeout()


def timed(fn, *a, limit: float | None = None, **kw) -> dict:
    """Wall time of ``fn(*a, **kw)`` (stopped after ``limit``, default SLICE_LIMIT_S), with the load
    average at start."""
    limit = limit or SLICE_LIMIT_S
    load = [round(x, 2) for x in os.getloadavg()]
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    t0 = time.perf_counter()
    err = None
    try:
        fn(*a, **kw)
    except SliceTimeout:
        err = f"stopped after {limit:.0f} s"
    except Exception as e:  # recorded, the script goes on
        err = f"{type(e).__name__}: {e}"[:300]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return {"seconds": round(time.perf_counter() - t0, 3), "loadavg": load, "error": err}


def two_point(name: str, run, u1, u2, u_paper, unit: str, multiplier: float = 1.0,
              upper_bound: bool = False, note: str = "", limit: float | None = None) -> dict:
    """Time ``run(u1)`` and ``run(u2)``; extrapolate linearly to ``u_paper`` (see module doc)."""
    a = timed(run, u1, limit=limit)
    b = timed(run, u2, limit=limit) if a["error"] is None else {"seconds": None, "loadavg": None, "error": "skipped"}
    repeats = 1
    if a["error"] is None and b["error"] is None and (a["seconds"] + b["seconds"] < 12
                                                      or a["seconds"] >= b["seconds"]):
        # short or inconsistent slices: time both points once more (u2 first), keep the smaller
        # time of each; the first call also pays one-off costs (imports, first use of kernels)
        repeats = 2
        b2, a2 = timed(run, u2), timed(run, u1)
        if a2["error"] is None and b2["error"] is None:
            a = a2 if a2["seconds"] < a["seconds"] else a
            b = b2 if b2["seconds"] < b["seconds"] else b
    rec = {"component": name, "method": "two-point", "cut": unit, "paper_value": u_paper,
           "timed_values": [u1, u2], "seconds": [a["seconds"], b["seconds"]],
           "loadavg": [a["loadavg"], b["loadavg"]], "multiplier": multiplier,
           "upper_bound": upper_bound, "note": note, "repeats": repeats}
    print(f"  {name}: {u1} -> {a['seconds']} s, {u2} -> {b['seconds']} s"
          f"{'  ' + (a['error'] or b['error']) if a['error'] or b['error'] else ''}", flush=True)
    if a["error"] or b["error"]:
        rec["error"] = a["error"] or b["error"]
        rec["estimate_s"] = None
        if a["error"] and a["error"].startswith("stopped"):
            rec["lower_bound_s"] = SLICE_LIMIT_S * multiplier  # the paper run takes at least this
        return rec
    t1, t2 = a["seconds"], b["seconds"]
    slope = (t2 - t1) / (u2 - u1)
    if not slope > 0:
        slope, fixed = t2 / u2, 0.0
        rec["note"] = (note + "; " if note else "") + "non-positive slope (noise): t2/u2 used"
    else:
        fixed = max(t1 - slope * u1, 0.0)
    rec.update(per_unit_s=slope, fixed_s=round(fixed, 3),
               estimate_s=round(multiplier * (fixed + slope * u_paper), 1))
    return rec


def full(name: str, run, multiplier: float = 1.0, note: str = "") -> dict:
    a = timed(run)
    print(f"  {name}: full -> {a['seconds']} s{'  ' + a['error'] if a['error'] else ''}", flush=True)
    rec = {"component": name, "method": "full", "seconds": [a["seconds"]], "loadavg": [a["loadavg"]],
           "multiplier": multiplier, "upper_bound": False, "note": note}
    if a["error"]:
        rec["error"] = a["error"]
        rec["estimate_s"] = None
        if a["error"].startswith("stopped"):
            rec["lower_bound_s"] = SLICE_LIMIT_S * multiplier
    else:
        rec["estimate_s"] = round(multiplier * a["seconds"], 1)
    return rec


def scaled(d: dict, keys, f: float, minimum: int = 1) -> dict:
    """A copy of ``d`` with the integer entries ``keys`` multiplied by ``f`` (rounded, >= minimum)."""
    out = dict(d)
    for k in keys:
        out[k] = max(minimum, int(round(d[k] * f)))
    return out


def record(name: str, chapter: str, paper_settings: dict, components: list[dict], method: str) -> dict:
    counted = [c for c in components if c.get("counted", True)]
    total = sum(c["estimate_s"] for c in counted if c.get("estimate_s") is not None)
    missing = [c["component"] for c in counted if c.get("estimate_s") is None]
    lower = sum(c.get("lower_bound_s", 0.0) for c in counted)
    sl = sum(s for c in components for s in c["seconds"] if s is not None)
    slices = []
    for c in components:
        if c["method"] == "two-point":
            slices.append(f"{c['component']}: {c['timed_values'][0]} and {c['timed_values'][1]} of "
                          f"{c['paper_value']} {c['cut']}" + (f" (x{c['multiplier']:g})"
                                                              if c["multiplier"] != 1 else ""))
        else:
            slices.append(f"{c['component']}: {c['method']}")
    return {
        "experiment": name,
        "chapter": chapter,
        "paper_settings": paper_settings,
        "slice": "; ".join(slices),
        "slice_seconds": round(sl, 1),
        "factor": round(total / sl, 1) if sl > 0 else None,
        "cpu_seconds_estimate": round(total + lower, 1),
        "cpu_hours_estimate": round((total + lower) / 3600, 3),
        "upper_bound": any(c.get("upper_bound") for c in components),
        "incomplete": missing,
        "method": method,
        "components": components,
        "gpu": None,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg_range": _load_range(components),
    }


def _load_range(components):
    loads = [l[0] for c in components for l in c["loadavg"] if l]
    return [min(loads), max(loads)] if loads else None


# --- 1. Part II, layerwise GD (max-pooling paper, Thm. 5.1, Figs. 3-4) ------------------------


@experiment("layerwise_gd", "book/part2/layerwise_gd.ipynb")
def layerwise_gd():
    from cnnbias.data import patterns as P
    from cnnbias.experiments import layerwise as LW
    from cnnbias.experiments import maxpool as lw
    from cnnbias.experiments.maxpool import digit_runs, pattern_runs
    from cnnbias.theory import min_norm as mn

    cfg = config.for_scale(LW.CONFIGS, "layerwise_gd")
    comps = []

    def lucky(runs):
        for d_l in cfg["lucky_ds"]:
            k_l = 8 * d_l**3 + 1
            gens = config.generators("lucky", {"d": d_l, **cfg}, runs)
            W0, a0 = lw.sphere_init(k_l, d_l, 1.0, gens)
            lp, lm = lw.lucky_masks(W0, a0)
            lp.sum(1), lm.sum(1)

    comps.append(two_point("lucky filters (Lemma 5.2), all d", lucky, 10, 20, cfg["lucky_runs"],
                           "runs per d", note="chi-square tests of the chapter not timed (negligible)"))

    d_lw, n_lw, T1 = cfg["d"], cfg["n"], cfg["T1"]
    hp = lw.default_hparams(d_lw, T1, eta2_fraction=0.99)
    # the cost is linear in the number of runs (one batched program): one repetition of the sizes
    sizes_1 = list(cfg["lw_sizes"])
    R_1 = len(sizes_1)

    def lw_run(T2):
        c1 = dict(cfg, lw_reps=1)
        gens_lw = config.generators("lw_cnn", c1, R_1)
        idx, y = P.stack_runs(P.sample_D, gens_lw, m=max(sizes_1), n=n_lw, l=d_lw)
        P.stack_runs(P.sample_D, gens_lw, m=cfg["m_test"], n=n_lw, l=d_lw)
        res = lw.lw_cnn(idx, y, k=hp["k"], d=d_lw, T1=T1, T2=T2, eta1=hp["eta1"], eta2=hp["eta2"],
                        r=hp["r"], gens=config.generators("lw_cnn_init", c1, R_1), sizes=sizes_1,
                        record_loss_every=max(1, T2 // 50))
        lw.dynamics_checks(res)

    comps.append(two_point("LW_CNN (Algorithm 1), 1 of the repetitions", lw_run, 500, 2500, cfg["T2"],
                           "second-layer steps T2", multiplier=cfg["lw_reps"],
                           note=f"k={hp['k']}, T1={T1} (full, in the fixed part), the {R_1} sizes of one "
                                f"repetition batched; x{cfg['lw_reps']} repetitions (cost linear in runs)"))

    def min_norm_qp():
        g = config.generators("min_norm", cfg, 1)[0]
        for n_, l_ in cfg["mn_cases"]:
            idx_s, y_s = mn.support_D(n_, l_)
            X_s = P.embed(idx_s, P.orthogonal_patterns(l_, l_ + 2, g)).reshape(len(y_s), -1)
            mn.min_norm_squared(X_s, y_s)

    comps.append(full("Prop. 6.1 QPs, all cases", min_norm_qp))

    def fig(name, sizes, make, epochs, reps=None):
        c = dict(cfg, epochs=epochs, reps=reps or cfg["reps"])
        lw.run_figure(name, c, sizes, make)

    for label, sizes, noise in (("fig3a", cfg["sizes"], 0.0), ("fig3b", cfg["sizes_noisy"], 1.0)):
        comps.append(two_point(
            f"Fig. {label[3:]} (ConvPool, MLP, SVM)",
            lambda e, label=label, sizes=sizes, noise=noise: fig(
                label, sizes, lambda s, r, gens: pattern_runs(s, r, n=10, d=20, noise=noise, gens=gens), e, 1),
            5, 10, cfg["epochs"], "epochs (Adam; stops at loss 1e-3)", upper_bound=True,
            multiplier=cfg["reps"],
            note=f"1 of {cfg['reps']} reps x {len(sizes)} sizes, C={cfg['C']}; SVM in the fixed part"))
    ns4 = cfg["fig4_ns"]
    for n4 in (ns4[0], ns4[-1]):
        comps.append(two_point(
            f"Fig. 4 n={n4}",
            lambda e, n4=n4: fig(f"fig4_n{n4}", [cfg["fig4_m"]],
                                 lambda s, r, gens: pattern_runs(s, r, n=n4, d=20, noise=1.0, gens=gens), e),
            5, 10, cfg["epochs"], "epochs (Adam; stops at loss 1e-3)", multiplier=len(ns4) / 2,
            upper_bound=True,
            note=f"smallest and largest of n={ns4}, each counted for half of the {len(ns4)} values"))
    comps.append(two_point(
        "Fig. 3c (digits)",
        lambda e: fig("fig3c", cfg["digit_sizes"], lambda s, r, gens: digit_runs(s, r, n=4, gens=gens), e, 1),
        5, 10, cfg["epochs"], "epochs (Adam; stops at loss 1e-3)", upper_bound=True,
        multiplier=cfg["reps"], note=f"1 of {cfg['reps']} reps; SVM in the fixed part"))
    settings = {k: cfg[k] for k in ("lucky_ds", "lucky_runs", "d", "n", "T1", "T2", "lw_sizes", "lw_reps",
                                    "C", "reps", "epochs", "sizes", "fig4_ns", "digit_sizes")}
    return settings, comps, ("two-point extrapolation per component in the cut quantity; Adam "
                             "trainings stop at loss 1e-3, so their part is an upper bound")


# --- 2. Part II, VC lower bound: measured by the sweep maxpool.vc_dvc (results/), not estimated here


# --- 3. Part II, PSI grid (App. E.3-E.5) ---------------------------------------------------------


@experiment("psi", "book/part2/psi.ipynb")
def psi_grid():
    from cnnbias.data import patterns as pat
    from cnnbias.experiments import psi as PE
    from cnnbias.experiments import psi_grid as PG
    from cnnbias.theory import psi
    from cnnbias.theory import two_point as tp

    cfg = config.for_scale(PG.CONFIGS)
    R = cfg["R"]
    # every cell of the sweep psi.grid at paper scale (all kappa; Fig. 1c's cell holds all its p)
    cells = {(c["dist"], c["n"], c["d"], c["k"], c["m"], c["R"], c["max_epochs"], c["kappa"])
             for c in PG.grid_cells("paper")}

    def batch(k):
        return 100 if k <= 2500 else 20

    # per-epoch cost ~ (steps per epoch) x (work per step) = (m / B) x (R 2k B n) = R 2k m n for SGD
    # plus the full-loss evaluation every epoch (also ~ R 2k m n): timed on a cut m, scaled by m
    small = ("u", 10, 20, 1000, 5000)      # smallest (n, d, k) of the grid, B = 100: 50 steps/epoch
    large = ("u", 40, 60, 10000, 400)      # largest, B = 20: 20 steps/epoch
    comps, rate = [], {}
    for tag, (dist, n, d, k, m_s), u2 in (("smallest", small, 3), ("largest", large, 2)):
        def run(epochs, dist=dist, n=n, d=d, k=k, m_s=m_s):
            cell = PE.GridCells(cfg, b=2.0, device="cpu", dtype=DT)
            cell(dist, n, d, k, m_s, R, max_epochs=epochs)
        c = two_point(f"{tag} cell ({dist}, n={n}, d={d}, k={k}), m cut to {m_s}", run, 1, u2,
                      cfg["max_epochs"], "epochs", note="the rate per unit work R*2k*m*n per epoch is "
                      "taken from this cell for every cell with the same batch size; the fixed part "
                      "(data, test-set evaluation, detection) is scaled by 2k*n")
        c["work_per_epoch"] = R * 2 * k * m_s * n
        c["counted"] = False  # its rate enters the cost model of the grid (below), not its own estimate
        c["note"] += "; not added to the total: the grid's cost model uses its rate"
        comps.append(c)
        if c.get("per_unit_s"):
            rate[batch(k)] = (c["per_unit_s"] / c["work_per_epoch"], c["fixed_s"] / (2 * k * n))
    total_epoch, total_fixed, total_bound = 0.0, 0.0, 0.0
    for (_dist, n, _d, k, m, Rc, epochs, _kappa) in sorted(cells, key=str):
        r, fixed_rate = rate.get(batch(k), (float("nan"), 0.0))
        per_epoch = r * Rc * 2 * k * m * n
        fixed = fixed_rate * 2 * k * n * Rc / R
        total_epoch += per_epoch
        total_fixed += fixed
        total_bound += fixed + per_epoch * epochs
    grid = {"component": f"all {len(cells)} cells of psi.grid (Figs. 1a, 1b, 1c, 3)", "method": "cost model",
            "seconds": [], "loadavg": [], "multiplier": 1.0, "upper_bound": True,
            "note": ("per cell: fixed(B) * 2k*n*R + rate(B) * R*2k*m*n * max_epochs, rate(B) from the timed "
                     "cell with the same batch size B; cells stop at hinge loss 1e-5, so this is "
                     "the budget (max_epochs), an upper bound"),
            "cells": len(cells), "cpu_seconds_one_epoch_every_cell": round(total_epoch + total_fixed, 1),
            "estimate_s": round(total_bound, 1) if math.isfinite(total_bound) else None}
    comps.append(grid)

    def thm61():
        n61, d61, m61, S61 = 10, 20, cfg["thm61_m"], cfg["thm61_sets"]
        gens61 = config.generators("psi.thm61", {"n": n61, "d": d61, "m": m61}, S61)
        idx61, y61 = pat.stack_runs(pat.sample_Du, gens61, m=m61, n=n61, d=d61)
        psi.thm61_events(psi.pattern_statistics(idx61, y61, d61), m61, d61)

    def thm71():
        n7, d7, k7, R7 = cfg["tp_n"], cfg["tp_d"], cfg["tp_k"], cfg["tp_R"]
        gens7 = config.generators("psi.thm71", {"n": n7, "d": d7, "k": k7}, R7)
        data7 = tp.sample_two_point(R7, n7, d7, gens7)
        W07 = torch.stack([1e-9 * torch.randn(2 * k7, d7, generator=g, dtype=torch.float64) for g in gens7])
        g7 = tp.gamma(n7)
        for c_eta in cfg["tp_c"]:
            T_max = int(20 / (c_eta * g7)) + 50
            tpl, tmn, _ = tp.predicted_convergence(W07, data7, c_eta)
            tp.gd_two_point(W07, data7, c_eta, T_max, record=[1, 2, 3])

    comps.append(full("Thm. 6.1 sampled training sets", thm61))
    comps.append(full("Thm. 7.1 two-point GD, all c_eta", thm71))
    settings = {k: cfg[k] for k in ("grid_u", "grid_vc", "k", "m", "R", "k1b", "m1b", "m3", "k3",
                                    "k1c", "m1c", "kappa", "max_epochs", "max_epochs_1c", "check_every")}
    settings["cells"] = len(cells)
    return settings, comps, ("grid: per-epoch cost of the smallest and largest cell, measured on a cut "
                             "training set (1 and 2 epochs) and scaled by R*2k*m*n to every cell, "
                             "times max_epochs (upper bound); Thm. 6.1/7.1 parts run fully")


# --- 4. Part II, colored digits ------------------------------------------------------------------


# (measured by the sweep psi.digits: results/psi.digits/paper, not estimated here)


# --- 5. Part III, XORD compression: measured by the sweep xord.compression (results/), not estimated here


# --- 6. Part I chapters: whole notebook at paper scale ------------------------------------------


def notebook_run(path: str, limit_s: int) -> dict:
    """Execute every code cell of the chapter at paper scale in a subprocess (time limit ``limit_s``);
    returns the per-cell wall times and whether it finished."""
    code = (
        "import json, sys, time, os\n"
        "nb = json.load(open(sys.argv[1]))\n"
        "g = {'__name__': '__main__'}\n"
        "for i, c in enumerate(nb['cells']):\n"
        "    if c['cell_type'] != 'code':\n        continue\n"
        "    print(f'START {i} {os.getloadavg()[0]:.2f}', flush=True)\n"
        "    t0 = time.perf_counter()\n"
        "    exec(compile(''.join(c['source']), f'cell{i}', 'exec'), g)\n"
        "    print(f'CELL {i} {time.perf_counter() - t0:.3f}', flush=True)\n"
        "print('DONE', flush=True)\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="0")
    t0 = time.perf_counter()
    load = [round(x, 2) for x in os.getloadavg()]
    try:
        p = subprocess.run([sys.executable, "-c", code, str(ROOT / path)], capture_output=True, text=True,
                           timeout=limit_s, env=env, cwd=ROOT)
        out, finished, rc = p.stdout, "DONE" in p.stdout, p.returncode
        err = p.stderr[-400:] if rc else None
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        finished, rc, err = False, None, f"stopped after {limit_s} s"
    wall = time.perf_counter() - t0
    cells, running = {}, None
    for line in out.splitlines():
        parts = line.split()
        if parts[:1] == ["START"]:
            running = int(parts[1])
        elif parts[:1] == ["CELL"]:
            cells[int(parts[1])] = float(parts[2])
            running = None
    return {"finished": finished, "wall_s": round(wall, 1), "cell_seconds": cells, "unfinished_cell": running,
            "loadavg": load, "error": err}


def notebook_component(path: str, limit_s: int) -> dict:
    r = notebook_run(path, limit_s)
    rec = {"component": "whole chapter at CNNBIAS_SCALE=paper", "method": "notebook",
           "seconds": [r["wall_s"]], "loadavg": [r["loadavg"]], "multiplier": 1.0, "upper_bound": False,
           "cell_seconds": r["cell_seconds"], "unfinished_cell": r["unfinished_cell"],
           "note": "all code cells executed in a subprocess (includes Python start-up and imports)"}
    if r["finished"]:
        rec["estimate_s"] = r["wall_s"]
    else:
        rec["error"] = r["error"]
        # the finished cells count; the unfinished ones are estimated by other components
        rec["estimate_s"] = round(sum(r["cell_seconds"].values()), 1)
        rec["note"] += "; did not finish: the finished cells are counted here"
    return rec


@experiment("theorem4_perron_frobenius", "book/part1/theorem4_perron_frobenius.ipynb")
def theorem4():
    cfgs = notebook_configs("book/part1/theorem4_perron_frobenius.ipynb",
                            ("CONFIGS_ID", "CONFIGS_L5", "CONFIGS_F4"))
    settings = {k: v["paper"] for k, v in cfgs.items()}
    comps = [notebook_component("book/part1/theorem4_perron_frobenius.ipynb", 150)]
    return settings, comps, "the whole chapter executed at paper scale (time limit 150 s)"


@experiment("limit_directions", "book/part1/limit_directions.ipynb")
def limit_directions():
    from cnnbias.experiments.convlin import gap_runs, init_runs

    nb = "book/part1/limit_directions.ipynb"
    cfgs = notebook_configs(nb, ("CONFIGS_L7", "CONFIGS_L1", "CONFIGS", "CONFIGS_INIT"))
    settings = {k: v["paper"] for k, v in cfgs.items()}
    comps = [notebook_component(nb, 240)]
    done = comps[0]["cell_seconds"]
    c, ci = cfgs["CONFIGS"]["paper"], cfgs["CONFIGS_INIT"]["paper"]
    fig5_cell = _cell_index(nb, "gap_runs(")
    init_cell = _cell_index(nb, "init_runs(")
    if fig5_cell not in done:
        comps.append(two_point(
            "Fig. 5 hinge GD (gap_runs, Conv-k), 3 tasks",
            lambda e: [gap_runs(nm, c["d"], c["k"], c["ns"], c["R"], c["lr"], e, models=("conv",))
                       for nm in ("cls", "1stctrl", "3rdctrl")],
            500, 1000, c["max_epochs"], "epochs (stops at zero hinge loss)", upper_bound=True,
            note="the Thm. 2 closed forms and the 1000 X-hinge steps of the cell are not in this part"))
    if init_cell not in done:
        comps.append(two_point(
            "Figs. 6/8/9 initializations (init_runs), 3 tasks",
            lambda e: [init_runs(nm, ci["d"], ci["k"], ci["n"][nm], ci["R"], ci["lr"], ci["t_max"],
                                 ci["every"], e) for nm in ("cls", "1stctrl", "3rdctrl")],
            500, 1000, ci["hinge_max"], "hinge epochs (stops at zero hinge loss)", upper_bound=True))
    return settings, comps, ("the chapter executed at paper scale with a time limit; cells that did not "
                             "finish are estimated by two-point extrapolation in epochs (upper bounds)")


def _cell_index(path: str, needle: str) -> int | None:
    nb = json.loads((ROOT / path).read_text())
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] == "code" and needle in "".join(c["source"]):
            return i
    return None


# --- 7. Part IV (theory3) ---------------------------------------------------------------------


@experiment("min_norm", "book/part4/min_norm.ipynb")
def min_norm():
    from cnnbias.experiments.theory3 import min_norm as E

    cfg = config.for_scale(E.CONFIGS, E.EXPERIMENT)
    comps = []
    specs = [  # driver, sub-config, cut keys, name, steps of the first slice
        (E.min_norm_runs, "min_norm", ["gd_steps", "sgd_steps"], "GD and SGD to the min-norm solution", 60),
        (E.init_scale_sweep, "init_scale", ["steps"], "initialization scales", 15),
        (E.step_size_sweep, "step_size", ["steps"], "step sizes", 15),
        (E.first_layer_span, "first_layer", ["steps"], "first-layer span", 15),
        (E.poly_standard, "poly", ["std_steps"], "polynomial features, standard", 5000),
        (E.poly_product, "poly", ["product_steps"], "polynomial, product parametrization", 5000),
        (E.robust_check, "robust", ["steps"], "robust (PGA) check", 200),
    ]
    for fn, key, keys, name, first in specs:
        sub = cfg[key]
        f1 = _fraction(sub[keys[0]], first)

        def run(f, fn=fn, key=key, keys=keys):
            c = dict(cfg)
            c[key] = scaled(cfg[key], keys, f)
            if key == "min_norm":
                c[key]["record"] = min(cfg[key]["record"], c[key]["gd_steps"])
            fn(c)

        comps.append(two_point(name, run, f1, 2 * f1, 1.0, f"fraction of {'+'.join(keys)} "
                               f"({', '.join(str(sub[k]) for k in keys)})"))
    comps.append(_gd_ridge_component(E, cfg))
    comps.append(full("Tikhonov sweep", lambda: E.tikhonov_sweep(cfg)))
    return cfg, comps, "each driver: two-point extrapolation in its step count (fraction of the paper's)"


def _gd_ridge_component(E, cfg) -> dict:
    """gd_ridge_sweep costs (set-up) + (ridge matches, one per recorded T) + (GD steps, T_max of them);
    the number of recorded T grows only like log T_max, so one cut quantity does not fit.  Timed:
    the driver at T_max=10 with 1 and with 6 records per decade (2 and 7 matches: the cost of one
    match), and 300 GD steps of the driver's own update on its problem (the cost of one step)."""
    c = cfg["gd_ridge"]

    def n_T(per_decade, T_max):
        return len({int(round(10 ** (k / per_decade))) for k in range(int(per_decade * math.log10(T_max)) + 1)})

    def drv(per_decade):
        E.gd_ridge_sweep(dict(cfg, gd_ridge=dict(c, T_max=10, per_decade=per_decade)))

    def steps(T=300):
        gens = config.generators("paper_cost.gd_ridge", c, c["R"])
        X, y = E.spectral_problem(gens, c["n"], c["d"], c["s_max"], c["s_min"])
        w = torch.zeros(X.shape[0], X.shape[-1], dtype=X.dtype)
        Xt, n, eta = X.transpose(-1, -2), X.shape[-2], 1.0 / c["s_max"]
        t0 = time.perf_counter()
        for _ in range(T):
            w = w - eta * (Xt @ ((X @ w[..., None])[..., 0] - y)[..., None])[..., 0] / n
        holder["step"] = (time.perf_counter() - t0) / T

    holder: dict = {}
    a, b, g = timed(drv, 1), timed(drv, 6), timed(steps)
    print(f"  GD vs ridge path: T_max=10 with 2 / 7 matches -> {a['seconds']} / {b['seconds']} s; "
          f"300 GD steps -> {g['seconds']} s", flush=True)
    rec = {"component": "GD vs ridge path", "method": "cost model", "cut": "T_max and the records per decade",
           "paper_value": c["T_max"], "seconds": [a["seconds"], b["seconds"], g["seconds"]],
           "loadavg": [a["loadavg"], b["loadavg"], g["loadavg"]], "multiplier": 1.0, "upper_bound": False,
           "note": "fixed + n_T * match + T_max * step, n_T = records at the paper's T_max and per_decade"}
    err = a["error"] or b["error"] or g["error"]
    if err:
        rec.update(error=err, estimate_s=None)
        return rec
    n1, n6, nP = n_T(1, 10), n_T(6, 10), n_T(c["per_decade"], c["T_max"])
    match = max((b["seconds"] - a["seconds"]) / (n6 - n1), 0.0)
    fixed = max(a["seconds"] - n1 * match - 10 * holder["step"], 0.0)
    rec.update(match_s=round(match, 3), step_s=holder["step"], fixed_s=round(fixed, 3), n_T=nP,
               estimate_s=round(fixed + nP * match + c["T_max"] * holder["step"], 1))
    return rec


def _fraction(paper_steps: int, slice_steps: int) -> float:
    """The fraction of the paper's step count timed first (the second slice times twice as many)."""
    return min(slice_steps / paper_steps, 0.5)


@experiment("flat_minima", "book/part4/flat_minima.ipynb")
def flat_minima():
    from cnnbias.experiments.theory3 import flat_minima as FM

    cfg = config.for_scale(FM.CONFIGS, FM.EXPERIMENT)
    comps = []
    comps.append(two_point("gradient noise", lambda u: FM.gradient_noise(dict(cfg["noise"], draws=u)),
                           500, 1000, cfg["noise"]["draws"], "draws"))
    sg = cfg["sgdl"]
    s_cut = 4  # seeds of the slice (cost linear in the seeds, batched)
    comps.append(two_point("SGD vs SGDL", lambda u: FM.sgd_vs_sgdl(dict(sg, steps=u, seeds=s_cut)),
                           sg["record_every"], 2 * sg["record_every"], sg["steps"],
                           f"steps ({s_cut} of {sg['seeds']} seeds)", multiplier=sg["seeds"] / s_cut))
    for name, fn, key in (("Gaussian wells chains", FM.wells_chains, "wells"),
                          ("wedge chains", FM.wedge_chains, "wedge"), ("Fig. 10 wedge SGD", FM.wedge_sgd, "fig10")):
        comps.append(two_point(name, lambda u, fn=fn, key=key: fn(dict(cfg[key], chains=u)), 100, 200,
                               cfg[key]["chains"], "chains"))
    return cfg, comps, "two-point extrapolation in draws / steps / chains per driver"


@experiment("random_labels", "book/part4/random_labels.ipynb")
def random_labels():
    from cnnbias.experiments.theory3 import random_labels as E

    cfg = config.for_scale(E.CONFIGS, "theory3.random_labels")
    comps = []
    holder = {}

    def load():
        holder["data"] = E.load_data(cfg)

    comps.append(full(f"load_data ({cfg['dataset']}, {cfg.get('num_samples')} samples)", load))
    data = holder.get("data")
    if data is not None:
        # the cost is linear in the runs of one batched program: one seed (triple) of each sweep,
        # x the paper's number of seeds; and linear in the epochs: 1 and 2 epochs
        # width sweep, minima and poly train on n = 4000 examples: cut to n/NCUT as well (cost
        # linear in the examples of a full-batch epoch; the test-set evaluation is then over-scaled)
        ncut = 10

        def cut(e):
            c = dict(cfg, epochs=e)
            c["size_sweep"] = dict(cfg["size_sweep"], seeds=1)
            c["width_sweep"] = dict(cfg["width_sweep"], seeds=1, n=cfg["width_sweep"]["n"] // ncut,
                                    record_every=min(cfg["width_sweep"]["record_every"], e))
            c["minima"] = dict(cfg["minima"], triples=1, n=cfg["minima"]["n"] // ncut)
            c["poly"] = dict(cfg["poly"], seeds=1, n=cfg["poly"]["n"] // ncut)
            return c

        ep = "epochs (1 seed / triple of the paper's)"
        comps.append(two_point("size sweep", lambda e: E.size_sweep(cut(e), data), 1, 2, cfg["epochs"], ep,
                               multiplier=cfg["size_sweep"]["seeds"]))
        comps.append(two_point("width sweep", lambda e: E.width_sweep(cut(e), data), 1, 2, cfg["epochs"],
                               ep + f", n/{ncut}", multiplier=cfg["width_sweep"]["seeds"] * ncut))
        comps.append(two_point("minima (flatness, interpolation, perturbation)",
                               lambda e: E.minima(cut(e), data, torch.Generator().manual_seed(0)), 1, 6,
                               cfg["epochs"], ep + f", n/{ncut}", multiplier=cfg["minima"]["triples"] * ncut,
                               limit=200,
                               note="measurements after training are in the fixed part"))
        comps.append(two_point("poly vs relu", lambda e: E.poly_vs_relu(cut(e), data), 1, 2, cfg["epochs"],
                               ep + f", n/{ncut}", multiplier=cfg["poly"]["seeds"] * ncut))
    return ({k: cfg[k] for k in ("dataset", "model", "num_samples", "epochs", "size_sweep", "width_sweep",
                                 "minima", "poly")}, comps,
            "two-point extrapolation in epochs per driver (the notebook's seed for minima differs)")


# --- main ----------------------------------------------------------------------------------------


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", help="experiment name (repeatable); default: all")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--table", action="store_true", help="print the stored records as a markdown table")
    args = ap.parse_args(argv)
    if args.table:
        print_table()
        return
    if args.list:
        for k, (ch, _) in EXPERIMENTS.items():
            print(f"{k:<30} {ch}")
        return
    names = args.only or list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise SystemExit(f"unknown experiment(s) {unknown}; choose from {list(EXPERIMENTS)}")
    try:
        os.nice(10)
    except OSError:
        pass
    old = json.loads(OUT.read_text()) if OUT.exists() else {}
    records = {r["experiment"]: r for r in old.get("records", [])}
    for name in names:
        chapter, fn = EXPERIMENTS[name]
        t0 = time.perf_counter()
        settings, comps, method = fn()
        rec = record(name, chapter, settings, comps, method)
        rec["script_seconds"] = round(time.perf_counter() - t0, 1)
        # re-read just before writing: another run of this script may have written meanwhile
        old = json.loads(OUT.read_text()) if OUT.exists() else {}
        records = {r["experiment"]: r for r in old.get("records", [])}
        records[name] = rec
        print(f"{name:<30} slice {rec['slice_seconds']:>7.1f} s  estimate {rec['cpu_hours_estimate']:>10.3f} h"
              f"{'  (upper bound)' if rec['upper_bound'] else ''}"
              f"{'  INCOMPLETE ' + str(rec['incomplete']) if rec['incomplete'] else ''}", flush=True)
        doc = {
            "description": "Paper-scale CPU cost of each experiment, extrapolated from short timed slices "
                           "(benchmarks/paper_cost.py); gpu = null: no GPU was available.",
            "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                        "torch": torch.__version__, "threads": os.environ["CNNBIAS_THREADS"],
                        "dtype": "float64", "python": platform.python_version()},
            "records": [records[k] for k in EXPERIMENTS if k in records]
            + [r for k, r in records.items() if k not in EXPERIMENTS],
        }
        OUT.write_text(json.dumps(doc, indent=1, default=_jsonable) + "\n")


def print_table() -> None:
    doc = json.loads(OUT.read_text())
    print("| experiment | slice | slice s | factor | CPU estimate (h) | load avg |")
    print("|---|---|---:|---:|---:|---|")
    for r in doc["records"]:
        est = f"{r['cpu_hours_estimate']:.3g}" + (" (upper bound)" if r["upper_bound"] else "")
        if r["incomplete"]:
            est += " (incomplete: " + ", ".join(r["incomplete"]) + ")"
        lo, hi = r["loadavg_range"] or (None, None)
        print(f"| {r['experiment']} | {r['slice']} | {r['slice_seconds']} | {r['factor']} | {est} | "
              f"{lo}-{hi} |")


def _jsonable(x):
    if isinstance(x, (set, tuple)):
        return list(x)
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


if __name__ == "__main__":
    main()
