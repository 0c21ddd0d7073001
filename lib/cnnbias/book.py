"""Book tooling: the table of contents, the claims across the book, notebook execution times.

The book's chapters are notebooks committed *executed*.  Each chapter prints its claims in one cell
with :meth:`cnnbias.claims.Claims.report`, one line per claim::

    <id>  PASS|FAIL  measured=<...> | paper=<...> | tol=<...>
        <statement>

This module reads those lines back from the STORED outputs of every chapter notebook (no
re-execution), so that the appendix can show one table of what the book reproduces, and it
executes the notebooks in place for ``make execute``, recording each notebook's wall time in
``book/appendix/timings.csv`` (shown in the appendix "Reproducing this book").

Command line (used by the Makefile)::

    python -m cnnbias.book list                 # notebooks in execution order
    python -m cnnbias.book execute [NB ...]     # execute in place, update the timings file
    python -m cnnbias.book claims               # print the claims summary as text
    python -m cnnbias.book fix-fences NB ...    # ```{prf:..} titles with roles -> :::{prf:..}

Only the standard library is needed to read claims and timings; executing notebooks needs the
``book`` extra (``nbformat``, ``nbclient``, ``ipykernel``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cnnbias.claims import CLAIM_LINE

__all__ = [
    "TIMINGS_FIELDS",
    "ClaimRecord",
    "book_claims",
    "chapter_notebooks",
    "claims_counts",
    "claims_markdown",
    "execute_notebooks",
    "execution_order",
    "fence_problems",
    "fix_fences",
    "main",
    "notebook_title",
    "read_claims",
    "read_timings",
    "repo_root",
    "toc_entries",
    "write_timings",
]

#: Columns of the timings file (one row per notebook, then a ``total`` row).
TIMINGS_FIELDS: tuple[str, ...] = ("notebook", "seconds", "scale", "device", "cpus")
#: Default location of the timings file, relative to the repository root.
TIMINGS_PATH = Path("book") / "appendix" / "timings.csv"
#: Folder of the appendix notebooks (executed after the chapters; not part of the claims table).
APPENDIX = Path("book") / "appendix"

_TOC_ENTRY = re.compile(r"^\s*(?:-\s*)?(?:file|root)\s*:\s*([^\s#]+)", re.MULTILINE)


@dataclass(frozen=True)
class ClaimRecord:
    """One claim line read back from a notebook's stored output."""

    notebook: str  # path relative to the repository root
    id: str
    status: str  # "PASS" | "FAIL"
    measured: str
    paper: str
    tol: str
    statement: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "PASS"


# -- the table of contents -------------------------------------------------------------------------
def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The repository root: the first folder at or above ``start`` (default: cwd) with ``_toc.yml``.

    Notebooks execute with their own folder as the working directory (nbval, jupyter-book), so the
    appendix notebook finds the book from wherever it runs.
    """
    here = Path(start if start is not None else os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    raise FileNotFoundError(f"no _toc.yml at or above {here}")


def toc_entries(root: str | os.PathLike) -> list[Path]:
    """The files named in ``_toc.yml`` (``root:`` and every ``file:``), in order, resolved to
    existing ``.md``/``.ipynb`` files relative to ``root``.

    A toc entry with no matching file raises FileNotFoundError naming it.
    """
    root = Path(root)
    text = (root / "_toc.yml").read_text(encoding="utf-8")
    out: list[Path] = []
    for name in _TOC_ENTRY.findall(text):
        name = name.strip("'\"")
        candidates = [Path(name)] if Path(name).suffix in (".md", ".ipynb") else [
            Path(name + ".ipynb"), Path(name + ".md")]
        found = [c for c in candidates if (root / c).is_file()]
        if not found:
            raise FileNotFoundError(f"_toc.yml names {name}, which does not exist under {root}")
        out.append(found[0])
    return out


def _is_appendix(path: Path) -> bool:
    return APPENDIX in path.parents


def execution_order(root: str | os.PathLike) -> list[Path]:
    """Every notebook under ``book/`` (relative to ``root``): chapters first, in toc order (notebooks
    the toc does not name come after, sorted), then the appendix notebooks, which read the chapters'
    stored outputs."""
    root = Path(root)
    all_nbs = sorted(
        p.relative_to(root)
        for p in (root / "book").rglob("*.ipynb")
        if ".ipynb_checkpoints" not in p.parts and "_build" not in p.parts
    )
    toc = [p for p in toc_entries(root) if p.suffix == ".ipynb"]
    rank = {p: i for i, p in enumerate(toc)}
    return sorted(all_nbs, key=lambda p: (_is_appendix(p), rank.get(p, len(rank)), str(p)))


def chapter_notebooks(root: str | os.PathLike) -> list[Path]:
    """The chapter notebooks named in the toc (appendix excluded), in toc order."""
    return [p for p in toc_entries(root) if p.suffix == ".ipynb" and not _is_appendix(p)]


# -- reading stored outputs -------------------------------------------------------------------------
def _load(path: str | os.PathLike) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def notebook_title(path: str | os.PathLike) -> str:
    """The first level-1 markdown heading of a notebook (its file stem if it has none)."""
    for cell in _load(path).get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        for line in "".join(cell.get("source", "")).splitlines():
            m = re.match(r"^#\s+(.+?)\s*$", line)
            if m:
                return m.group(1)
    return Path(path).stem


def _output_texts(output: dict) -> Iterable[str]:
    if output.get("output_type") == "stream" and output.get("name") == "stdout":
        yield "".join(output.get("text", ""))
    elif output.get("output_type") in ("execute_result", "display_data"):
        text = output.get("data", {}).get("text/plain")
        if text is not None:
            yield "".join(text)


def read_claims(path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[ClaimRecord]:
    """The claims printed in a notebook's stored outputs, in order.

    Lines are matched with :data:`cnnbias.claims.CLAIM_LINE`; an indented line right after a claim
    line is its statement.  If an id is printed more than once (e.g. a chapter printing its claims
    twice), the last printing wins.  A notebook that is not valid JSON raises ValueError naming it.
    """
    path = Path(path)
    try:
        nb = _load(path)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a valid notebook ({e})") from e
    rel = str(path.relative_to(root)) if root is not None else str(path)
    found: dict[str, ClaimRecord] = {}
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs", []):
            for text in _output_texts(output):
                lines = text.splitlines()
                for i, line in enumerate(lines):
                    m = CLAIM_LINE.match(line.rstrip())
                    if not m:
                        continue
                    statement = ""
                    if i + 1 < len(lines) and lines[i + 1].startswith("    ") and not CLAIM_LINE.match(
                            lines[i + 1].strip()):
                        statement = lines[i + 1].strip()
                    rec = ClaimRecord(rel, m["id"], m["status"], m["measured"].strip(), m["paper"].strip(),
                                      m["tol"].strip(), statement)
                    found.pop(rec.id, None)
                    found[rec.id] = rec
    return list(found.values())


def book_claims(root: str | os.PathLike | None = None) -> dict[Path, list[ClaimRecord]]:
    """Claims of every chapter notebook in the toc (appendix excluded), keyed by notebook path
    relative to the root, in toc order.  A chapter with no claim lines maps to an empty list."""
    root = repo_root() if root is None else Path(root)
    return {p: read_claims(root / p, root) for p in chapter_notebooks(root)}


def claims_counts(claims: dict[Path, list[ClaimRecord]]) -> dict[str, int]:
    """Counts across the book: chapters, chapters without claims, claims, passed, failed."""
    records = [r for rs in claims.values() for r in rs]
    return {
        "chapters": len(claims),
        "chapters_without_claims": sum(not rs for rs in claims.values()),
        "claims": len(records),
        "passed": sum(r.passed for r in records),
        "failed": sum(not r.passed for r in records),
    }


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip() or " "


def claims_markdown(claims: dict[Path, list[ClaimRecord]], root: str | os.PathLike | None = None,
                    link_from: str | os.PathLike | None = None) -> str:
    """A markdown document: one table per book with a row per claim (chapter, id, status, measured,
    paper, tolerance, statement), preceded by a per-chapter count table.

    ``link_from``: the folder (relative to the root) of the page the markdown is shown on; chapter
    names then link to their notebooks (relative links, which Sphinx resolves to the pages).
    """
    root = repo_root() if root is None else Path(root)

    def chapter(p: Path) -> str:
        title = _md_cell(notebook_title(root / p))
        if link_from is None:
            return title
        return f"[{title}]({Path(os.path.relpath(p, link_from)).as_posix()})"

    lines = ["| chapter | claims | passed | failed |", "| --- | ---: | ---: | ---: |"]
    for p, recs in claims.items():
        n_pass = sum(r.passed for r in recs)
        lines.append(f"| {chapter(p)} | {len(recs)} | {n_pass} | {len(recs) - n_pass} |")
    c = claims_counts(claims)
    lines.append(f"| **all chapters** | **{c['claims']}** | **{c['passed']}** | **{c['failed']}** |")
    lines += ["", "| chapter | claim | status | measured | paper | tolerance | statement |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for p, recs in claims.items():
        title = _md_cell(notebook_title(root / p))
        for r in recs:
            status = r.status if r.passed else f"**{r.status}**"
            lines.append(" | ".join([
                f"| {title}", f"`{r.id}`", status, _md_cell(r.measured), _md_cell(r.paper),
                _md_cell(r.tol), _md_cell(r.statement)]) + " |")
    return "\n".join(lines) + "\n"


# -- source checks ---------------------------------------------------------------------------------
# CommonMark forbids backticks in the info string of a backtick fence, so a directive opened with
# ```{prf:theorem} Theorem 2 of {cite}`key` is NOT a directive: MyST renders it as a paragraph with
# inline code, silently (no warning), and its :label: is never defined.  Colon fences (:::{prf:...})
# accept roles in the title (myst colon_fence extension, enabled in _config.yml).
_BACKTICK_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]{0,3})(?P<fence>`{3,})(?P<info>\{[^}]+\}.*`.*)$")


def _markdown_sources(path: Path) -> list[tuple[int | None, str]]:
    if path.suffix == ".ipynb":
        cells = _load(path).get("cells", [])
        return [(i, "".join(c.get("source", ""))) for i, c in enumerate(cells) if c.get("cell_type") == "markdown"]
    return [(None, path.read_text(encoding="utf-8"))]


def fence_problems(path: str | os.PathLike) -> list[str]:
    """Directives opened with a backtick fence whose title contains a backtick (e.g. a ``{cite}`` role):
    they do not render as directives.  Returns one message per occurrence (cell index and line)."""
    path = Path(path)
    out = []
    for cell, text in _markdown_sources(path):
        for n, line in enumerate(text.splitlines(), 1):
            if _BACKTICK_DIRECTIVE.match(line):
                where = f"cell {cell}, line {n}" if cell is not None else f"line {n}"
                out.append(f"{path} ({where}): {line.strip()}")
    return out


def _fix_text(text: str) -> tuple[str, int]:
    lines = text.split("\n")
    fixed = 0
    i = 0
    while i < len(lines):
        m = _BACKTICK_DIRECTIVE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = m["indent"], m["fence"]
        close = re.compile(rf"^[ \t]{{0,3}}`{{{len(fence)},}}[ \t]*$")
        for j in range(i + 1, len(lines)):
            if close.match(lines[j]):
                colons = ":" * max(3, len(fence))
                lines[i] = f"{indent}{colons}{m['info']}"
                lines[j] = f"{indent}{colons}"
                fixed += 1
                i = j
                break
        i += 1
    return "\n".join(lines), fixed


def fix_fences(path: str | os.PathLike) -> int:
    """Rewrite the directives found by :func:`fence_problems` with colon fences, in place (markdown
    cells only; outputs untouched).  Returns the number of directives rewritten."""
    path = Path(path)
    if path.suffix != ".ipynb":
        text, n = _fix_text(path.read_text(encoding="utf-8"))
        if n:
            path.write_text(text, encoding="utf-8")
        return n
    raw = path.read_text(encoding="utf-8")
    nb = json.loads(raw)
    total = 0
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        src = cell.get("source", "")
        text, n = _fix_text("".join(src))
        if n:
            total += n
            cell["source"] = text.splitlines(keepends=True) if isinstance(src, list) else text
    if total:
        indent = 1 if raw.startswith("{\n \"") else 2
        path.write_text(json.dumps(nb, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")
    return total


# -- timings ----------------------------------------------------------------------------------------
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
    """Write the timings rows (sorted by ``order`` when given) and a ``total`` row."""
    rank = {str(p): i for i, p in enumerate(order or [])}
    rows = sorted(rows, key=lambda r: (rank.get(str(r["notebook"]), len(rank)), str(r["notebook"])))
    total = sum(float(r["seconds"]) for r in rows)
    scales = sorted({str(r["scale"]) for r in rows})
    devices = sorted({str(r["device"]) for r in rows})
    cpus = sorted({str(r["cpus"]) for r in rows})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=TIMINGS_FIELDS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in TIMINGS_FIELDS})
        w.writerow({"notebook": "total", "seconds": f"{total:.0f}", "scale": "/".join(scales),
                    "device": "/".join(devices), "cpus": "/".join(cpus)})


# -- execution --------------------------------------------------------------------------------------
def execute_notebooks(paths: Sequence[str | os.PathLike], root: str | os.PathLike | None = None,
                      timings: str | os.PathLike | None = TIMINGS_PATH, timeout: int = 1800,
                      log=None) -> list[dict[str, object]]:
    """Execute notebooks in place (in the given order), each with its own folder as working
    directory, and record their wall times in ``timings`` (relative to ``root``; rows of other
    notebooks are kept).  The kernel is the ``python3`` kernel of the running interpreter.

    A cell error raises (nbclient's CellExecutionError) after the notebooks before it were saved.
    """
    import nbformat
    from nbclient import NotebookClient

    if log is None:
        def log(msg: str) -> None:
            print(msg, flush=True)

    root = repo_root() if root is None else Path(root)
    # The python3 kernelspec runs `python`: make it this interpreter (e.g. the project's .venv).
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    timings_path = root / timings if timings is not None else None
    old = {r["notebook"]: r for r in read_timings(timings_path)} if timings_path else {}
    scale = os.environ.get("CNNBIAS_SCALE", "book")
    device = os.environ.get("CNNBIAS_DEVICE", "auto")
    new_rows: list[dict[str, object]] = []
    for p in paths:
        p = Path(p)
        path = p if p.is_absolute() else root / p
        rel = path.resolve().relative_to(root.resolve())
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                                allow_errors=False, resources={"metadata": {"path": str(path.parent)}})
        log(f"executing {rel} ...")
        t0 = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - t0
        nbformat.write(nb, path)
        row = {"notebook": str(rel), "seconds": f"{seconds:.0f}", "scale": scale, "device": device,
               "cpus": str(os.cpu_count() or 0)}
        new_rows.append(row)
        old[str(rel)] = row
        log(f"  {rel}: {seconds:.1f} s")
        if timings_path is not None:
            write_timings(timings_path, list(old.values()), execution_order(root))
    return new_rows


# -- command line -----------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnbias.book", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="print the notebooks in execution order")
    ex = sub.add_parser("execute", help="execute notebooks in place and record their wall times")
    ex.add_argument("notebooks", nargs="*", help="notebooks to execute (default: all, chapters first)")
    ex.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    ex.add_argument("--timings", default=str(TIMINGS_PATH), help="timings CSV, relative to the root")
    sub.add_parser("claims", help="print the claims found in the chapters' stored outputs")
    ff = sub.add_parser("fix-fences", help="rewrite ```{directive} titles with roles as :::{directive} (in place)")
    ff.add_argument("files", nargs="+", help="notebooks or markdown files")
    args = parser.parse_args(argv)
    root = repo_root()
    if args.cmd == "list":
        for p in execution_order(root):
            print(p)
    elif args.cmd == "execute":
        paths = [Path(os.path.abspath(p)).relative_to(root) for p in args.notebooks] or execution_order(root)
        # The appendix reads the chapters' stored outputs: re-execute it after any chapter, last.
        if any(not _is_appendix(p) for p in paths):
            paths += [p for p in execution_order(root) if _is_appendix(p) and p not in paths]
        paths = sorted(paths, key=_is_appendix)
        t0 = time.perf_counter()
        execute_notebooks(paths, root, args.timings, args.timeout)
        print(f"executed {len(paths)} notebooks in {time.perf_counter() - t0:.0f} s")
    elif args.cmd == "claims":
        claims = book_claims(root)
        for p, recs in claims.items():
            print(f"{p}: {len(recs)} claims, {sum(not r.passed for r in recs)} failed")
            for r in recs:
                print(f"  {r.id}  {r.status}  measured={r.measured} | paper={r.paper} | tol={r.tol}")
        c = claims_counts(claims)
        print(f"{c['claims']} claims in {c['chapters']} chapters: {c['passed']} passed, {c['failed']} failed;"
              f" {c['chapters_without_claims']} chapters without claims")
        return 1 if c["failed"] or c["chapters_without_claims"] else 0
    elif args.cmd == "fix-fences":
        for f in args.files:
            n = fix_fences(f)
            print(f"{f}: {n} directive(s) rewritten with colon fences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
