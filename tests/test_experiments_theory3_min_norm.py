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
