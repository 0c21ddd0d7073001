"""Tests of cnnbias.experiments.xord_dynamics (XORD Sec. 3-5 and Theorem 4.1 as sweeps)."""

from __future__ import annotations

import pytest
import torch
from cnnbias import sweeps
from cnnbias.claims import Claims
from cnnbias.experiments import xord_dynamics as XD

CPU, F64 = torch.device("cpu"), torch.float64

# small versions of the smoke cells (the chapter's smoke cells take a few seconds in all)
SMALL = {"eq56_check": {"steps": 5}, "k1_search": {"n": 500, "R": 4}, "thm52": {"R": 2},
         "thm52_k": {"R": 2}, "lemma_a12": {"R": 50}, "thm53": {"R": 40}, "xor": {"R": 5}}
DYN_IDS = {"xord.eq56_matches_gd", "xord.k1_cannot_realize", "xord.thm52_overparam_detects_all",
           "xord.lemma_a4_sets_fixed", "xord.s_plus_nondecreasing", "xord.lemma_a9_increment",
           "xord.thm52_detection_vs_k", "xord.lemma_a1_init", "xord.lemma_a2_init", "xord.thm53_small_net_fails",
           "xord.thm53_conditions", "xord.thm53_error_floor", "xord.xor_converges"}


def test_cells_per_scale():
    for scale in ("smoke", "book", "paper"):
        parts = [c["part"] for c in XD.dynamics_cells(scale)]
        assert set(parts) == set(XD.PARTS) and parts.count("thm52_k") == 3 and parts.count("xor") == 2
        sc = XD.sample_complexity_cells(scale)
        assert sc[0]["k"] == 120 and [c["m"] for c in sc[1:]] == XD.CONFIGS[scale]["ms41"]
    with pytest.raises(ValueError, match="scale"):
        XD.dynamics_cells("huge")


def test_dynamics_cells_and_claims():
    cells = []
    for c in XD.dynamics_cells("smoke"):
        if c["part"] == "filters" or (c["part"] == "thm52_k" and c["k"] > 120):
            continue
        c = dict(c, **SMALL[c["part"]])
        cells.append((c, XD.dynamics_cell(c, CPU, F64)))
    again = dict(cells[1][0])
    assert XD.dynamics_cell(again, CPU, F64) == cells[1][1]  # deterministic
    claims = Claims("xord", scale="smoke")
    done = set()
    for spec in sweeps.claims_of("xord.dynamics"):
        if spec.compute in done:
            continue
        done.add(spec.compute)
        spec.compute([(c, r) for c, r in cells if spec.select(c)], claims)
    assert {c.id for c in claims} == DYN_IDS
    assert claims  # eq56 equal to autograd at these sizes
    assert next(c for c in claims if c.id == "xord.eq56_matches_gd").passed


def test_sample_complexity_cells_and_claim():
    cells = [{"k": 120, "m": 1, "R": 1, "max_epochs": 3000}, {"k": 2, "m": 1, "R": 4, "max_epochs": 300},
             {"k": 2, "m": 2, "R": 4, "max_epochs": 300}]
    out = [(c, XD.sample_complexity_cell(c, CPU, F64)) for c in cells]
    assert len(out[0][1]["type"]) == 9 and len(out[1][1]["gen_error"]) == 4
    assert XD.sample_complexity_cell(cells[1], CPU, F64) == out[1][1]
    claims = Claims("xord", scale="smoke")
    XD.claim_thm41_gap_measured(out, claims)
    assert [c.id for c in claims] == ["xord.thm41_gap_measured"]


def test_cells_reject_bad_configs():
    with pytest.raises(ValueError, match=r"cfg\['part'\]"):
        XD.dynamics_cell({"part": "nope"}, CPU, F64)
    with pytest.raises(ValueError, match=r"cfg\['R'\]"):
        XD.dynamics_cell({"part": "thm53"}, CPU, F64)
    with pytest.raises(ValueError, match=r"cfg\['k'\]"):
        XD.dynamics_cell({"part": "xor", "k": 4, "R": 2}, CPU, F64)
    with pytest.raises(ValueError, match=r"cfg\['k'\]"):
        XD.sample_complexity_cell({"k": 3, "m": 1, "R": 2, "max_epochs": 10}, CPU, F64)
    with pytest.raises(ValueError, match=r"cfg\['m'\]"):
        XD.sample_complexity_cell({"k": 120, "m": 2, "R": 2, "max_epochs": 10}, CPU, F64)


def test_sweeps_registered_with_claims():
    assert sweeps.get("xord.dynamics").cell_fn is XD.dynamics_cell
    assert {c.id for c in sweeps.claims_of("xord.dynamics")} == DYN_IDS
    assert [c.id for c in sweeps.claims_of("xord.sample_complexity")] == ["xord.thm41_gap_measured"]
