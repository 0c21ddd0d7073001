"""Tests of cnnbias.experiments.pattern_detection (the pattern detection distributions as a sweep)."""

from __future__ import annotations

import pytest
import torch
from cnnbias import sweeps
from cnnbias.claims import Claims
from cnnbias.experiments import pattern_detection as PD

CPU, F64 = torch.device("cpu"), torch.float64


def test_cells_per_scale():
    for scale in ("smoke", "book", "paper"):
        cells = PD.pattern_detection_cells(scale)
        assert [c["dist"] for c in cells] == list(PD.DISTRIBUTIONS)
        assert {c["m"] for c in cells} == {PD.CONFIGS[scale]["m_mc"]}
    with pytest.raises(ValueError, match="scale"):
        PD.pattern_detection_cells("huge")


def test_smoke_cells_are_well_formed_and_deterministic():
    cells = [dict(c, m=500) for c in PD.pattern_detection_cells("smoke")]
    out = [(c, PD.pattern_detection_cell(c, CPU, F64)) for c in cells]
    for c, r in out:
        assert r["rule_ok"] and r["one_discriminative"]
        assert len(r["s"]) == len(r["se"]) == c["npat"] and r["z_max"] >= 0
        assert abs(r["s"][0] - 0.5) < 0.1 and abs(r["s"][1] + 0.5) < 0.1
    assert PD.pattern_detection_cell(cells[1], CPU, F64) == out[1][1]
    assert PD.expected_bias(cells[3])[2:4] == pytest.approx([0.3, -0.3])
    claims = Claims("maxpool", scale="smoke")
    PD.claim_label_rule(out, claims)
    PD.claim_spurious_unbiased(out, claims)
    assert [c.id for c in claims] == ["maxpool.label_rule", "maxpool.spurious_unbiased"]
    assert all(c.passed for c in claims)


def test_cell_rejects_bad_configs():
    cfg = PD.pattern_detection_cells("smoke")[0]
    with pytest.raises(ValueError, match=r"cfg\['dist'\]"):
        PD.pattern_detection_cell(dict(cfg, dist="E"), CPU, F64)
    with pytest.raises(ValueError, match=r"cfg\['m'\]"):
        PD.pattern_detection_cell(dict(cfg, m=0), CPU, F64)
    with pytest.raises(ValueError, match=r"cfg\['npat'\]"):
        PD.pattern_detection_cell(dict(cfg, dist="D_vc", npat=30), CPU, F64)
    with pytest.raises(ValueError, match=r"cfg\['p'\]"):
        PD.pattern_detection_cell({k: v for k, v in PD.pattern_detection_cells("smoke")[3].items() if k != "p"},
                                  CPU, F64)


def test_sweep_registered_with_claims():
    sw = sweeps.get("maxpool.pattern_detection")
    assert sw.cell_fn is PD.pattern_detection_cell and sw.cpu_only
    ids = {c.id for c in sweeps.claims_of("maxpool.pattern_detection")}
    assert ids == {"maxpool.label_rule", "maxpool.spurious_unbiased"}
