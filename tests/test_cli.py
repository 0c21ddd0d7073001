"""Tests for the command line ``python -m cnnbias sweep|reproduce|list``."""

import json
import os
import subprocess
import sys

import pytest
from cnnbias import sweeps
from cnnbias.__main__ import main


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("CNNBIAS_PROGRESS", "0")
    monkeypatch.setenv("CNNBIAS_DEVICE", "cpu")


def test_sweep_help_lists_every_experiment():
    env = dict(os.environ, CNNBIAS_PROGRESS="0")
    out = subprocess.run([sys.executable, "-m", "cnnbias", "sweep", "--help"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in sweeps.names():
        assert f"  {name} " in out.stdout
    assert "--workers N" in out.stdout and "--scheduler ADDRESS" in out.stdout
    assert "experiments run as whole chapters" in out.stdout
    assert "book/part1/limit_directions.ipynb" in out.stdout


def test_every_chapter_experiment_is_a_sweep_or_a_whole_chapter_run():
    """Every chapter with claims has its experiments listed by ``sweep --help``: some of its claims rest on a
    registered sweep, or the chapter is run whole at paper scale (a record in ``results/chapters``)."""
    from pathlib import Path

    from booktools.claims import read_claims
    from booktools.toc import chapter_notebooks, repo_root

    root = repo_root()
    swept = set(sweeps.claim_ids())
    runs = {p.name.split(".")[0] for p in (root / "results" / "chapters").glob("*.paper.json")}
    missing = []
    for nb in chapter_notebooks(root):
        ids = {r.id for r in read_claims(root / nb, root)}
        if ids and not (ids & swept) and Path(nb).stem not in runs:
            missing.append(nb.as_posix())
    assert missing == [], f"chapters whose experiments are neither a sweep nor a whole-chapter run: {missing}"


def test_sweep_then_rerun(tmp_path, capsys):
    assert main(["sweep", "selftest", "--scale", "smoke", "--store", str(tmp_path)]) == 0
    assert "selftest [smoke]: 12 cells: 12 computed, 0 reused, 0 failed" in capsys.readouterr().out
    assert main(["sweep", "selftest", "--scale", "smoke", "--store", str(tmp_path)]) == 0
    assert "12 cells: 0 computed, 12 reused, 0 failed" in capsys.readouterr().out
    assert main(["sweep", "selftest", "--scale", "smoke", "--store", str(tmp_path), "--dry-run"]) == 0
    assert "12 stored, 0 missing, 0 corrupt" in capsys.readouterr().out


def test_sweep_only_selects_cells(tmp_path, capsys):
    assert main(["sweep", "selftest", "--scale", "smoke", "--store", str(tmp_path), "--only", "i=3"]) == 0
    assert "selftest [smoke]: 1 cells: 1 computed, 0 reused, 0 failed" in capsys.readouterr().out
    assert main(["sweep", "selftest", "--scale", "smoke", "--store", str(tmp_path), "--dry-run"]) == 0
    assert "1 stored, 11 missing" in capsys.readouterr().out
    assert main(["sweep", "selftest", "--scale", "smoke", "--store", str(tmp_path), "--only", "i=99"]) == 2
    with pytest.raises(SystemExit, match="no cell has the key 'j'; the cells' keys are"):
        main(["sweep", "selftest", "--scale", "smoke", "--store", str(tmp_path), "--only", "j=1"])
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        main(["sweep", "selftest", "--scale", "smoke", "--store", str(tmp_path), "--only", "i"])


def test_scale_from_environment_and_dry_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CNNBIAS_SCALE", "book")
    assert main(["sweep", "selftest", "--store", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "selftest [book]: 0 stored, 2 missing" in out and "missing: i=0" in out


def test_failing_cell_gives_nonzero_status(tmp_path, capsys):
    assert main(["sweep", "selftest_fail", "--scale", "smoke", "--store", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert "FAILED selftest_fail [smoke] cell i=2" in out.out
    assert "ValueError: selftest cell i=2 fails on purpose" in out.out
    assert main(["sweep", "selftest_fail", "--scale", "paper", "--store", str(tmp_path)]) == 2


def test_reproduce_prints_the_claim_record(tmp_path, capsys):
    assert main(["reproduce", "selftest.mean_loss", "--scale", "smoke", "--store", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "3 cells: 3 computed" in out.err  # exactly the claim's cells
    assert out.out.startswith("selftest.mean_loss  PASS")
    rec = json.loads(out.out[out.out.index("{"):])
    assert rec["id"] == "selftest.mean_loss" and rec["scale"] == "smoke"
    assert main(["reproduce", "selftest.mean_loss", "--scale", "smoke", "--store", str(tmp_path)]) == 0
    assert "0 computed, 3 reused" in capsys.readouterr().err


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["sweep", "no.such", "--store", str(tmp_path)]) == 2
    assert "unknown sweep 'no.such'; known sweeps:" in capsys.readouterr().err
    assert main(["reproduce", "no.such_claim", "--store", str(tmp_path)]) == 2
    assert "unknown claim" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sweep", "selftest", "--workers", "2", "--scheduler", "tcp://x:1"])


def test_list(tmp_path, capsys):
    main(["sweep", "selftest", "--scale", "book", "--store", str(tmp_path)])
    capsys.readouterr()
    assert main(["list", "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"store: {tmp_path}" in out and "selftest" in out and "book 2/2" in out and "claim selftest.mean_loss" in out


def test_reproduce_a_chapter_claim_options_of_sweeps_are_refused(tmp_path, capsys):
    # convlin.lemma7_closed_form has no sweep: its chapter computes it; sweep options make no sense there
    assert main(["reproduce", "convlin.lemma7_closed_form", "--store", str(tmp_path)]) == 2
    assert "--store apply only to claims with a sweep" in capsys.readouterr().err
