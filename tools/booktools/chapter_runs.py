"""Whole chapters executed at another scale, their claim records kept in the results store.

Some chapters fit on a CPU at the papers' scale in minutes; they are not split into sweep cells but
run whole: ``python -m booktools chapter-run book/part1/limit_directions.ipynb --scale paper`` executes a
temporary copy of the chapter at that scale (the stored notebook is untouched) and writes its claim
records, with provenance, to ``results/chapters/<chapter stem>.<scale>.json`` (atomically).

A record file is *current* only while its ``fingerprint`` matches: the sha256 of the chapter's code
cells and of every source file of the ``cnnbias`` library (``lib/cnnbias/**/*.py``, its tokens without
comments).  Any change of the
chapter's code or of the library makes it stale; the claims summary then leaves it out and names it, and
a test of the book's sources fails until the chapter is rerun (minutes for the chapters that use this).
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import platform
import subprocess
import tokenize
from pathlib import Path

from booktools.claims import ClaimRecord, load_notebook
from booktools.execute import atomic_write_text

__all__ = ["RUNS_DIR", "fingerprint", "run_path", "run_chapter", "chapter_runs", "stale_runs", "chapter_run",
           "run_markdown"]

RUNS_DIR = Path("results") / "chapters"
_FIELDS = ("id", "status", "statement", "values", "se", "tolerance", "paper", "paper_value", "measured", "scale")


def fingerprint(notebook: str | os.PathLike, root: str | os.PathLike) -> str:
    """sha256 (16 hex digits) of the chapter's code cells and of the library's source files."""
    root = Path(root)
    h = hashlib.sha256()
    for cell in load_notebook(root / notebook)["cells"]:
        if cell.get("cell_type") == "code":
            h.update("".join(cell.get("source", [])).encode())
            h.update(b"\0")
    for f in sorted((root / "lib" / "cnnbias").rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + _code_tokens(f).encode() + b"\0")
    return h.hexdigest()[:16]


def _code_tokens(path: Path) -> str:
    """The Python tokens of a source file without comments and blank lines (a comment-only edit keeps
    the fingerprint); a file that does not tokenize counts by its raw text."""
    text = path.read_text(encoding="utf-8")
    try:
        toks = tokenize.generate_tokens(io.StringIO(text).readline)
        return "\x1f".join(t.string for t in toks if t.type not in (tokenize.COMMENT, tokenize.NL))
    except (tokenize.TokenError, SyntaxError):
        return text


def run_path(notebook: str | os.PathLike, scale: str, root: str | os.PathLike) -> Path:
    return Path(root) / RUNS_DIR / f"{Path(notebook).stem}.{scale}.json"


def _git(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "lib"], cwd=root, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_chapter(notebook: str | os.PathLike, scale: str, root: str | os.PathLike, device: str | None = None,
                timeout: int = 3600) -> Path:
    """Execute a copy of ``notebook`` (relative to ``root``) at ``scale``; store its records at that
    scale with provenance; return the file written.  A chapter that records no claim at that scale is
    an error (nothing is written)."""
    from booktools.reproduce import execute_copy

    root = Path(root)
    rel = Path(notebook)
    fp = fingerprint(rel, root)
    recs, seconds = execute_copy(root / rel, scale, root, device=device, timeout=timeout)
    recs = [r for r in recs if r.scale == scale]
    if not recs:
        raise LookupError(f"{rel} executed at scale {scale!r} recorded no claim at that scale")
    data = {
        "format": "booktools.chapter-run/1",
        "notebook": rel.as_posix(),
        "scale": scale,
        "fingerprint": fp,
        "provenance": {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "wall_s": round(seconds, 1),
            "device": device or os.environ.get("CNNBIAS_DEVICE", "auto"),
            "threads": os.environ.get("CNNBIAS_THREADS", "default"),
            "python": platform.python_version(),
            "git": _git(root),
        },
        "claims": [{f: getattr(r, f) for f in _FIELDS} for r in recs],
    }
    path = run_path(rel, scale, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        for key in ("notebook", "scale", "fingerprint", "provenance", "claims"):
            data[key]
        float(data["provenance"]["wall_s"])
        return data
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a chapter-run record file ({type(e).__name__}: {e})") from None


def chapter_runs(root: str | os.PathLike) -> list[tuple[dict, list[ClaimRecord], bool]]:
    """``(data, records, current)`` for every file under :data:`RUNS_DIR`, sorted by file name; a
    malformed file raises ValueError naming it."""
    root = Path(root)
    out = []
    for path in sorted((root / RUNS_DIR).glob("*.json")):
        data = _read(path)
        nb = data["notebook"]
        current = (root / nb).is_file() and fingerprint(nb, root) == data["fingerprint"]
        recs = [ClaimRecord(nb, **{f: r.get(f) for f in _FIELDS}) for r in data["claims"]]
        out.append((data, recs, current))
    return out


def stale_runs(root: str | os.PathLike) -> list[str]:
    """The record files whose chapter code or library changed since they were computed."""
    return [f"{d['notebook']} [{d['scale']}]" for d, _, current in chapter_runs(root) if not current]


def chapter_run(notebook: str | os.PathLike, scale: str, root: str | os.PathLike) -> tuple[dict, list[ClaimRecord], bool]:
    """``(data, records, current)`` of the stored run of one chapter at ``scale``.  A missing record file
    raises FileNotFoundError with the command that computes it (a chapter that shows its whole-chapter run
    fails loudly rather than showing nothing); a malformed one raises ValueError naming it."""
    root = Path(root)
    rel = Path(notebook)
    path = run_path(rel, scale, root)
    if not path.is_file():
        raise FileNotFoundError(f"no stored run of {rel.as_posix()} at scale {scale!r} ({path}); compute it with "
                                f"python -m booktools chapter-run --scale {scale} {rel.as_posix()}")
    data = _read(path)
    if data["notebook"] != rel.as_posix() or data["scale"] != scale:
        raise ValueError(f"{path}: holds {data['notebook']} at scale {data['scale']!r}, "
                         f"not {rel.as_posix()} at {scale!r}")
    current = (root / rel).is_file() and fingerprint(rel, root) == data["fingerprint"]
    recs = [ClaimRecord(rel.as_posix(), **{f: r.get(f) for f in _FIELDS}) for r in data["claims"]]
    return data, recs, current


def run_markdown(notebook: str | os.PathLike, scale: str, root: str | os.PathLike) -> str:
    """Markdown for a chapter's page: one line of provenance of its stored whole-chapter run at ``scale``
    (date, CPU time, device, commit; *stale* when the chapter or the library changed since), then a
    table of the claims at that scale (status, measured)."""
    data, recs, current = chapter_run(notebook, scale, root)
    prov = data["provenance"]
    from booktools.claims import _md_cell

    head = (f"Whole-chapter run at scale `{scale}`: {prov['date'][:10]}, {float(prov['wall_s']):.0f} s on "
            f"{prov.get('device', '?')} ({prov.get('threads', '?')} thread(s)), commit `{str(prov.get('git', '?'))[:12]}`"
            + ("." if current else "; **stale**: the chapter's code or the library changed since, rerun it with "
               f"`python -m booktools chapter-run --scale {scale} {Path(notebook).as_posix()}`."))
    lines = [head, "", f"| claim | status at {scale} | measured at {scale} |", "| --- | --- | --- |"]
    for r in recs:
        lines.append(f"| `{r.id}` | {r.status if r.passed else f'**{r.status}**'} | {_md_cell(r.measured)} |")
    return "\n".join(lines) + "\n"
