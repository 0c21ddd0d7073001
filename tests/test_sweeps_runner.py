"""Tests for cnnbias.sweeps.runner and reproduce: reuse of finished cells, new keys for changed
configs and code, recomputation of corrupt cells, claims from stored cells."""

import importlib
import json
import sys
import textwrap

import pytest
from cnnbias import sweeps
from cnnbias.sweeps import spec
from cnnbias.sweeps.reproduce import claim_from_store
from cnnbias.sweeps.runner import Summary, progress_enabled, run_sweep
from cnnbias.sweeps.store import MissingCells, Store


def _quiet():
    return dict(progress=False, log=lambda s: None)


def test_serial_run_then_rerun_reuses(tmp_path):
    s1 = run_sweep("selftest", "smoke", store=tmp_path, **_quiet())
    assert (s1.cells, s1.computed, s1.reused, s1.failed, s1.ok) == (12, 12, 0, 0, True)
    first = sweeps.load("selftest", "smoke", store=tmp_path)
    s2 = run_sweep("selftest", "smoke", store=tmp_path, **_quiet())
    assert (s2.computed, s2.reused, s2.ok) == (0, 12, True)
    assert "12 cells: 0 computed, 12 reused, 0 failed" in s2.line()
    assert sweeps.load("selftest", "smoke", store=tmp_path) == first
    assert [c for c, _ in first] == sweeps.get("selftest").configs("smoke")


def test_select_runs_only_those_cells(tmp_path):
    s = run_sweep("selftest", "smoke", store=tmp_path, select=lambda c: c["i"] in (1, 4), **_quiet())
    assert (s.cells, s.computed) == (2, 2)
    assert len(list((tmp_path / "selftest" / "smoke").glob("*.json"))) == 2
    with pytest.raises(ValueError, match="no cells"):
        run_sweep("selftest", "smoke", store=tmp_path, select=lambda c: False, **_quiet())
    with pytest.raises(ValueError, match="at most one"):
        run_sweep("selftest", "smoke", store=tmp_path, workers=1, scheduler="tcp://x:1")


def test_corrupt_cell_is_recomputed_with_a_warning(tmp_path):
    run_sweep("selftest", "smoke", store=tmp_path, **_quiet())
    good = sweeps.load("selftest", "smoke", store=tmp_path)
    victim = sorted((tmp_path / "selftest" / "smoke").glob("*.json"))[3]
    victim.write_text(victim.read_text()[:50])
    logs = []
    s = run_sweep("selftest", "smoke", store=tmp_path, progress=False, log=logs.append)
    assert (s.computed, s.reused) == (1, 11)
    assert any(victim.name in m and "recomputing" in m for m in logs)
    assert sweeps.load("selftest", "smoke", store=tmp_path) == good


def test_changed_code_never_reuses_stale_results(tmp_path, monkeypatch):
    mod_dir = tmp_path / "mods"
    mod_dir.mkdir()
    src = textwrap.dedent('''
        """A test sweep."""
        from cnnbias.sweeps.spec import Sweep

        OFFSET = 1.0  # a comment


        def cell(cfg, device, dtype):
            return {"y": cfg["x"] + OFFSET}


        SWEEP = Sweep("testonly.codechange", cell, {"smoke": [{"x": 1}, {"x": 2}], "book": [], "paper": []})
    ''')
    (mod_dir / "cnnbias_testonly_mod.py").write_text(src)
    monkeypatch.syspath_prepend(str(mod_dir))
    monkeypatch.setattr(spec, "_SWEEPS", dict(spec._SWEEPS))
    mod = importlib.import_module("cnnbias_testonly_mod")
    try:
        spec.register(mod.SWEEP)
        v1 = mod.SWEEP.code_version()
        assert run_sweep("testonly.codechange", "smoke", store=tmp_path, **_quiet()).computed == 2
        # a comment or docstring edit keeps the code version ...
        (mod_dir / "cnnbias_testonly_mod.py").write_text(src.replace("# a comment", "# edited").replace("A test", "The"))
        spec._module_digest.cache_clear()
        assert mod.SWEEP.code_version() == v1
        # ... a code edit changes it: nothing is reused, the old files are left as stale
        (mod_dir / "cnnbias_testonly_mod.py").write_text(src.replace("OFFSET = 1.0", "OFFSET = 10.0"))
        spec._module_digest.cache_clear()
        mod = importlib.reload(mod)
        spec.register(mod.SWEEP)
        assert mod.SWEEP.code_version() != v1
        with pytest.raises(MissingCells, match="other configs or code versions"):
            sweeps.load("testonly.codechange", "smoke", store=tmp_path)
        s = run_sweep("testonly.codechange", "smoke", store=tmp_path, **_quiet())
        assert (s.computed, s.reused) == (2, 0)
        assert [r["y"] for _, r in sweeps.load("testonly.codechange", "smoke", store=tmp_path)] == [11.0, 12.0]
        assert Store(tmp_path).status(mod.SWEEP, "smoke")["stale"] == 2
    finally:
        spec._module_digest.cache_clear()
        sys.modules.pop("cnnbias_testonly_mod", None)


def test_claim_from_store(tmp_path):
    cs = sweeps.get_claim("selftest.mean_loss")
    with pytest.raises(MissingCells):
        claim_from_store("selftest.mean_loss", "smoke", tmp_path)
    s = run_sweep("selftest", "smoke", store=tmp_path, select=cs.select, **_quiet())
    assert s.cells == 3
    claim, claims = claim_from_store("selftest.mean_loss", "smoke", tmp_path)
    rec = claim.record()
    assert rec["id"] == "selftest.mean_loss" and rec["status"] == "PASS" and rec["scale"] == "smoke"
    assert json.loads(json.dumps(claims.as_records()))[0] == rec


def test_summary_and_progress_switch(monkeypatch):
    s = Summary("x.y", "smoke", "/tmp/r", cells=3, computed=1, reused=2)
    assert s.ok and s.line().startswith("x.y [smoke]: 3 cells: 1 computed, 2 reused, 0 failed in ")
    monkeypatch.setenv("CNNBIAS_PROGRESS", "0")
    assert not progress_enabled()
    monkeypatch.setenv("CNNBIAS_PROGRESS", "1")
    assert progress_enabled()


def test_workers_start_and_stop_a_local_dask_cluster(tmp_path):
    serial = tmp_path / "serial"
    run_sweep("selftest", "smoke", store=serial, select=lambda c: c["i"] < 2, **_quiet())
    s = run_sweep("selftest", "smoke", store=tmp_path / "dask", workers=1, select=lambda c: c["i"] < 2, **_quiet())
    assert s.ok and s.computed == 2 and s.executor == "dask LocalCluster, 1 worker"
    pick = lambda c: c["i"] < 2  # noqa: E731
    assert sweeps.load("selftest", "smoke", pick, store=tmp_path / "dask") == sweeps.load("selftest", "smoke", pick,
                                                                                          store=serial)
