"""Tests of cnnbias.experiments.psi_digits (PSI Sec. 8 / App. G, colored digits, as the sweep psi.digits)."""

from __future__ import annotations

import pytest
import torch
from cnnbias import sweeps
from cnnbias.claims import Claims
from cnnbias.experiments import psi_digits as PD

CPU, F64 = torch.device("cpu"), torch.float64


def _small(cfg):
    return dict(cfg, max_epochs=2, m_test=50)


@pytest.fixture(scope="module")
def smoke_cells():
    return [(c, PD.digits_cell(c, CPU, F64)) for c in map(_small, PD.digits_cells("smoke"))]


def test_cells_per_scale():
    for scale in ("smoke", "book", "paper"):
        cells = PD.digits_cells(scale)
        parts = [c["part"] for c in cells]
        assert parts == ["m"] * len(PD.CONFIGS[scale]["ms"]) + ["k1"]
        assert [c["m"] for c in cells if c["part"] == "m"] == PD.CONFIGS[scale]["ms"]
        assert all(c["digits"] == PD.DIGITS and c["lr"] == PD.LR for c in cells)
        assert [c["k"] for c in cells] == [PD.K] * (len(cells) - 1) + [1]
    paper = PD.digits_cells("paper")
    assert [(c["m"], c["R"]) for c in paper] == [(6, 10), (20, 10), (1000, 10), (1000, 10)]
    assert {c["m_test"] for c in paper} == {10000}
    with pytest.raises(ValueError, match="scale"):
        PD.digits_cells("huge")
    with pytest.raises(ValueError, match="digits"):
        PD.digits_cells("book", digits="cifar")


def test_smoke_cells_well_formed_and_deterministic(smoke_cells):
    cfg, res = smoke_cells[0]
    R, k = cfg["R"], cfg["k"]
    for key in ("train_acc", "test_acc", "epochs", "green_ratio", "green_ratio_init", "n_green", "purity",
                "purity_init", "move"):
        assert len(res[key]) == R, key
    assert all(0.0 <= a <= 1.0 for a in res["test_acc"] + res["train_acc"])
    assert len(res["dominant_color"]) == R and all(len(row) == 2 * k for row in res["dominant_color"])
    assert all(c in (-1, 0, 1, 2) for row in res["dominant_color"] for c in row)
    assert len(res["W_run0"]) == 2 * k and len(res["W_run0"][0]) == res["d"] == 3 * 8 * 8
    assert res["digits"] == PD.DIGITS and res["shape"] == [8, 8]
    again = PD.digits_cell(cfg, CPU, F64)
    assert again == res  # same seeds, same numbers
    cfg1, res1 = smoke_cells[-1]
    assert cfg1["part"] == "k1" and len(res1["dominant_color"][0]) == 2


def test_cell_rejects_bad_configs():
    cfg = _small(PD.digits_cells("smoke")[0])
    with pytest.raises(ValueError, match="'part'"):
        PD.digits_cell(dict(cfg, part="k2"), CPU, F64)
    with pytest.raises(ValueError, match=r"cfg\['m'\]"):
        PD.digits_cell(dict(cfg, m=0), CPU, F64)
    with pytest.raises(ValueError, match=r"cfg\['lr'\]"):
        PD.digits_cell(dict(cfg, lr=-1.0), CPU, F64)
    with pytest.raises(ValueError, match=r"cfg\['k'\]"):
        PD.digits_cell(dict(cfg, part="k1", k=20), CPU, F64)
    with pytest.raises(ValueError, match="'m_test'"):
        PD.digits_cell({key: v for key, v in cfg.items() if key != "m_test"}, CPU, F64)
    with pytest.raises(ValueError, match=r"cfg\['digits'\]"):
        PD.digits_cell(dict(cfg, digits="cifar"), CPU, F64)


def test_cell_refuses_other_digits(monkeypatch, tmp_path):
    cfg = _small(PD.digits_cells("smoke")[0])
    monkeypatch.delenv("CNNBIAS_MNIST_DIR", raising=False)
    with pytest.raises(ValueError, match="CNNBIAS_MNIST_DIR"):
        PD.digits_cell(dict(cfg, digits="mnist"), CPU, F64)


def test_claim_functions_make_their_ids(smoke_cells):
    claims = Claims("psi", scale="smoke")
    for fn in (PD.claim_accuracy_grows, PD.claim_large_m_accuracy, PD.claim_acc_vs_paper, PD.claim_train_fit,
               PD.claim_spurious_detectors_fade, PD.claim_k1_classifies, PD.claim_filters_split_by_color):
        fn(smoke_cells, claims)
    assert [c.id for c in claims] == list(PD.CLAIM_IDS)
    res = PD.by_m(smoke_cells)
    assert list(res) == [6, 20] and res[6]["test_acc"].dtype == torch.float64
    assert PD.k1_result(smoke_cells)[0]["part"] == "k1"
    with pytest.raises(ValueError, match="'k1'"):
        PD.k1_result(smoke_cells[:1])


def test_sweep_registered_with_its_claims():
    sw = sweeps.get("psi.digits")
    assert sw.cell_fn is PD.digits_cell
    assert "cnnbias.experiments.psi" in sw.modules and "cnnbias.experiments.psi_digits" in sw.modules
    assert sw.configs("paper") == PD.digits_cells("paper")
    specs = {c.id: c for c in sweeps.claims_of("psi.digits")}
    assert set(specs) == set(PD.CLAIM_IDS)
    assert specs["psi.digits_k1_classifies"].select({"part": "k1"})
    assert not specs["psi.digits_train_fit"].select({"part": "k1"})
