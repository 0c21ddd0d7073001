"""The claims of the book, read from the JSON records in the chapters' stored outputs.

Each chapter's claims cell (``cnnbias.claims.Claims.report``) emits one display bundle whose
:data:`CLAIMS_MIME` entry is ``{"claims": [record, ...]}``; a record holds id, statement, status,
measured values (numbers), standard error, tolerance, paper value and scale.  Nothing here parses
the readable text.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from booktools.toc import chapter_notebooks, repo_root

__all__ = ["CLAIMS_MIME", "ClaimRecord", "read_claims", "book_claims", "claims_counts", "claims_markdown",
           "notebook_title", "load_notebook", "scale_comparison", "scale_markdown"]

#: Must equal ``cnnbias.claims.CLAIMS_MIME`` (tested): the library writes, the tools read.
CLAIMS_MIME = "application/vnd.cnnbias.claims+json"
_REQUIRED = ("id", "statement", "status", "values", "tolerance", "paper", "scale")


@dataclass(frozen=True)
class ClaimRecord:
    """One claim record, as stored in a chapter notebook."""

    notebook: str  # path relative to the repository root
    id: str
    status: str  # "PASS" | "FAIL"
    statement: str
    values: dict = field(default_factory=dict)
    se: float | None = None
    tolerance: str = ""
    paper: str = ""
    paper_value: float | None = None
    measured: str = ""
    scale: str = "book"

    @property
    def passed(self) -> bool:
        return self.status == "PASS"


def load_notebook(path: str | os.PathLike) -> dict:
    """A notebook's JSON; a file that is not a valid notebook raises ValueError naming it."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            nb = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a valid notebook ({e})") from e
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError(f"{path}: not a valid notebook (no list of cells)")
    return nb


def notebook_title(path: str | os.PathLike) -> str:
    """The first level-1 markdown heading of a notebook (its file stem if it has none)."""
    for cell in load_notebook(path).get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        for line in "".join(cell.get("source", "")).splitlines():
            m = re.match(r"^#\s+(.+?)\s*$", line)
            if m:
                return m.group(1)
    return Path(path).stem


def _record(rec: dict, where: str, rel: str) -> ClaimRecord:
    missing = [k for k in _REQUIRED if k not in rec]
    if missing:
        raise ValueError(f"{where}: claim record {rec.get('id', '?')!r} lacks {', '.join(missing)}")
    if rec["status"] not in ("PASS", "FAIL"):
        raise ValueError(f"{where}: claim {rec['id']!r} has status {rec['status']!r}; allowed: PASS, FAIL")
    return ClaimRecord(rel, rec["id"], rec["status"], rec["statement"], dict(rec["values"]), rec.get("se"),
                       rec["tolerance"], rec["paper"], rec.get("paper_value"), rec.get("measured", ""),
                       rec["scale"])


def read_claims(path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[ClaimRecord]:
    """The claim records in a notebook's stored outputs, in order.  If an (id, scale) pair appears more
    than once (a chapter reporting twice), the last one wins; the same id at two scales (a chapter showing
    its paper-scale results from the results store beside its own) gives two records.  Malformed records
    raise ValueError naming the file."""
    path = Path(path)
    nb = load_notebook(path)
    rel = Path(os.path.relpath(path, root)).as_posix() if root is not None else str(path)
    found: dict[tuple[str, str], ClaimRecord] = {}
    for i, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            payload = output.get("data", {}).get(CLAIMS_MIME)
            if payload is None:
                continue
            if isinstance(payload, str):
                payload = json.loads(payload)
            if not isinstance(payload, dict) or not isinstance(payload.get("claims"), list):
                raise ValueError(f"{path} (cell {i}): {CLAIMS_MIME} output must be {{'claims': [...]}}")
            for rec in payload["claims"]:
                r = _record(rec, f"{path} (cell {i})", rel)
                found.pop((r.id, r.scale), None)
                found[(r.id, r.scale)] = r
    return list(found.values())


def book_claims(root: str | os.PathLike | None = None, runs: bool = True) -> dict[Path, list[ClaimRecord]]:
    """Claims of every chapter notebook in the toc (appendix excluded), keyed by notebook path relative
    to the root, in toc order.  A chapter with no records maps to an empty list.  With ``runs`` the
    records of whole-chapter runs at other scales (:mod:`booktools.chapter_runs`, current ones only) are
    added after the chapter's own records, for scales the chapter does not record itself."""
    root = repo_root() if root is None else Path(root)
    out = {p: read_claims(root / p, root) for p in chapter_notebooks(root)}
    if runs:
        from booktools.chapter_runs import chapter_runs

        for data, recs, current in chapter_runs(root):
            nb = Path(data["notebook"])
            if current and nb in out and all(r.scale != data["scale"] for r in out[nb]):
                out[nb] = out[nb] + recs
    return out


def claims_counts(claims: dict[Path, list[ClaimRecord]], scale: str = "book") -> dict[str, int]:
    """Counts across the book of the records at ``scale`` (default: the book scale of the stored outputs):
    chapters, chapters without claims at that scale, claims, passed, failed."""
    claims = {p: [r for r in rs if r.scale == scale] for p, rs in claims.items()}
    records = [r for rs in claims.values() for r in rs]
    return {
        "chapters": len(claims),
        "chapters_without_claims": sum(not rs for rs in claims.values()),
        "claims": len(records),
        "passed": sum(r.passed for r in records),
        "failed": sum(not r.passed for r in records),
    }


def scale_comparison(claims: dict[Path, list[ClaimRecord]], scale: str = "paper",
                     base: str = "book") -> list[tuple[ClaimRecord | None, ClaimRecord]]:
    """Pairs ``(record at base scale or None, record at scale)`` for every claim evaluated at ``scale``."""
    out = []
    for recs in claims.values():
        at_base = {r.id: r for r in recs if r.scale == base}
        out += [(at_base.get(r.id), r) for r in recs if r.scale == scale]
    return out


def scale_markdown(claims: dict[Path, list[ClaimRecord]], scale: str = "paper", base: str = "book") -> str:
    """Markdown table of the claims evaluated at ``scale`` beside their status at ``base`` scale."""
    rows = scale_comparison(claims, scale, base)
    if not rows:
        return f"No claim is evaluated at scale {scale} yet.\n"
    lines = [f"| claim | {base} | {scale} | measured at {scale} |", "| --- | --- | --- | --- |"]
    for b, r in rows:
        st = lambda x: "-" if x is None else (x.status if x.passed else f"**{x.status}**")  # noqa: E731
        lines.append(f"| `{r.id}` | {st(b)} | {st(r)} | {_md_cell(r.measured)} |")
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip() or " "


def claims_markdown(claims: dict[Path, list[ClaimRecord]], root: str | os.PathLike | None = None,
                    link_from: str | os.PathLike | None = None) -> str:
    """Markdown: a per-chapter count table, then one row per claim (chapter, id, scale, status,
    measured, paper, tolerance, statement).  ``link_from``: folder (relative to the root) of the page
    that shows it; chapter names then link to their notebooks."""
    root = repo_root() if root is None else Path(root)

    def chapter(p: Path) -> str:
        title = _md_cell(notebook_title(root / p))
        if link_from is None:
            return title
        return f"[{title}]({Path(os.path.relpath(p, link_from)).as_posix()})"

    lines = ["| chapter | claims | passed | failed |", "| --- | ---: | ---: | ---: |"]
    for p, recs in claims.items():
        recs = [r for r in recs if r.scale == "book"]
        n_pass = sum(r.passed for r in recs)
        lines.append(f"| {chapter(p)} | {len(recs)} | {n_pass} | {len(recs) - n_pass} |")
    c = claims_counts(claims)
    lines.append(f"| **all chapters** | **{c['claims']}** | **{c['passed']}** | **{c['failed']}** |")
    lines += ["", "| chapter | claim | scale | status | measured | paper | tolerance | statement |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for p, recs in claims.items():
        title = _md_cell(notebook_title(root / p))
        for r in recs:
            status = r.status if r.passed else f"**{r.status}**"
            lines.append(" | ".join([
                f"| {title}", f"`{r.id}`", r.scale, status, _md_cell(r.measured), _md_cell(r.paper),
                _md_cell(r.tolerance), _md_cell(r.statement)]) + " |")
    return "\n".join(lines) + "\n"
