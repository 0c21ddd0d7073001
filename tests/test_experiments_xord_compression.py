"""Tests of cnnbias.experiments.xord_compression (XORD Sec. 6.2 as a sweep)."""

from __future__ import annotations

import pytest
import torch
from cnnbias import sweeps
from cnnbias.claims import Claims
from cnnbias.experiments import xord_compression as XC


def test_cells_per_scale_fit_the_bundled_pool():
    _, _, test, pool = XC.digits_split()
    assert len(test) == XC.N_TEST and len(test) + len(pool) == 1797
    assert len(set(test.tolist()) & set(pool.tolist())) == 0  # test and training pool are disjoint
    for scale in ("smoke", "book", "paper"):
        cells = XC.compression_cells(scale)
        assert cells and all(1 <= c["n"] <= len(pool) and c["digits"] == XC.DIGITS for c in cells)
    assert [c["n"] for c in XC.compression_cells("paper")] == [100, 500, 1000]
    with pytest.raises(ValueError, match="scale"):
        XC.compression_cells("huge")


def test_smoke_cell_and_claim():
    cfg = dict(XC.compression_cells("smoke")[0], cnn_epochs=3, fc_epochs=3)
    res = XC.compression_cell(cfg, torch.device("cpu"), torch.float64)
    for key in ("err_120", "err_4", "err_compressed"):
        assert len(res[key]) == cfg["R"] and all(0.0 <= e <= 1.0 for e in res[key])
    claims = Claims("xord", scale="smoke")
    XC.claim_compression([(cfg, res)], claims)
    XC.claim_compression_matches_120([(cfg, res)], claims)
    assert [c.id for c in claims] == ["xord.compression", "xord.compression_matches_120"]
    assert sweeps.get("xord.compression").cell_fn is XC.compression_cell


def test_cell_refuses_other_digits_and_bad_sizes(monkeypatch, tmp_path):
    cfg = XC.compression_cells("smoke")[0]
    with pytest.raises(ValueError, match=r"cfg\['n'\]"):
        XC.compression_cell(dict(cfg, n=5000), torch.device("cpu"), torch.float64)
    monkeypatch.setenv("CNNBIAS_MNIST_DIR", str(tmp_path))  # an (empty) MNIST folder: not the bundled digits
    with pytest.raises(ValueError):
        XC.compression_cell(cfg, torch.device("cpu"), torch.float64)


def test_mnist_cells_name_their_data_and_need_the_files(monkeypatch):
    cells = XC.compression_cells("paper", digits="mnist")
    assert [c["n"] for c in cells] == [100, 500, 1000, 5000] and {c["digits"] for c in cells} == {"mnist"}
    monkeypatch.delenv("CNNBIAS_MNIST_DIR", raising=False)
    with pytest.raises(ValueError, match="CNNBIAS_MNIST_DIR"):
        XC.compression_cell(cells[0], torch.device("cpu"), torch.float64)
    with pytest.raises(ValueError, match="digits"):
        XC.compression_cells("book", digits="cifar")
