"""Tests for the index of declared sweeps (``results/sweeps.json``, :mod:`cnnbias.sweeps.index`)."""

import json

from cnnbias import sweeps
from cnnbias.sweeps import index as I


def test_committed_index_is_current():
    """results/sweeps.json equals a fresh index (rewrite it with ``python -m cnnbias index``)."""
    path = sweeps.default_root() / I.INDEX_NAME
    assert path.is_file(), f"{path} is missing: python -m cnnbias index"
    assert path.read_text(encoding="utf-8") == I.index_text(), (
        f"{path} is out of date (a sweep's cells or code changed): run python -m cnnbias index and commit it")


def test_index_lists_every_declared_sweep_with_its_paper_keys():
    idx = I.build_index()
    names = [n for n in sweeps.names() if not n.startswith("selftest")]
    assert sorted(idx["sweeps"]) == names
    for name, entry in idx["sweeps"].items():
        sw = sweeps.get(name)
        assert entry["cells"] == {s: len(sw.configs(s)) for s in sweeps.SCALES}
        version = sw.code_version()
        assert entry["keys"] == [sw.key("paper", c, version) for c in sw.configs("paper")]
        assert set(entry["claims"]) == {c.id for c in sweeps.claims_of(name)}
    assert json.loads(I.index_text(idx)) == idx  # the one-line-per-sweep text is the same JSON


def test_write_index_is_atomic_and_complete(tmp_path):
    path = I.write_index(tmp_path)
    assert path == tmp_path / I.INDEX_NAME
    assert [p.name for p in tmp_path.iterdir()] == [I.INDEX_NAME]  # no temporary file left
    assert json.loads(path.read_text())["format"] == I.FORMAT
