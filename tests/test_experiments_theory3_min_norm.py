"""Tests of cnnbias.experiments.theory3.min_norm at smoke scale (drivers of the min_norm chapter)."""

import math

import numpy as np
import pytest
import torch
from cnnbias.experiments.theory3 import min_norm as E
from cnnbias.theory.theory3 import min_norm as M

CFG = {k: dict(v) for k, v in E.CONFIGS["smoke"].items()}


def test_configs_have_every_scale():
    assert set(E.CONFIGS) == {"smoke", "book", "paper"}
    assert all(set(v) == set(E.CONFIGS["book"]) for v in E.CONFIGS.values())


def test_run_gd_matches_closed_form_and_batch_invariance():
    gens = [torch.Generator().manual_seed(s) for s in range(3)]
    X, y = E.gaussian_problem(gens, 5, 15)
    out = E.run_gd(X, y, 0.05, 80)
    assert torch.allclose(out["w"], M.gd_closed_form(X, y, 0.05, 80), atol=1e-10)
    one = E.run_gd(X[1:2], y[1:2], 0.05, 80)
    assert torch.equal(one["w"][0], out["w"][1])


def test_run_gd_divergence_reported():
    gens = [torch.Generator().manual_seed(s) for s in range(2)]
    X, y = E.gaussian_problem(gens, 5, 15)
    eta = 3.0 / (torch.linalg.svdvals(X) ** 2 / 5)[:, 0]
    with pytest.raises(E.DivergedError, match="diverged"):
        E.run_gd(X, y, eta, 300)
    out = E.run_gd(X, y, eta, 300, on_diverge="flag")
    assert bool(out["diverged"].all())


def test_run_sgd_reaches_min_norm_and_uses_generators():
    gens = [torch.Generator().manual_seed(s) for s in range(2)]
    X, y = E.gaussian_problem(gens, 4, 12)
    eta = 1.0 / float((X * X).sum(-1).max())
    a = E.run_sgd(X, y, eta, 6000, [torch.Generator().manual_seed(s) for s in (7, 8)])
    assert float(torch.linalg.vector_norm(a["w"] - M.min_norm_solution(X, y), dim=-1).max()) < 1e-8
    b = E.run_sgd(X, y, eta, 10, [torch.Generator().manual_seed(s) for s in (7, 8)])
    c = E.run_sgd(X, y, eta, 10, [torch.Generator().manual_seed(s) for s in (7, 9)])
    assert torch.equal(b["w"][0], c["w"][0]) and not torch.equal(b["w"][1], c["w"][1])


def test_smoke_min_norm_and_sweeps():
    mn = E.min_norm_runs(CFG)
    assert float(mn["gd_err"].max()) < 1e-10 and float(mn["sgd_err"].max()) < 1e-10
    assert float(mn["gd_null"].max()) < 1e-12
    isw = E.init_scale_sweep(CFG)
    assert float(isw["dist_offset"].max()) < 1e-10
    assert float(isw["dist_dagger"][0].max()) < 1e-10 and float(isw["dist_dagger"][-1].min()) > 0.1
    ss = E.step_size_sweep(CFG)
    assert not bool(ss["diverged"][0].any()) and bool(ss["diverged"][-1].all())
    tk = E.tikhonov_sweep(CFG)
    assert bool((tk["err"][1:] < tk["err"][:-1]).all())


def test_smoke_gd_ridge_exponent():
    gr = E.gd_ridge_sweep(CFG)
    assert abs(float(np.mean(gr["slopes"])) + 1) < 0.1
    assert float(gr["closed_form_err"].max()) < 1e-8


def test_smoke_first_layer_span():
    fl = E.first_layer_span(CFG)
    for m in fl["models"]:
        assert float(fl["results"][m]["update_out"].max()) < 1e-12


def test_smoke_polynomials_and_robust():
    ps = E.poly_standard(CFG)
    assert bool((ps["err"] <= 10 * ps["bound"] + 1e-10).all())
    pp = E.poly_product(CFG)
    assert bool((pp["norm_ratio"] >= 1 - 1e-2).all()) or bool((pp["rel_loss"] > 1e-6).any())
    pw = E.poly_weight(CFG)
    assert pw["dist"].shape == (len(CFG["poly"]["init_scales"]), CFG["poly"]["R"])
    rb = E.robust_check(CFG)
    assert torch.allclose(rb["margin_w_pga"], rb["margin_w_closed"], rtol=1e-6)
    assert torch.allclose(rb["loss_resid_pga"], rb["loss_resid_closed"], rtol=1e-6)


def test_fit_loglog_and_validation():
    s, c = E.fit_loglog([1, 10, 100], [2, 0.2, 0.02])
    assert math.isclose(s, -1, abs_tol=1e-12) and math.isclose(c, math.log(2), abs_tol=1e-12)
    with pytest.raises(ValueError):
        E.gaussian_problem([torch.Generator()], 5, 3)
    with pytest.raises(ValueError):
        E.run_gd(torch.zeros(2, 3, 5, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64), -1.0, 3)


# --- the sweep theory3.min_norm (cnnbias.experiments.theory3.min_norm_sweep) -------------------------

from cnnbias.claims import Claims  # noqa: E402
from cnnbias.experiments.theory3 import min_norm_sweep as SW  # noqa: E402
from cnnbias.sweeps import spec  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def smoke_cells():
    return [(c, SW.min_norm_cell(c, CPU, torch.float64)) for c in SW.min_norm_cells("smoke")]


def test_cells_per_scale_cover_every_part_value_and_run():
    for scale in ("smoke", "book", "paper"):
        cells = SW.min_norm_cells(scale)
        assert {c["part"] for c in cells} == set(SW.PARTS)
        for c in cells:
            sub = c["sub"]
            assert c["runs"][0] < c["runs"][1] <= sub["R"]
            if scale != "paper":
                assert c["runs"] == [0, sub["R"]]
        fl = [c for c in cells if c["part"] == "first_layer"]
        n_chunks = -(-E.CONFIGS[scale]["first_layer"]["R"] // (SW.PAPER_CHUNK["first_layer"] if scale == "paper"
                                                                   else E.CONFIGS[scale]["first_layer"]["R"]))
        assert len(fl) == len(E.MODELS) * len(E.CONFIGS[scale]["first_layer"]["init_scales"]) * n_chunks
    with pytest.raises(ValueError, match="scale"):
        SW.min_norm_cells("huge")


def test_smoke_cells_well_formed_and_deterministic(smoke_cells):
    import json

    for c, r in smoke_cells:
        text = json.dumps(r)  # JSON values only (NaN marks diverged runs)
        assert json.dumps(json.loads(text)) == text
        assert r["runs"] == c["runs"]
    again = {i: SW.min_norm_cell(smoke_cells[i][0], CPU, torch.float64) for i in (0, 1, 11, len(smoke_cells) - 1)}
    for i, r in again.items():
        assert json.dumps(r) == json.dumps(smoke_cells[i][1])


def test_cells_match_the_drivers(smoke_cells):
    P = SW.assemble(smoke_cells)
    isw = E.init_scale_sweep(CFG)
    assert P["init_scale"]["scales"] == CFG["init_scale"]["scales"]
    assert torch.equal(P["init_scale"]["dist_offset"], isw["dist_offset"])
    mn = E.min_norm_runs(CFG)
    assert torch.equal(P["min_norm"]["sgd_path_err"], mn["sgd_path_err"])
    fl = E.first_layer_span(CFG)
    assert torch.equal(P["first_layer"]["results"]["poly3"]["final_out"], fl["results"]["poly3"]["final_out"])
    assert P["first_layer"]["null_dim"] == fl["null_dim"]
    pp = E.poly_product(CFG)
    assert torch.equal(P["poly_product"]["null"], pp["null"])


def test_run_chunks_give_the_same_runs():
    c = next(c for c in SW.min_norm_cells("smoke") if c["part"] == "init_scale" and c["value"] == 1.0)
    whole = SW.min_norm_cell(c, CPU, torch.float64)
    parts = [SW.min_norm_cell(dict(c, runs=r), CPU, torch.float64) for r in ([0, 1], [1, 3])]
    for k in ("dist_dagger", "null_w0"):
        assert np.allclose(parts[0][k] + parts[1][k], whole[k], rtol=1e-12, atol=1e-15)
    c = next(c for c in SW.min_norm_cells("smoke") if c["part"] == "min_norm")
    whole = SW.min_norm_cell(c, CPU, torch.float64)
    tail = SW.min_norm_cell(dict(c, runs=[2, 3]), CPU, torch.float64)
    assert tail["eta_sgd"] == whole["eta_sgd"]  # the SGD step is a max over all R problems
    assert np.allclose(tail["sgd_path_err"], [row[2:] for row in whole["sgd_path_err"]], rtol=1e-9, atol=1e-15)
    c = next(c for c in SW.min_norm_cells("smoke") if c["part"] == "first_layer" and c["model"] == "relu_deep")
    whole = SW.min_norm_cell(c, CPU, torch.float64)
    tail = SW.min_norm_cell(dict(c, runs=[1, 2]), CPU, torch.float64)
    assert np.allclose(tail["final_out"], whole["final_out"][1:], rtol=1e-9)


def test_cell_rejects_bad_configs():
    good = next(c for c in SW.min_norm_cells("smoke") if c["part"] == "init_scale")
    for bad, key in (
        ({k: v for k, v in good.items() if k != "part"}, "'part'"),
        (dict(good, part="nope"), r"cfg\['part'\]"),
        (dict(good, runs=[0, 99]), r"cfg\['runs'\]"),
        (dict(good, runs=[2, 1]), r"cfg\['runs'\]"),
        (dict(good, value=0.5), r"cfg\['value'\]"),
        ({k: v for k, v in good.items() if k != "value"}, r"cfg\['value'\]"),
        (dict(good, sub=[1]), r"cfg\['sub'\]"),
    ):
        with pytest.raises(ValueError, match=key):
            SW.min_norm_cell(bad, CPU, torch.float64)
    fl = next(c for c in SW.min_norm_cells("smoke") if c["part"] == "first_layer")
    with pytest.raises(ValueError, match=r"cfg\['model'\]"):
        SW.min_norm_cell(dict(fl, model="cnn"), CPU, torch.float64)
    with pytest.raises(ValueError, match="runs"):
        E.step_size_sweep(CFG, runs=(0, 10))
    with pytest.raises(ValueError, match="factors"):
        E.step_size_sweep(CFG, factors=[7.0])


def test_assemble_needs_every_run(smoke_cells):
    part = [(dict(c, runs=[0, 1]), r) for c, r in smoke_cells if c["part"] == "tikhonov"]
    with pytest.raises(ValueError, match="do not cover"):
        SW.assemble(part)


def test_claim_functions_make_their_ids(smoke_cells):
    claims = Claims("theory3", scale="smoke")
    SW.add_claims(smoke_cells, claims)
    ids = [c.id for c in claims]
    assert ids == ["theory3.min_norm_gd", "theory3.min_norm_sgd", "theory3.nonzero_init_offset",
                   "theory3.gd_ridge_1_over_T", "theory3.poly_min_norm_standard",
                   "theory3.poly_weight_param_min_norm", "theory3.eq42_robust_loss_at_interpolation"]
    assert set(ids) == set(SW.CLAIM_IDS)
    assert [c.id for c in claims.checks] == ["theory3.row_span_invariant", "theory3.tikhonov_limit",
                                            "theory3.first_layer_span", "theory3.robust_square_loss_closed_form",
                                            "theory3.worst_perturbation_margin"]
    byid = {c.id: c for c in claims}
    assert byid["theory3.min_norm_gd"].passed and byid["theory3.nonzero_init_offset"].passed
    checks = {c.id: c for c in claims.checks}
    assert checks["theory3.row_span_invariant"].passed and checks["theory3.first_layer_span"].passed
    for cid, (part, fn) in SW.CLAIM_IDS.items():  # each function works on its own part's cells only
        one = Claims("theory3", scale="smoke")
        fn([cr for cr in smoke_cells if cr[0]["part"] == part], one)
        assert cid in [c.id for c in one]
    with pytest.raises(ValueError, match="no 'robust' cells"):
        SW.claim_robust([], Claims("theory3", scale="smoke"))


def test_sweep_registered_with_its_claims():
    sw = spec.get("theory3.min_norm")
    assert sw.cell_fn is SW.min_norm_cell and sw.cpu_only
    assert "cnnbias.experiments.theory3.min_norm" in sw.modules
    assert len(sw.configs("paper")) == len(SW.min_norm_cells("paper")) > len(sw.configs("book"))
    specs = {c.id: c for c in spec.claims_of("theory3.min_norm")}
    assert set(SW.CLAIM_IDS) <= set(specs)
    for cid, (part, _) in SW.CLAIM_IDS.items():
        sel = specs[cid].select
        assert all(sel(c) == (c["part"] == part) for c in SW.min_norm_cells("smoke"))
