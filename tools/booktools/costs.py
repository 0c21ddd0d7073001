"""The paper-scale cost of every experiment, for the appendix (``book/appendix/paper_costs.csv``).

Two sources, both committed in the repository, so the table is generated, never typed:

- the results store (``results/<experiment>/<scale>/*.json``) and its index of declared sweeps
  (``results/sweeps.json``, written by ``python -m cnnbias index``): every declared sweep gets a row, *run*
  when all its paper-scale cells are stored, *partial* (k of N cells) or *pending* otherwise; the cost of
  the stored cells is *measured* — the sum and the maximum of their wall times recorded in their
  provenance, on the device named there (files of other configs or older code versions are not counted);
- ``benchmarks/paper_cost.json`` (written by ``benchmarks/paper_cost.py``): experiments not run at paper
  scale; the cost is *estimated* from a short timed run of the paper-scale configuration, extrapolated
  linearly in what was cut short (the record says what and by which factor).

:func:`cost_rows` reads both; :func:`write_costs` writes the CSV atomically; ``make execute`` rewrites it
and a test checks the committed CSV equals a fresh one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

from booktools.claims import load_notebook, read_claims
from booktools.execute import atomic_write_text
from booktools.toc import chapter_notebooks

__all__ = ["COSTS_PATH", "COST_FIELDS", "INDEX_PATH", "read_index", "store_costs", "benchmark_costs", "chapter_run_costs", "cost_rows", "costs_csv",
           "write_costs"]

COSTS_PATH = Path("book") / "appendix" / "paper_costs.csv"
BENCHMARK_PATH = Path("benchmarks") / "paper_cost.json"
COST_FIELDS = ("experiment", "chapter", "paper scale", "cells", "CPU time", "slowest cell", "device", "how")


def _duration(seconds: float) -> str:
    """Seconds as a readable duration with two significant digits (an estimate has no more)."""
    s = float(seconds)
    if s < 0 or s != s:
        raise ValueError(f"a duration must be a non-negative number, got {seconds!r}")
    for unit, size in (("h", 3600.0), ("min", 60.0)):
        if s >= 2 * size:
            return f"{float(f'{s / size:.2g}'):g} {unit}"
    return f"{float(f'{s:.2g}'):g} s"


def _chapters_showing(root: Path, name: str, scale: str) -> str:
    """The chapters that show sweep ``name``'s results: those whose cells (code or text) name it, e.g.
    ``sweeps.load("xord.fig1", ...)`` or "the sweep `maxpool.lw_sc`"; if none does, those that store claim
    records at ``scale`` with the sweep's prefix (``convlin.`` for ``convlin.fig2``)."""
    word = re.compile(re.escape(name) + r"(?![\w.])")
    prefix = name.split(".")[0] + "."
    named, shown = [], []
    for nb in chapter_notebooks(root):
        cells = load_notebook(root / nb).get("cells", [])
        if any(word.search("".join(c.get("source", []))) for c in cells):
            named.append(nb.as_posix())
        elif any(r.scale == scale and r.id.startswith(prefix) for r in read_claims(root / nb, root)):
            shown.append(nb.as_posix())
    return " ".join(named or shown) or "-"


INDEX_PATH = Path("results") / "sweeps.json"


def read_index(root: str | os.PathLike) -> dict | None:
    """The index of declared sweeps (``results/sweeps.json``) as ``{name: entry}``, or None without one;
    a malformed file raises ValueError naming it."""
    path = Path(root) / INDEX_PATH
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        sweeps = data["sweeps"]
        for e in sweeps.values():
            int(e["cells"]["paper"]), list(e["keys"])
        if data["scale"] != "paper":
            raise ValueError(f"scale {data['scale']!r}, expected 'paper'")
        return sweeps
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not an index of sweeps ({type(e).__name__}: {e}); rewrite it with "
                         "python -m cnnbias index") from None


def _walls(files: list[Path]) -> tuple[list[float], set[str]]:
    walls, devices = [], set()
    for f in files:
        try:
            prov = json.loads(f.read_text(encoding="utf-8"))["provenance"]
            walls.append(float(prov["wall_s"]))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{f}: not a results-store cell with provenance.wall_s ({e})") from None
        devices.add(f"{prov.get('device', '?')} {prov.get('dtype', '')} {prov.get('threads', '?')} thread(s)")
    return walls, devices


def store_costs(root: str | os.PathLike, scale: str = "paper") -> list[dict[str, str]]:
    """One row per declared sweep (with the index) or per experiment with stored cells at ``scale``
    (without it): how many cells are stored and their measured wall time from the provenance."""
    root = Path(root)
    index = read_index(root) if scale == "paper" else None
    if index is not None:
        return _indexed_costs(root, index)
    rows = []
    for folder in sorted((root / "results").glob(f"*/{scale}")):
        files = sorted(folder.glob("*.json"))
        if not files:
            continue
        walls, devices = _walls(files)
        name = folder.parent.name
        rows.append({
            "experiment": name,
            "chapter": _chapters_showing(root, name, scale),
            "paper scale": "run (stored cells)",
            "cells": str(len(files)),
            "CPU time": _duration(sum(walls)),
            "slowest cell": _duration(max(walls)),
            "device": "; ".join(sorted(devices)),
            "how": "measured: sum of the cells' wall times (provenance)",
        })
    return rows


def _indexed_costs(root: Path, index: dict) -> list[dict[str, str]]:
    """Rows of :func:`store_costs` from the index: every declared sweep with paper-scale cells, the stored
    current ones measured.  A results folder of an undeclared sweep is an error."""
    undeclared = sorted(f.parent.name for f in (root / "results").glob("*/paper") if f.parent.name not in index)
    if undeclared:
        raise ValueError(f"results/ holds paper-scale cells of sweeps the index does not declare: {undeclared} "
                         "(remove them, or rewrite the index with python -m cnnbias index)")
    rows = []
    for name, entry in sorted(index.items()):
        n = int(entry["cells"]["paper"])
        if n == 0:
            continue
        keys = set(entry["keys"])
        folder = root / "results" / name / "paper"
        files = sorted(f for f in folder.glob("*.json") if f.stem in keys) if folder.is_dir() else []
        walls, devices = _walls(files)
        k = len(files)
        status = "run (all cells)" if k == n else (f"partial ({k} of {n} cells)" if k else "pending")
        rows.append({
            "experiment": name,
            "chapter": _chapters_showing(root, name, "paper"),
            "paper scale": status,
            "cells": f"{k}/{n}",
            "CPU time": _duration(sum(walls)) if walls else "-",
            "slowest cell": _duration(max(walls)) if walls else "-",
            "device": "; ".join(sorted(devices)) if devices else "-",
            "how": ("measured: sum of the stored cells' wall times (provenance)" if walls
                    else "not run: see the chapter's estimate below"),
        })
    return rows


def benchmark_costs(root: str | os.PathLike) -> list[dict[str, str]]:
    """One row per record of ``benchmarks/paper_cost.json`` (estimates from timed slices); [] if absent."""
    path = Path(root) / BENCHMARK_PATH
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    records = data.get("records", data) if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a list of records (or {{'records': [...]}})")
    rows = []
    for i, r in enumerate(records):
        try:
            est = float(r["cpu_seconds_estimate"])
            rows.append({
                "experiment": str(r["experiment"]),
                "chapter": str(r.get("chapter", "-")),
                "paper scale": "estimate, whole chapter",
                "cells": "-",
                "CPU time": _duration(est),
                "slowest cell": "-",
                "device": "cpu float64 1 thread(s)",
                "how": f"estimated: {r['slice']} timed ({_duration(float(r['slice_seconds']))}), x {r['factor']:.3g}",
            })
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: record {i} lacks a valid {e} (need experiment, slice, slice_seconds, factor, "
                             "cpu_seconds_estimate)") from None
    return rows


def chapter_run_costs(root: str | os.PathLike) -> list[dict[str, str]]:
    """One row per whole-chapter run stored by :mod:`booktools.chapter_runs` (measured wall time)."""
    from booktools.chapter_runs import chapter_runs

    rows = []
    for data, recs, current in chapter_runs(root):
        prov = data["provenance"]
        rows.append({
            "experiment": f"{Path(data['notebook']).stem} (whole chapter)",
            "chapter": data["notebook"],
            "paper scale": "run (whole chapter)" + ("" if current else "; stale: rerun"),
            "cells": "1",
            "CPU time": _duration(float(prov["wall_s"])),
            "slowest cell": "-",
            "device": f"{prov.get('device', '?')} {prov.get('threads', '?')} thread(s)",
            "how": f"measured: chapter executed at scale {data['scale']} ({len(recs)} claims)",
        })
    return rows


def cost_rows(root: str | os.PathLike) -> list[dict[str, str]]:
    """Measured rows (results store, whole-chapter runs) first, then estimated ones (benchmark) of
    experiments that have neither."""
    measured = store_costs(root) + chapter_run_costs(root)
    done = {r["chapter"] for r in measured if "whole chapter" in r["paper scale"]}
    return measured + [r for r in benchmark_costs(root) if r["chapter"] not in done]


def costs_csv(root: str | os.PathLike) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COST_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(cost_rows(root))
    return buf.getvalue()


def write_costs(root: str | os.PathLike) -> Path:
    """Write :data:`COSTS_PATH` under ``root`` (atomically); returns its path."""
    path = Path(root) / COSTS_PATH
    atomic_write_text(path, costs_csv(root))
    return path
