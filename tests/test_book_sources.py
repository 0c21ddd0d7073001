"""Checks of the book's sources (no execution, no build): every toc page exists, every chapter is
executed without errors, and directives are written so that MyST renders them."""

from __future__ import annotations

import json
from pathlib import Path

import booktools as book
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = book.toc_entries(ROOT)


def test_toc_names_the_book_pages() -> None:
    names = [p.as_posix() for p in PAGES]
    assert names[0] == "book/intro.md" and "book/notation.md" in names
    assert "book/appendix/reproducing.md" in names and "book/appendix/claims_summary.ipynb" in names


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_directive_titles_with_roles_use_colon_fences(page: Path) -> None:
    problems = book.fence_problems(ROOT / page)
    assert not problems, (
        "a directive opened with ``` whose title holds a role (e.g. {cite}`key`) is not a directive in "
        "CommonMark: it renders as inline code and its :label: is undefined. Use a colon fence "
        f"(:::{{prf:theorem}} ... :::), e.g. `.venv/bin/python -m booktools fix-fences {page}`:\n"
        + "\n".join(problems))


@pytest.mark.parametrize("page", [p for p in PAGES if p.suffix == ".ipynb"], ids=str)
def test_notebook_is_executed_without_errors(page: Path) -> None:
    nb = json.loads((ROOT / page).read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    assert code, f"{page} has no code"
    assert any(c.get("outputs") for c in code), f"{page} has no stored outputs: execute it (make execute NB={page})"
    errors = [o.get("ename") for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{page} stores error outputs: {errors}"
    assert nb.get("metadata", {}).get("language_info", {}).get("name") == "python", (
        f"{page} lacks language_info metadata (not executed by a kernel?)")


def test_claims_records_are_complete_and_unique() -> None:
    """Every chapter's claims cell stores JSON records (read by the claims summary); ids are unique
    across the book and every record carries its scale."""
    claims = book.book_claims(ROOT)
    ids = [r.id for recs in claims.values() for r in recs]
    assert len(ids) == len(set(ids)), f"duplicate claim ids: {sorted({i for i in ids if ids.count(i) > 1})}"
    for path, recs in claims.items():
        nb = json.loads((ROOT / path).read_text(encoding="utf-8"))
        stored = [o for c in nb["cells"] for o in c.get("outputs", []) if book.CLAIMS_MIME in o.get("data", {})]
        assert stored, f"{path} has no claims cell output with {book.CLAIMS_MIME} (execute it)"
        for r in recs:
            assert r.status in ("PASS", "FAIL") and r.scale in ("smoke", "book", "paper"), (path, r.id)
