"""Tests of cnnbias.experiments.psi_grid: the PSI chapter's sweeps psi.grid, psi.thm61, psi.thm71."""

from __future__ import annotations

import json

import pytest
import torch
from cnnbias import sweeps
from cnnbias.claims import Claims
from cnnbias.experiments import psi as PE
from cnnbias.experiments import psi_grid as PG
from cnnbias.sweeps.reproduce import claim_from_store

CPU, F64 = torch.device("cpu"), torch.float64
GRID_IDS = {"psi.cstar_small", "psi.cstar_vs_k", "psi.cstar_vs_m", "psi.ratio_tracks_statistics",
            "psi.eq3_sums_fall", "psi.eq9_violations_fall", "psi.eq9_zero_test_error"}


def _fast(cfg: dict) -> dict:
    """A grid cell cut to a few epochs and a small test set (the cell's structure is unchanged)."""
    return dict(cfg, max_epochs=min(cfg["max_epochs"], 10), m_test=40)


def test_grid_cells_per_scale():
    for scale in ("smoke", "book", "paper"):
        cells = PG.grid_cells(scale)
        c = PG.CONFIGS[scale]
        assert all(set(cfg) == set(PG._GRID_KEYS) for cfg in cells)
        # every figure's points are there: the Fig. 1a grid, Fig. 1b and Fig. 3 at every kappa, one Fig. 1c cell
        n1a = (len(c["grid_u"]) + len(c["grid_vc"])) * len(c["k"]) * len(c["m"])
        assert sum("1a" in cfg["figs"] for cfg in cells) == n1a
        assert sum("1b" in cfg["figs"] for cfg in cells) == len(c["kappas"]) * len(c["k1b"])
        assert sum("3" in cfg["figs"] for cfg in cells) == len(c["kappas"]) * len(c["m3"])
        [c1c] = [cfg for cfg in cells if "1c" in cfg["figs"]]
        assert c1c["R"] == len(c["ps"]) * c["R1c"] and len(c1c["p"]) == c1c["R"]
        json.dumps(cells, allow_nan=False)  # JSON values only
    paper = PG.grid_cells("paper")
    # the paper's grid at kappa = 1e-3 (127 points, the cost estimate), plus the larger kappa of Figs. 1b and 3
    assert len(paper) == 175 and sum(c["kappa"] == 1e-3 for c in paper) == 127
    assert len(PG.grid_cells("book")) == 49
    shared = [c for c in PG.grid_cells("book") if len(c["figs"]) > 1]
    assert [(c["figs"], c["k"], c["m"]) for c in shared] == [(["1b", "3"], 100, 500)] * 3
    with pytest.raises(ValueError, match="scale"):
        PG.grid_cells("huge")


def test_grid_cell_is_deterministic_and_matches_the_library():
    cfg = _fast(PG.grid_cells("smoke")[0])
    a = PG.grid_cell(cfg, CPU, F64)
    b = PG.grid_cell(json.loads(json.dumps(cfg)), CPU, F64)  # the config as the store reads it back
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert len(a["c_star"]) == cfg["R"] and len(a["s"]) == cfg["R"] and len(a["s"][0]) == cfg["d"]
    # the same seeds and settings as the chapter's memoized cells (experiment "psi.grid")
    ref = PE.GridCells(cfg, b=2.0, device=CPU, dtype=F64)(cfg["dist"], cfg["n"], cfg["d"], cfg["k"], cfg["m"],
                                                           cfg["R"], kappa=cfg["kappa"])
    assert a["c_star"] == ref["c_star"].tolist() and a["epochs"] == ref["epochs"].tolist()
    t = PG.as_tensors(a)
    assert t["eq9"].dtype == torch.bool and t["epochs"].dtype == torch.long and t["c_star"].dtype == F64


def test_grid_cell_rejects_bad_configs():
    cfg = _fast(PG.grid_cells("smoke")[0])
    with pytest.raises(ValueError, match="'kappa'"):
        PG.grid_cell({k: v for k, v in cfg.items() if k != "kappa"}, CPU, F64)
    with pytest.raises(ValueError, match=r"cfg\['dist'\]"):
        PG.grid_cell(dict(cfg, dist="x"), CPU, F64)
    with pytest.raises(ValueError, match=r"cfg\['figs'\]"):
        PG.grid_cell(dict(cfg, figs=["2"]), CPU, F64)
    with pytest.raises(ValueError, match=r"cfg\['p'\]"):
        PG.grid_cell(dict(cfg, p=[0.5, 0.5]), CPU, F64)
    with pytest.raises(ValueError, match=r"cfg\['kappa'\]"):
        PG.grid_cell(dict(cfg, kappa=-1.0), CPU, F64)


def test_grid_claims_from_smoke_cells():
    cells = [(c, PG.grid_cell(_fast(c), CPU, F64)) for c in PG.grid_cells("smoke")]
    claims = Claims("psi", scale="smoke")
    for fn in (PG.claim_cstar_small, PG.claim_cstar_vs_k, PG.claim_cstar_vs_m, PG.claim_ratio_tracks_statistics,
               PG.claim_eq3, PG.claim_eq9_zero_test_error):
        fn(cells, claims)
    assert {c.id for c in claims} == GRID_IDS
    assert [c.id for c in claims.checks] == ["psi.eq3_bound_valid"]
    rows, xs, runs = PG.kappa_rows(cells, "3")
    assert xs == PG.CONFIGS["smoke"]["m3"] and [r["kappa"] for r in rows] == PG.CONFIGS["smoke"]["kappas"]
    assert all(len(runs[k]) == len(xs) for k in runs)
    with pytest.raises(ValueError, match="fig"):
        PG.select(cells, "2")


def test_theorem_cells_and_claims(tmp_path):
    [c61] = PG.thm61_cells("smoke")
    r61 = PG.thm61_cell(c61, CPU, F64)
    assert r61 == PG.thm61_cell(dict(c61), CPU, F64) and len(r61["max_spurious"]) == c61["sets"]
    with pytest.raises(ValueError, match=r"cfg\['sets'\]"):
        PG.thm61_cell(dict(c61, sets=0), CPU, F64)
    with pytest.raises(ValueError, match="'m'"):
        PG.thm61_cell({k: v for k, v in c61.items() if k != "m"}, CPU, F64)
    c71 = [dict(c, k=20, R=2) for c in PG.thm71_cells("smoke")]
    cells71 = [(c, PG.thm71_cell(c, CPU, F64)) for c in c71]
    assert cells71[0][1] == PG.thm71_cell(c71[0], CPU, F64)
    assert all(len(r["T"]) == 2 and len(r["counts0"]) == 9 for _, r in cells71)
    with pytest.raises(ValueError, match=r"cfg\['c_eta'\]"):
        PG.thm71_cell(dict(c71[0], c_eta=0.0), CPU, F64)
    claims = Claims("psi", scale="smoke")
    PG.claim_thm61([(c61, r61)], claims)
    PG.claim_thm71(cells71, claims)
    assert [c.id for c in claims] == ["psi.thm61_failure_prob", "psi.thm71_two_points", "psi.thm71_time_vs_ceta"]
    # reproduce from a store holding the smoke cell of psi.thm61
    store = sweeps.Store(tmp_path)
    sw = sweeps.get("psi.thm61")
    store.write(sw, "smoke", c61, r61, sw.code_version(), {"device": "cpu"})
    claim, _ = claim_from_store("psi.thm61_failure_prob", "smoke", store)
    assert claim.id == "psi.thm61_failure_prob" and claim.scale == "smoke"


def test_sweeps_are_registered_with_their_claims():
    assert sweeps.get("psi.grid").cell_fn is PG.grid_cell
    assert sweeps.get("psi.thm61").cpu_only and sweeps.get("psi.thm71").cpu_only
    assert {c.id for c in sweeps.claims_of("psi.grid")} == GRID_IDS
    assert {c.id for c in sweeps.claims_of("psi.thm61")} == {"psi.thm61_failure_prob"}
    assert {c.id for c in sweeps.claims_of("psi.thm71")} == {"psi.thm71_two_points", "psi.thm71_time_vs_ceta"}
    assert [len(sweeps.get(n).configs("paper")) for n in ("psi.grid", "psi.thm61", "psi.thm71")] == [175, 1, 6]
    assert "cnnbias.experiments.psi" in sweeps.get("psi.grid").modules
