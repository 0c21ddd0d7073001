"""Execute notebooks in place for ``make execute``: in parallel, atomically, reproducibly.

- ``jobs`` notebooks run at once (one kernel each; the Makefile gives each kernel one torch thread, so
  two at a time on a 2-core machine); the appendix notebooks, which read the chapters' stored
  outputs, run after all chapters.
- A notebook is written only after all its cells ran, through a temporary file renamed over the old
  one, so an error or an interruption never leaves a half-written or half-executed notebook.
- Outputs are normalized so that two identical executions give byte-identical files: consecutive
  stream outputs of one stream are merged, and per-cell execution timestamps are dropped.
- Wall times go to ``book/appendix/timings.csv`` (also written atomically).
- A failing cell is reported in one line (notebook, cell, exception) and the run exits non-zero.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from booktools.toc import execution_order, is_appendix, repo_root

__all__ = ["TIMINGS_FIELDS", "TIMINGS_PATH", "ExecutionFailed", "atomic_write_text", "normalize_notebook",
           "read_timings", "write_timings", "execute_notebook", "execute_notebooks"]

#: Columns of the timings file (one row per notebook, then a ``total`` row).
TIMINGS_FIELDS: tuple[str, ...] = ("notebook", "seconds", "scale", "device", "cpus")
#: Default location of the timings file, relative to the repository root.
TIMINGS_PATH = Path("book") / "appendix" / "timings.csv"


class ExecutionFailed(RuntimeError):
    """A notebook failed to execute; the message is one line: notebook, cell, exception."""


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def normalize_notebook(nb: dict) -> dict:
    """Merge consecutive stream outputs of the same stream and drop execution timestamps (in place)."""
    for cell in nb.get("cells", []):
        cell.get("metadata", {}).pop("execution", None)
        outs = cell.get("outputs")
        if not outs:
            continue
        merged: list[dict] = []
        for o in outs:
            if (o.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                    and merged[-1].get("name") == o.get("name")):
                prev = merged[-1]
                prev["text"] = "".join(prev["text"]) + "".join(o["text"])
            else:
                merged.append(o)
        for o in merged:  # one form for stream text however the kernel chunked it: a list of lines
            if o.get("output_type") == "stream":
                o["text"] = "".join(o["text"]).splitlines(keepends=True)
        cell["outputs"] = merged
    return nb


# -- timings ------------------------------------------------------------------------------------------
def read_timings(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of the timings file without the ``total`` row ([] if the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and list(rows[0].keys()) != list(TIMINGS_FIELDS):
        raise ValueError(f"{path}: expected columns {','.join(TIMINGS_FIELDS)}, got {','.join(rows[0])}")
    return [r for r in rows if r["notebook"] != "total"]


def write_timings(path: str | os.PathLike, rows: Sequence[dict[str, object]],
                  order: Sequence[Path] | None = None) -> None:
    """Write the timings rows (sorted by ``order`` when given) and a ``total`` row, atomically."""
    rank = {str(p): i for i, p in enumerate(order or [])}
    rows = sorted(rows, key=lambda r: (rank.get(str(r["notebook"]), len(rank)), str(r["notebook"])))
    total = sum(float(r["seconds"]) for r in rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=TIMINGS_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r[k] for k in TIMINGS_FIELDS})
    w.writerow({"notebook": "total", "seconds": f"{total:.0f}",
                "scale": "/".join(sorted({str(r["scale"]) for r in rows})),
                "device": "/".join(sorted({str(r["device"]) for r in rows})),
                "cpus": "/".join(sorted({str(r["cpus"]) for r in rows}))})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buf.getvalue())


# -- execution ----------------------------------------------------------------------------------------
def execute_notebook(path: Path, timeout: int = 1800) -> float:
    """Execute one notebook in place (its folder as working directory); returns the wall time.

    Raises :class:`ExecutionFailed` with a one-line message on a cell error; the file is then untouched.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            allow_errors=False, resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as e:
        cell = next((i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error"
                                                                for o in c.get("outputs", []))), "?")
        raise ExecutionFailed(f"{path}: cell {cell} raised {e.ename}: {e.evalue}".splitlines()[0]) from None
    except CellTimeoutError:
        raise ExecutionFailed(f"{path}: a cell ran longer than the timeout ({timeout} s)") from None
    seconds = time.perf_counter() - t0
    data = normalize_notebook(json.loads(nbformat.writes(nb)))
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    return seconds


def execute_notebooks(paths: Sequence[str | os.PathLike], root: str | os.PathLike | None = None,
                      timings: str | os.PathLike | None = TIMINGS_PATH, timeout: int = 1800, jobs: int = 2,
                      log: Callable[[str], None] | None = None) -> list[dict[str, object]]:
    """Execute notebooks in place, ``jobs`` at a time; appendix notebooks after all the others.

    Records wall times in ``timings`` (relative to ``root``; rows of other notebooks are kept).  The
    first failure is raised as :class:`ExecutionFailed` after the running notebooks finish; notebooks
    that succeeded are saved.
    """
    if int(jobs) < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    log = log or (lambda msg: print(msg, flush=True))
    root = repo_root() if root is None else Path(root)
    # The python3 kernelspec runs `python`: make it this interpreter (e.g. the project's .venv).
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    timings_path = root / timings if timings is not None else None
    old = {r["notebook"]: r for r in read_timings(timings_path)} if timings_path else {}
    meta = {"scale": os.environ.get("CNNBIAS_SCALE", "book"), "device": os.environ.get("CNNBIAS_DEVICE", "auto"),
            "cpus": str(os.cpu_count() or 0)}
    rels = [Path(os.path.relpath(Path(p) if Path(p).is_absolute() else root / p, root)) for p in paths]
    stages = [[p for p in rels if not is_appendix(p)], [p for p in rels if is_appendix(p)]]
    new_rows: list[dict[str, object]] = []
    failures: list[str] = []
    for stage in stages:
        if not stage or failures:
            continue
        with ThreadPoolExecutor(max_workers=int(jobs)) as pool:
            futures = {pool.submit(execute_notebook, root / p, timeout): p for p in stage}
            for p in stage:
                log(f"executing {p} ...")
            for fut in as_completed(futures):
                p = futures[fut]
                try:
                    seconds = fut.result()
                except ExecutionFailed as e:
                    failures.append(str(e))
                    log(f"  FAILED {e}")
                    continue
                row = {"notebook": p.as_posix(), "seconds": f"{seconds:.0f}", **meta}
                new_rows.append(row)
                old[p.as_posix()] = row
                log(f"  {p}: {seconds:.1f} s")
                if timings_path is not None:
                    write_timings(timings_path, list(old.values()), execution_order(root))
    if failures:
        raise ExecutionFailed("; ".join(failures))
    return new_rows
