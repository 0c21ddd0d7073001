"""Tests of booktools: toc parsing, claims records read back from stored outputs, execution, timings."""

from __future__ import annotations

import json
from pathlib import Path

import booktools as book
import pytest
from booktools import execute as bx
from cnnbias.claims import CLAIMS_MIME, Claims


def _nb(cells: list[dict]) -> dict:
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 4}


def _md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _code(outputs: list[dict], source: str = "claims.report()") -> dict:
    return {"cell_type": "code", "metadata": {}, "source": source, "outputs": outputs, "execution_count": 1}


def _stream(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": text}


def _report_output(claims: Claims) -> dict:
    """The display_data output that Claims.report() gives in a kernel."""
    return {"output_type": "display_data", "metadata": {}, "data": claims.bundle()}


@pytest.fixture()
def tiny_book(tmp_path: Path) -> Path:
    """A repository with a toc, two chapters (one with claims, one without) and an appendix."""
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: A\n    chapters:\n"
        "      - file: book/a/second\n      - file: book/a/first\n      - file: book/notes\n"
        "  - caption: Appendix\n    chapters:\n      - file: book/appendix/summary\n"
    )
    (tmp_path / "book" / "a").mkdir(parents=True)
    (tmp_path / "book" / "appendix").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    (tmp_path / "book" / "notes.md").write_text("# Notes\n")
    c = Claims("ch")
    c.close("ch.mean", "the mean is near zero", 0.01, 0.0, 0.1, paper="0 (Thm 1)")
    c.at_least("ch.cos", "cosine | with a bar", 0.5, 0.9)
    first = _nb([_md("Intro text\n\n# First chapter\n\n## Section"), _code([_stream("hello\n")], "x = 1"),
                 _code([_report_output(c)])])
    (tmp_path / "book" / "a" / "first.ipynb").write_text(json.dumps(first))
    (tmp_path / "book" / "a" / "second.ipynb").write_text(json.dumps(_nb([_md("# Second"), _code([])])))
    (tmp_path / "book" / "appendix" / "summary.ipynb").write_text(json.dumps(_nb([_md("# Summary")])))
    (tmp_path / "book" / "a" / "zz_orphan.ipynb").write_text(json.dumps(_nb([])))
    return tmp_path


def test_toc_entries_in_order_and_resolved(tiny_book: Path) -> None:
    assert book.toc_entries(tiny_book) == [
        Path("book/intro.md"), Path("book/a/second.ipynb"), Path("book/a/first.ipynb"),
        Path("book/notes.md"), Path("book/appendix/summary.ipynb")]


def test_toc_entry_missing_is_an_error(tiny_book: Path) -> None:
    (tiny_book / "book" / "notes.md").unlink()
    with pytest.raises(FileNotFoundError, match="book/notes"):
        book.toc_entries(tiny_book)


def test_execution_order_chapters_then_orphans_then_appendix(tiny_book: Path) -> None:
    assert book.execution_order(tiny_book) == [
        Path("book/a/second.ipynb"), Path("book/a/first.ipynb"), Path("book/a/zz_orphan.ipynb"),
        Path("book/appendix/summary.ipynb")]


def test_repo_root_found_from_a_subfolder(tiny_book: Path) -> None:
    assert book.repo_root(tiny_book / "book" / "appendix") == tiny_book.resolve()
    with pytest.raises(FileNotFoundError):
        book.repo_root(Path("/"))


def test_read_claims_round_trips_report(tiny_book: Path) -> None:
    recs = book.read_claims(tiny_book / "book" / "a" / "first.ipynb", tiny_book)
    assert [r.id for r in recs] == ["ch.mean", "ch.cos"]
    mean, cos = recs
    assert (mean.status, mean.measured, mean.paper, mean.tolerance) == ("PASS", "0.01", "0 (Thm 1)", "|x - 0| <= 0.1")
    assert mean.values == {"value": 0.01} and mean.paper_value == 0.0 and mean.scale == "book"
    assert mean.statement == "the mean is near zero" and mean.notebook == "book/a/first.ipynb"
    assert (cos.status, cos.passed, cos.measured, cos.tolerance) == ("FAIL", False, "0.5", ">= 0.9")
    assert cos.statement == "cosine | with a bar"


def test_read_claims_last_report_wins_and_ignores_text(tmp_path: Path) -> None:
    a, b = Claims("ch"), Claims("ch")
    a.at_most("ch.a", "s", 2.0, 1.5)
    b.at_most("ch.a", "s", 1.0, 1.5)
    text = "ch.b  FAIL  measured=1 | paper=2 | tol=<= 1.5\n"  # text is never parsed
    nb = _nb([_code([_report_output(a)]), _code([_stream(text), _report_output(b)])])
    p = tmp_path / "x.ipynb"
    p.write_text(json.dumps(nb))
    (rec,) = book.read_claims(p)
    assert rec.id == "ch.a" and rec.status == "PASS" and rec.values == {"value": 1.0}


def test_read_claims_malformed_record_names_the_file(tmp_path: Path) -> None:
    bad = {"output_type": "display_data", "metadata": {}, "data": {CLAIMS_MIME: {"claims": [{"id": "ch.a"}]}}}
    p = tmp_path / "bad.ipynb"
    p.write_text(json.dumps(_nb([_code([bad])])))
    with pytest.raises(ValueError, match="bad.ipynb.*lacks"):
        book.read_claims(p)


def test_library_and_tools_agree_on_the_mime_type() -> None:
    assert book.CLAIMS_MIME == CLAIMS_MIME


def test_read_claims_invalid_json_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "broken.ipynb"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="broken.ipynb"):
        book.read_claims(p)


def test_book_claims_counts_and_markdown(tiny_book: Path) -> None:
    claims = book.book_claims(tiny_book)
    assert list(claims) == [Path("book/a/second.ipynb"), Path("book/a/first.ipynb")]  # no appendix
    assert claims[Path("book/a/second.ipynb")] == []
    counts = book.claims_counts(claims)
    assert counts == {"chapters": 2, "chapters_without_claims": 1, "claims": 2, "passed": 1, "failed": 1}
    md = book.claims_markdown(claims, tiny_book)
    assert "| First chapter | 2 | 1 | 1 |" in md and "| Second | 0 | 0 | 0 |" in md
    assert "| **all chapters** | **2** | **1** | **1** |" in md
    assert "`ch.cos` | book | **FAIL**" in md and "cosine \\| with a bar" in md  # pipes escaped
    linked = book.claims_markdown(claims, tiny_book, link_from="book/appendix")
    assert "[First chapter](../a/first.ipynb)" in linked


def test_notebook_title_falls_back_to_stem(tiny_book: Path) -> None:
    assert book.notebook_title(tiny_book / "book" / "a" / "first.ipynb") == "First chapter"
    assert book.notebook_title(tiny_book / "book" / "a" / "zz_orphan.ipynb") == "zz_orphan"


def test_timings_round_trip_with_total(tmp_path: Path) -> None:
    p = tmp_path / "t" / "timings.csv"
    assert bx.read_timings(p) == []
    rows = [{"notebook": "b.ipynb", "seconds": "20", "scale": "book", "device": "cpu", "cpus": "2"},
            {"notebook": "a.ipynb", "seconds": "10", "scale": "book", "device": "cpu", "cpus": "2"}]
    bx.write_timings(p, rows, order=[Path("a.ipynb"), Path("b.ipynb")])
    text = p.read_text().splitlines()
    assert text[0] == "notebook,seconds,scale,device,cpus"
    assert text[1].startswith("a.ipynb,10") and text[-1] == "total,30,book,cpu,2"
    assert [r["notebook"] for r in bx.read_timings(p)] == ["a.ipynb", "b.ipynb"]
    p.write_text("name,time\nx,1\n")
    with pytest.raises(ValueError, match="expected columns"):
        bx.read_timings(p)


def test_execute_notebook_in_place_records_time(tiny_book: Path) -> None:
    pytest.importorskip("nbclient")
    nb = _nb([_code([], "import os\nprint(os.path.basename(os.getcwd()), 6 * 7)")])
    nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = tiny_book / "book" / "a" / "second.ipynb"
    p.write_text(json.dumps(nb))
    rows = bx.execute_notebooks([Path("book/a/second.ipynb")], tiny_book, log=lambda s: None)
    out = json.loads(p.read_text())["cells"][0]["outputs"]
    assert "".join(out[0]["text"]) == "a 42\n"  # executed in the notebook's own folder
    assert rows[0]["notebook"] == "book/a/second.ipynb"
    timings = bx.read_timings(tiny_book / "book" / "appendix" / "timings.csv")
    assert [r["notebook"] for r in timings] == ["book/a/second.ipynb"]
    first_bytes = p.read_bytes()
    bx.execute_notebooks([Path("book/a/second.ipynb")], tiny_book, log=lambda s: None)
    assert p.read_bytes() == first_bytes  # two executions, byte-identical files


def test_execute_failure_is_one_line_and_leaves_the_notebook(tiny_book: Path) -> None:
    pytest.importorskip("nbclient")
    nb = _nb([_code([], "print('a')"), _code([], "raise ValueError('boom')")])
    nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = tiny_book / "book" / "a" / "second.ipynb"
    p.write_text(json.dumps(nb))
    before = p.read_bytes()
    with pytest.raises(bx.ExecutionFailed, match=r"second.ipynb: cell 1 raised ValueError: boom") as e:
        bx.execute_notebooks([Path("book/a/second.ipynb")], tiny_book, log=lambda s: None)
    assert "\n" not in str(e.value)
    assert p.read_bytes() == before and not list(p.parent.glob(".*.tmp"))


def test_normalize_merges_streams_and_drops_timestamps() -> None:
    cell = {"cell_type": "code", "metadata": {"execution": {"iopub.status.busy": "x"}}, "source": "",
            "outputs": [_stream("a\n"), _stream("b\n"), {"output_type": "stream", "name": "stderr", "text": "w"},
                        _stream("c\n")]}
    nb = bx.normalize_notebook(_nb([cell]))
    outs = nb["cells"][0]["outputs"]
    assert [o["text"] for o in outs] == [["a\n", "b\n"], ["w"], ["c\n"]]
    assert "execution" not in nb["cells"][0]["metadata"]


def test_fence_problems_and_fix(tmp_path: Path) -> None:
    src = ("# T\n\n```{prf:theorem} Theorem 2 of {cite}`key`\n:label: thm-2\n\nBody with `code`.\n```\n\n"
           "```{prf:lemma} Plain title\n:label: lem-1\n\nx\n```\n\n```python\nprint('`x`')\n```\n")
    nb = _nb([_md(src), _code([_stream("```{prf:theorem} in an output `x`\n")])])
    p = tmp_path / "ch.ipynb"
    p.write_text(json.dumps(nb, indent=1))
    problems = book.fence_problems(p)
    assert len(problems) == 1 and "cell 0, line 3" in problems[0]
    assert book.fix_fences(p) == 1
    fixed = json.loads(p.read_text())
    text = "".join(fixed["cells"][0]["source"])
    assert ":::{prf:theorem} Theorem 2 of {cite}`key`\n:label: thm-2\n\nBody with `code`.\n:::\n" in text
    assert "```{prf:lemma} Plain title" in text and "```python\nprint('`x`')\n```" in text
    assert fixed["cells"][1] == nb["cells"][1]  # outputs untouched
    assert book.fence_problems(p) == [] and book.fix_fences(p) == 0
    md = tmp_path / "page.md"
    md.write_text(src)
    assert book.fix_fences(md) == 1 and book.fence_problems(md) == []


def test_records_at_two_scales_are_kept_apart(tmp_path: Path) -> None:
    book_, paper = Claims("ch", scale="book"), Claims("ch", scale="paper")
    book_.at_most("ch.a", "s", 1.0, 1.5)
    paper.at_most("ch.a", "s", 2.0, 1.5)
    p = tmp_path / "x.ipynb"
    p.write_text(json.dumps(_nb([_code([_report_output(book_)]), _code([_report_output(paper)])])))
    recs = book.read_claims(p)
    assert [(r.id, r.scale, r.status) for r in recs] == [("ch.a", "book", "PASS"), ("ch.a", "paper", "FAIL")]
    claims = {Path("x.ipynb"): recs}
    assert book.claims_counts(claims)["claims"] == 1 and book.claims_counts(claims, "paper")["failed"] == 1
    (b, r), = book.scale_comparison(claims)
    assert b.status == "PASS" and r.status == "FAIL"
    assert "| `ch.a` | PASS | **FAIL** |" in book.scale_markdown(claims)


def _scaled_chapter(tiny_book: Path) -> Path:
    """book/a/first.ipynb records ch.runs = 2, 3, 5 at scales smoke, book, paper; executed once at book."""
    src = ("import os\nfrom cnnbias.claims import Claims\n"
           "c = Claims('ch', scale=os.environ.get('CNNBIAS_SCALE', 'book'))\n"
           "n = {'smoke': 2.0, 'book': 3.0, 'paper': 5.0}[c.scale]\n"
           "c.at_least('ch.runs', 'runs at this scale', n, 1.0)\nc.report()")
    nb = _nb([_md("# First chapter"), _code([], src)])
    nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = tiny_book / "book" / "a" / "first.ipynb"
    p.write_text(json.dumps(nb))
    bx.execute_notebooks([Path("book/a/first.ipynb")], tiny_book, timings=None, log=lambda s: None)
    return p


def test_reproduce_claim_executes_a_copy_at_the_scale(tiny_book: Path) -> None:
    pytest.importorskip("nbclient")
    from booktools.reproduce import chapter_of, compare, reproduce_claim

    p = _scaled_chapter(tiny_book)
    stored = p.read_bytes()
    assert chapter_of("ch.runs", tiny_book) == Path("book/a/first.ipynb")
    res = reproduce_claim("ch.runs", "book", tiny_book)
    assert (res.record.status, res.record.values["value"], res.record.scale) == ("PASS", 3.0, "book")
    assert compare(res.record, res.stored).startswith("identical")
    res = reproduce_claim("ch.runs", "smoke", tiny_book)
    assert (res.record.values["value"], res.record.scale, res.stored) == (2.0, "smoke", None)
    assert p.read_bytes() == stored  # the stored chapter is untouched, no copy left behind
    assert sorted(q.name for q in p.parent.iterdir()) == ["first.ipynb", "second.ipynb", "zz_orphan.ipynb"]
    with pytest.raises(LookupError, match="ch.nope.*ch.runs"):
        reproduce_claim("ch.nope", "book", tiny_book)
    with pytest.raises(ValueError, match="scale"):
        reproduce_claim("ch.runs", "huge", tiny_book)


def test_cost_rows_from_store_provenance_and_benchmark(tiny_book: Path) -> None:
    from booktools.costs import COST_FIELDS, cost_rows, costs_csv

    folder = tiny_book / "results" / "ch.sweep" / "paper"
    folder.mkdir(parents=True)
    for i, wall in enumerate([30.0, 150.0]):
        prov = {"device": "cpu", "dtype": "float64", "threads": 1, "wall_s": wall}
        (folder / f"{i}.json").write_text(json.dumps({"provenance": prov, "result": {}}))
    (tiny_book / "benchmarks").mkdir()
    bench = [{"experiment": "big", "chapter": "book/a/second.ipynb", "slice": "10 of 1000 steps",
              "slice_seconds": 3.0, "factor": 100.0, "cpu_seconds_estimate": 300.0}]
    (tiny_book / "benchmarks" / "paper_cost.json").write_text(json.dumps({"records": bench}))
    rows = cost_rows(tiny_book)
    assert [r["experiment"] for r in rows] == ["ch.sweep", "big"]
    assert (rows[0]["cells"], rows[0]["CPU time"], rows[0]["slowest cell"]) == ("2", "3 min", "2.5 min")
    assert rows[0]["chapter"] == "-"  # no chapter names the sweep or stores paper-scale records of it
    assert rows[1]["CPU time"] == "5 min" and "x 100" in rows[1]["how"]
    assert costs_csv(tiny_book).splitlines()[0] == ",".join(COST_FIELDS)
    (folder / "0.json").write_text(json.dumps({"result": {}}))
    with pytest.raises(ValueError, match="0.json.*wall_s"):
        cost_rows(tiny_book)


def test_cost_rows_with_the_index_of_declared_sweeps(tiny_book: Path) -> None:
    """With results/sweeps.json every declared sweep gets a row: run, partial (k of N) or pending; files of
    other keys (older code) are not counted; a folder of an undeclared sweep is an error."""
    from booktools.costs import cost_rows

    folder = tiny_book / "results" / "ch.part" / "paper"
    folder.mkdir(parents=True)
    for key, wall in (("k1", 30.0), ("old", 900.0)):
        prov = {"device": "cpu", "dtype": "float64", "threads": 1, "wall_s": wall}
        (folder / f"{key}.json").write_text(json.dumps({"provenance": prov, "result": {}}))
    entry = lambda keys: {"cells": {"smoke": 1, "book": 1, "paper": len(keys)}, "keys": keys}  # noqa: E731
    index = {"format": "cnnbias.sweeps-index/1", "scale": "paper",
             "sweeps": {"ch.part": entry(["k1", "k2"]), "ch.none": entry(["n1"]), "ch.empty": entry([])}}
    (tiny_book / "results" / "sweeps.json").write_text(json.dumps(index))
    rows = {r["experiment"]: r for r in cost_rows(tiny_book)}
    assert sorted(rows) == ["ch.none", "ch.part"]  # a sweep without paper-scale cells has no row
    assert (rows["ch.part"]["paper scale"], rows["ch.part"]["cells"], rows["ch.part"]["CPU time"]) == (
        "partial (1 of 2 cells)", "1/2", "30 s")
    assert (rows["ch.none"]["paper scale"], rows["ch.none"]["cells"], rows["ch.none"]["CPU time"]) == (
        "pending", "0/1", "-")
    (folder / "k2.json").write_text((folder / "k1.json").read_text())
    assert cost_rows(tiny_book)[1]["paper scale"] == "run (all cells)"
    (tiny_book / "results" / "ch.stray" / "paper").mkdir(parents=True)
    with pytest.raises(ValueError, match="does not declare.*ch.stray"):
        cost_rows(tiny_book)
    (tiny_book / "results" / "sweeps.json").write_text("{}")
    with pytest.raises(ValueError, match="sweeps.json.*python -m cnnbias index"):
        cost_rows(tiny_book)


def test_chapter_run_stores_records_and_goes_stale(tiny_book: Path) -> None:
    pytest.importorskip("nbclient")
    from booktools.chapter_runs import chapter_run, chapter_runs, run_chapter, run_markdown, stale_runs
    from booktools.costs import cost_rows

    (tiny_book / "lib" / "cnnbias").mkdir(parents=True)
    (tiny_book / "lib" / "cnnbias" / "m.py").write_text("x = 1\n")
    _scaled_chapter(tiny_book)
    with pytest.raises(FileNotFoundError, match="chapter-run --scale paper book/a/first.ipynb"):
        chapter_run("book/a/first.ipynb", "paper", tiny_book)
    path = run_chapter(Path("book/a/first.ipynb"), "paper", tiny_book)
    assert path == tiny_book / "results" / "chapters" / "first.paper.json"
    [(data, recs, current)] = chapter_runs(tiny_book)
    assert current and [(r.id, r.scale, r.values["value"]) for r in recs] == [("ch.runs", "paper", 5.0)]
    claims = book.book_claims(tiny_book)[Path("book/a/first.ipynb")]
    assert sorted(r.scale for r in claims) == ["book", "paper"]  # the chapter's own + the stored run
    assert any(r["paper scale"] == "run (whole chapter)" for r in cost_rows(tiny_book))
    (tiny_book / "lib" / "cnnbias" / "m.py").write_text("# a comment\nx = 1  # another\n")
    assert stale_runs(tiny_book) == []  # comments do not change the code
    md = run_markdown("book/a/first.ipynb", "paper", tiny_book)
    assert "| `ch.runs` | PASS |" in md and "stale" not in md
    (tiny_book / "lib" / "cnnbias" / "m.py").write_text("x = 2\n")  # a library change: the run is stale
    assert stale_runs(tiny_book) == ["book/a/first.ipynb [paper]"]
    assert not chapter_run("book/a/first.ipynb", "paper", tiny_book)[2]
    assert "**stale**" in run_markdown("book/a/first.ipynb", "paper", tiny_book)
    assert [r.scale for r in book.book_claims(tiny_book)[Path("book/a/first.ipynb")]] == ["book"]
    path.write_text("{}")
    with pytest.raises(ValueError, match="first.paper.json"):
        chapter_runs(tiny_book)
