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
    ids = [(r.id, r.scale) for recs in claims.values() for r in recs]
    assert len(ids) == len(set(ids)), f"duplicate claim ids: {sorted({i for i in ids if ids.count(i) > 1})}"
    for path, recs in claims.items():
        nb = json.loads((ROOT / path).read_text(encoding="utf-8"))
        stored = [o for c in nb["cells"] for o in c.get("outputs", []) if book.CLAIMS_MIME in o.get("data", {})]
        assert stored, f"{path} has no claims cell output with {book.CLAIMS_MIME} (execute it)"
        for r in recs:
            assert r.status in ("PASS", "FAIL") and r.scale in ("smoke", "book", "paper"), (path, r.id)


# ---------------------------------------------------------------------------------------------
# A chapter reads like a paper: every figure is a numbered, captioned figure cited in the text, and
# no line of code is wider than the page.

CHAPTERS = [p for p in PAGES if p.suffix == ".ipynb" and p.parts[:2] != ("book", "appendix")]
MAX_CODE_LINE = 100

# Figure cells that cannot carry figure metadata yet: myst-nb wraps EVERY display output of a cell
# in the cell's figure, so a cell whose other outputs (a trailing expression's execute_result, or a
# second figure) are displayed would define the figure's name twice.  Each needs a code change
# (``_ = ...`` on the last expression, or one figure per cell) and a re-execution, then its
# metadata; remove it from here then (the test fails while a listed cell already has a caption).
PENDING_FIGURES: dict[tuple[str, str], str] = {}


def _cells(page: Path) -> list[dict]:
    return json.loads((ROOT / page).read_text(encoding="utf-8"))["cells"]


def _figure_cells(page: Path) -> list[dict]:
    return [c for c in _cells(page) if c["cell_type"] == "code"
            and any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]


@pytest.mark.parametrize("page", CHAPTERS, ids=str)
def test_figures_are_named_captioned_and_cited(page: Path) -> None:
    cells = _cells(page)
    markdown = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    problems = []
    for c in _figure_cells(page):
        key = (page.as_posix(), c.get("id"))
        fig = c.get("metadata", {}).get("mystnb", {}).get("figure", {})
        if key in PENDING_FIGURES:
            if fig:
                problems.append(f"cell {c.get('id')} has figure metadata now: remove it from PENDING_FIGURES")
            continue
        name, caption = fig.get("name", ""), str(fig.get("caption", "")).strip()
        shown = [o for o in c.get("outputs", []) if o.get("output_type") in ("display_data", "execute_result")
                 and not all(k.startswith("application/papermill.record") for k in o.get("data", {}))]
        if not name.startswith("fig-") or not caption:
            problems.append(f"cell {c.get('id')} makes a figure without mystnb figure name (fig-...) and caption")
        elif len(shown) != 1:
            problems.append(f"figure {name} (cell {c.get('id')}): {len(shown)} displayed outputs; myst-nb wraps each "
                            "in the figure (duplicate name): one figure per cell, `_ = ...` on a last expression")
        elif f"{{numref}}`{name}`" not in markdown:
            problems.append(f"figure {name} (cell {c.get('id')}) is not cited with {{numref}}`{name}` in the text")
    assert not problems, (
        f"{page}: every figure cell needs cell metadata "
        '{"mystnb": {"figure": {"name": "fig-<chapter>-<x>", "caption": "..."}}} and a citation:\n'
        + "\n".join(problems))


@pytest.mark.parametrize("page", CHAPTERS, ids=str)
def test_code_lines_fit_the_page(page: Path) -> None:
    long = [f"cell {c.get('id')}: {len(line)} chars: {line.strip()[:60]}..."
            for c in _cells(page) if c["cell_type"] == "code"
            for line in "".join(c["source"]).splitlines() if len(line) > MAX_CODE_LINE]
    assert not long, f"{page}: code lines over {MAX_CODE_LINE} characters overflow in HTML:\n" + "\n".join(long)


def test_every_library_module_is_in_the_api_reference() -> None:
    """book/api/<layer>.md has an ``.. automodule::`` for every public module of lib/cnnbias."""
    lib = ROOT / "lib"
    modules = set()
    for p in (lib / "cnnbias").rglob("*.py"):
        parts = list(p.relative_to(lib).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] == "__main__" or any(x.startswith("_") for x in parts):
            continue
        modules.add(".".join(parts))
    documented = {line.split("::", 1)[1].strip()
                  for md in (ROOT / "book" / "api").glob("*.md")
                  for line in md.read_text(encoding="utf-8").splitlines() if line.startswith(".. automodule::")}
    missing = sorted(modules - documented)
    assert not missing, ("modules missing from the API reference (add an automodule block to the page of "
                         f"their layer in book/api/): {missing}")


def test_paper_cost_table_is_current():
    """book/appendix/paper_costs.csv equals a fresh one from results/ and benchmarks/paper_cost.json
    (``python -m booktools costs`` or ``make execute`` rewrites it)."""
    from booktools.costs import COSTS_PATH, costs_csv

    assert (ROOT / COSTS_PATH).read_text(encoding="utf-8") == costs_csv(ROOT), (
        f"{COSTS_PATH} is out of date: run `python -m booktools costs` and commit it")


def test_chapter_runs_are_current():
    """Whole-chapter runs at paper scale (results/chapters) match the chapters' code and the library;
    after a change rerun `python -m booktools chapter-run <chapter> --scale paper` and commit."""
    from booktools.chapter_runs import stale_runs

    assert not stale_runs(ROOT), f"stale chapter runs: {stale_runs(ROOT)}"
