"""Tests for cnnbias.sweeps.spec and cnnbias.sweeps.store: keys, code versions, atomic files, loud
errors on missing or corrupt results, and the integrity check of the committed paper-scale results."""

import json
import math
import os
import random

import pytest
from cnnbias import sweeps
from cnnbias.sweeps import spec
from cnnbias.sweeps.runner import compute_cell
from cnnbias.sweeps.store import CorruptResult, MissingCells, Store, jsonable, read_file

CFG = {"i": 0, "R": 4, "d": 5, "n": 8, "steps": 50}


def test_key_depends_on_experiment_scale_config_and_code():
    k = spec.cell_key("a.b", "smoke", {"x": 1, "y": [1, 2]}, "v1")
    assert k == spec.cell_key("a.b", "smoke", {"y": [1, 2], "x": 1}, "v1")  # key order does not matter
    assert len(k) == spec.KEY_DIGITS
    others = [
        spec.cell_key("a.c", "smoke", {"x": 1, "y": [1, 2]}, "v1"),
        spec.cell_key("a.b", "book", {"x": 1, "y": [1, 2]}, "v1"),
        spec.cell_key("a.b", "smoke", {"x": 2, "y": [1, 2]}, "v1"),
        spec.cell_key("a.b", "smoke", {"x": 1, "y": [1, 2]}, "v2"),
    ]
    assert len({k, *others}) == 5
    with pytest.raises(ValueError, match="scale"):
        spec.cell_key("a.b", "huge", {}, "v1")


def test_normalized_source_ignores_comments_docstrings_and_blank_lines():
    a = 'def f(x):\n    """Doc."""\n    return x + 1  # add one\n'
    b = '# header\n\ndef f(x):\n    """Another doc,\n    two lines."""\n\n    return x + 1\n'
    c = 'def f(x):\n    """Doc."""\n    return x + 2\n'
    d = 'def f(x):\n    return "# not a comment"\n'
    assert spec.normalized_source(a) == spec.normalized_source(b)
    assert spec.normalized_source(a) != spec.normalized_source(c)
    assert "# not a comment" in spec.normalized_source(d)


def test_code_version_covers_cell_module_and_declared_modules():
    sw = sweeps.get("selftest")
    assert sw.modules == ("cnnbias.config", "cnnbias.engine", "cnnbias.sweeps.selftest")
    assert sw.code_version() == spec.code_version(list(reversed(sw.modules)))
    assert sw.code_version() != spec.code_version(["cnnbias.engine"])
    with pytest.raises(ValueError, match="no Python source"):
        spec.code_version(["cnnbias.no_such_module"])


def test_sweep_declaration_is_validated():
    f = sweeps.get("selftest").cell_fn
    ok = {"smoke": [{"a": 1}], "book": [], "paper": []}
    with pytest.raises(ValueError, match="name"):
        spec.Sweep("Bad Name", f, ok)
    with pytest.raises(ValueError, match="exactly the scales"):
        spec.Sweep("x.y", f, {"smoke": []})
    with pytest.raises(ValueError, match="same config"):
        spec.Sweep("x.y", f, {"smoke": [{"a": 1}, {"a": 1}], "book": [], "paper": []})
    with pytest.raises(ValueError, match="JSON"):
        spec.Sweep("x.y", f, {"smoke": [{"a": float("nan")}], "book": [], "paper": []})
    with pytest.raises(ValueError, match="unknown sweep"):
        sweeps.get("no.such.sweep")
    with pytest.raises(ValueError, match="unknown claim"):
        sweeps.get_claim("no.such_claim")
    assert spec.Sweep("x.y", f, {"smoke": [{"a": (1, 2)}], "book": [], "paper": []}).configs("smoke") == [{"a": [1, 2]}]


def test_jsonable_converts_tensors_and_rejects_objects():
    import numpy as np
    import torch

    out = jsonable({"t": torch.tensor([1.5, 2.0], dtype=torch.float64), "a": np.arange(3), "s": np.float64(0.1),
                    "tup": (1, 2)})
    assert out == {"t": [1.5, 2.0], "a": [0, 1, 2], "s": 0.1, "tup": [1, 2]}
    with pytest.raises(ValueError, match="not a JSON value"):
        jsonable({"x": object()})


def _one_cell(tmp_path):
    sw = sweeps.get("selftest")
    v = sw.code_version()
    key = sw.key("smoke", CFG, v)
    compute_cell("selftest", "smoke", CFG, key, v, str(tmp_path), "cpu", "float64")
    return sw, Store(tmp_path).path("selftest", "smoke", key)


def test_write_is_atomic_readable_without_torch_and_round_trips(tmp_path):
    sw, path = _one_cell(tmp_path)
    assert path.parent == tmp_path / "selftest" / "smoke"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    text = path.read_text()
    raw = json.loads(text)  # plain json: no torch needed
    assert raw["config"] == CFG and raw["experiment"] == "selftest" and raw["scale"] == "smoke"
    assert set(raw["provenance"]) >= {"device", "dtype", "torch", "git", "wall_s", "date"}
    assert raw["provenance"]["device"] == "cpu" and raw["provenance"]["dtype"] == "float64"
    assert "host" not in text.lower()
    assert len(text.splitlines()) == 11  # one field per line
    rec = read_file(path)
    fresh = sw.cell_fn(CFG, __import__("torch").device("cpu"), __import__("torch").float64)
    assert rec["result"] == fresh  # floats round-trip bit for bit
    assert sweeps.load("selftest", "smoke", select=lambda c: c["i"] == 0, store=tmp_path) == [(CFG, fresh)]


def test_prune_removes_only_stale_files(tmp_path):
    sw, path = _one_cell(tmp_path)
    stale = path.parent / "0123456789abcdef0123.json"  # another config or an older code version
    stale.write_text(path.read_text())
    st = Store(tmp_path)
    assert st.stale_files(sw, "smoke") == [stale]
    assert st.prune(sw, "smoke") == [stale]
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert st.prune(sw, "smoke") == []


def test_committed_store_holds_only_current_cells():
    """Every file under results/ is read by a current cell of a declared sweep: a code change was
    followed by a rerun and ``--prune`` (stale files would inflate the appendix's cost table)."""
    store = Store()
    declared = {sw.name for sw in spec.sweeps()}
    # results/chapters holds whole-chapter runs (booktools.chapter_runs), checked in test_book_sources
    folders = [p.name for p in store.root.iterdir() if p.is_dir() and p.name != "chapters"] if store.root.is_dir() else []
    assert set(folders) <= declared, f"results/ holds undeclared experiments {sorted(set(folders) - declared)}"
    stale = [str(p.relative_to(store.root)) for sw in spec.sweeps() for s in ("smoke", "book", "paper")
             for p in store.stale_files(sw, s)]
    assert not stale, (f"stale files in results/: {stale}; rerun `python -m cnnbias sweep <name> --scale <s> "
                       "--prune` and commit")


@pytest.mark.parametrize("damage", ["truncate", "edit_value", "rename", "not_json_object"])
def test_corrupt_file_fails_loudly_naming_it(tmp_path, damage):
    sw, path = _one_cell(tmp_path)
    text = path.read_text()
    if damage == "truncate":
        path.write_text(text[: len(text) // 2])
    elif damage == "edit_value":
        rec = json.loads(text)
        rec["result"]["loss"][0] += 1e-3
        path.write_text(json.dumps(rec))
    elif damage == "rename":
        other = path.with_name("0" * spec.KEY_DIGITS + ".json")
        path.rename(other)
        with pytest.raises(CorruptResult, match=other.name):
            read_file(other)
        other.rename(path)
        rec = json.loads(text)
        rec["key"] = "0" * spec.KEY_DIGITS
        path.write_text(json.dumps(rec))
    else:
        path.write_text("[1, 2]")
    with pytest.raises(CorruptResult, match=str(path)):
        read_file(path)
    with pytest.raises(CorruptResult, match=str(path)):
        sweeps.load("selftest", "smoke", select=lambda c: c["i"] == 0, store=tmp_path)
    assert Store(tmp_path).status(sw, "smoke")["corrupt"][0][0] == CFG


def test_missing_cells_fail_loudly_with_the_command(tmp_path):
    _one_cell(tmp_path)
    with pytest.raises(MissingCells, match=r"11 of 12 cells .*python -m cnnbias sweep selftest --scale smoke"):
        sweeps.load("selftest", "smoke", store=tmp_path)
    with pytest.raises(MissingCells, match="no cells"):
        sweeps.load("selftest_fail", "paper", store=tmp_path)


# -------------------------------------------------------------------------------------------------
# Integrity of the committed store: one randomly chosen stored paper-scale cell per experiment is
# recomputed (CPU, float64) and compared with the stored result.
# CNNBIAS_INTEGRITY_BUDGET_S: largest stored wall time of a cell eligible for the check (default 20);
# CNNBIAS_INTEGRITY_SEED: fixes the choice (default: a fresh random choice, printed on failure).

def _close(a, b, rtol, atol, where="result"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), f"{where}: keys differ"
        for k in a:
            _close(a[k], b[k], rtol, atol, f"{where}[{k!r}]")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, rtol, atol, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        x, y = float(a), float(b)
        assert (math.isnan(x) and math.isnan(y)) or abs(x - y) <= atol + rtol * abs(y), f"{where}: {x!r} vs stored {y!r}"
    else:
        assert a == b, f"{where}: {a!r} vs stored {b!r}"


def _stored_paper_cells():
    store = Store()
    out = []
    for sw in spec.sweeps():
        if sw.name.startswith("selftest") or not sw.configs("paper"):
            continue
        st = store.status(sw, "paper")
        if st["done"] or st["corrupt"]:
            out.append(pytest.param(sw.name, id=sw.name))
    return out


@pytest.mark.parametrize("name", _stored_paper_cells() or [pytest.param(None, id="no-stored-paper-cells")])
def test_stored_paper_cell_recomputes(name):
    if name is None:
        pytest.skip("the results store holds no paper-scale cells")
    import torch

    sw = sweeps.get(name)
    store = Store()
    budget = float(os.environ.get("CNNBIAS_INTEGRITY_BUDGET_S", "20"))
    seed = os.environ.get("CNNBIAS_INTEGRITY_SEED")
    rng = random.Random(int(seed)) if seed else random.Random()
    version = sw.code_version()
    eligible = []
    for cfg in sw.configs("paper"):
        p = store.path(name, "paper", sw.key("paper", cfg, version))
        if p.exists():
            rec = read_file(p)  # a corrupt stored file fails here, naming it
            prov = rec["provenance"]
            if prov.get("device") == "cpu" and prov.get("dtype") == "float64" and (prov.get("wall_s") or 0) <= budget:
                eligible.append((cfg, rec))
    if not eligible:
        pytest.skip(f"{name}: no stored paper cell computed on the CPU in float64 within {budget} s")
    cfg, rec = rng.choice(eligible)
    fresh = json.loads(json.dumps(jsonable(sw.cell_fn(cfg, torch.device("cpu"), torch.float64))))
    try:
        _close(fresh, rec["result"], sw.rtol, sw.atol)
    except AssertionError as e:
        raise AssertionError(f"{name} paper cell {sw.cell_label(cfg)} (key {rec['key']}): recomputed result "
                             f"differs from the stored one: {e}") from None
