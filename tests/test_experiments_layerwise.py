"""Tests of cnnbias.experiments.layerwise: the sweeps of the layerwise-GD chapter (max-pooling paper)."""

from __future__ import annotations

import pytest
import torch
from cnnbias import config, sweeps
from cnnbias.claims import Claims
from cnnbias.experiments import layerwise as L
from cnnbias.experiments import maxpool as MP

CPU, F64 = torch.device("cpu"), torch.float64

SWEEPS = {
    "maxpool.lucky_filters": {"maxpool.lucky_probability", "maxpool.lemma52_counts", "maxpool.lemma52_band"},
    "maxpool.lw_cnn": {"maxpool.lemma53_dynamics", "maxpool.thm51_margin", "maxpool.thm51_zero_loss"},
    "maxpool.fig3": {"maxpool.fig3a_convpool_best", "maxpool.fig3a_zero_train", "maxpool.fig3b_noise",
                     "maxpool.fig3c_digits"},
    "maxpool.fig4": {"maxpool.fig4_n_robust"},
    "maxpool.sec7_separability": {"maxpool.sec7_noise_not_separable"},
    "maxpool.sec7_layerwise": {"maxpool.sec7_layerwise_like_adam"},
}


def _run(cells_of, cell_fn, **small):
    out = []
    for c in cells_of("smoke"):
        c = dict(c, **{k: v for k, v in small.items() if k in c})
        out.append((c, cell_fn(c, CPU, F64)))
    return out


def _ids(claims):
    return [c.id for c in claims]


def test_sweeps_registered_with_their_claims_and_cells():
    for name, ids in SWEEPS.items():
        sw = sweeps.get(name)
        assert sw.cell_fn.__module__ == "cnnbias.experiments.layerwise" and sw.cpu_only
        assert {c.id for c in sweeps.claims_of(name)} == ids
        for scale in sweeps.SCALES:
            assert sw.configs(scale), (name, scale)
    assert [c["d"] for c in L.lucky_cells("paper")] == L.CONFIGS["paper"]["lucky_ds"]
    assert [c["m"] for c in L.lw_cells("book")] == L.CONFIGS["book"]["lw_sizes"]
    f3 = L.fig3_cells("book")
    assert [c["m"] for c in f3 if c["panel"] == "b"] == L.CONFIGS["book"]["sizes_noisy"]
    assert {c["digits"] for c in f3 if c["panel"] == "c"} == {L.DIGITS}
    assert len(L.sep_cells("paper")) == 2 * len(L.SEP_CONFIGS["paper"]["sizes"])
    with pytest.raises(ValueError, match="scale"):
        L.lucky_cells("huge")


def test_lucky_cell_matches_one_batch_and_is_deterministic():
    cfg = L.lucky_cells("smoke")[0]
    a, b = L.lucky_cell(cfg, CPU, F64), L.lucky_cell(cfg, CPU, F64)
    assert a == b and len(a["n_plus"]) == cfg["runs"] and a["k"] == 8 * cfg["d"] ** 3 + 1
    # the chapter's single batch, seeded by its settings: the same counts (chunking changes nothing)
    gens = config.generators("lucky", {"d": cfg["d"], **L.CONFIGS["smoke"]}, cfg["runs"])
    lp, lm = MP.lucky_masks(*MP.sphere_init(a["k"], cfg["d"], 1.0, gens))
    assert a["n_plus"] == lp.sum(1).tolist() and a["n_minus"] == lm.sum(1).tolist()
    claims = Claims("maxpool", scale="smoke")
    L.claim_lucky(_run(L.lucky_cells, L.lucky_cell), claims)
    assert _ids(claims) == ["maxpool.lucky_probability", "maxpool.lemma52_counts", "maxpool.lemma52_band"]


def test_lw_cells_and_claims():
    cells = _run(L.lw_cells, L.lw_cell, T2=20)
    c, r = cells[0]
    assert len(r["eq14"]) == c["reps"] and len(r["L2_history_first"]) == len(r["L2_epochs"])
    assert len(r["traj_lucky"]) == c["T1"] + 1
    assert L.lw_cell(c, CPU, F64) == r
    claims = Claims("maxpool", scale="smoke")
    for f in (L.claim_lw_dynamics, L.claim_lw_margin, L.claim_lw_zero_loss):
        f(cells, claims)
    assert _ids(claims) == ["maxpool.lemma53_dynamics", "maxpool.thm51_margin", "maxpool.thm51_zero_loss"]


def test_fig3_fig4_cells_and_claims():
    cells = _run(L.fig3_cells, L.fig3_cell, epochs=5, reps=2)
    for c, r in cells:
        assert set(r) >= {"convpool", "mlp", "svm"}
        assert len(r["convpool"]["test_err"]) == c["reps"]
    c0, r0 = cells[0]
    assert L.fig3_cell(c0, CPU, F64) == r0
    claims = Claims("maxpool", scale="smoke")
    for f in (L.claim_fig3a_best, L.claim_fig3a_zero_train, L.claim_fig3b_noise, L.claim_fig3c_digits):
        f(cells, claims)
    cells4 = _run(L.fig4_cells, L.fig4_cell, epochs=5)
    L.claim_fig4(cells4, claims)
    assert _ids(claims) == ["maxpool.fig3a_convpool_best", "maxpool.fig3a_zero_train", "maxpool.fig3b_noise",
                            "maxpool.fig3c_digits", "maxpool.fig4_n_robust"]


def test_sep_and_layerwise_cells_and_claims():
    claims = Claims("maxpool", scale="smoke")
    sep = _run(L.sep_cells, L.sep_cell)
    assert all(len(r["not_separable"]) == c["reps"] for c, r in sep)
    L.claim_separability(sep, claims)
    la = _run(L.la_cells, L.la_cell, epochs=5)
    assert set(la[0][1]) >= {"convpool", "layerwise"}
    L.claim_layerwise_like_adam(la, claims)
    assert _ids(claims) == ["maxpool.sec7_noise_not_separable", "maxpool.sec7_layerwise_like_adam"]


def test_cells_reject_bad_configs():
    with pytest.raises(ValueError, match="'runs'"):
        L.lucky_cell({"d": 3, "seeds": "smoke"}, CPU, F64)
    with pytest.raises(ValueError, match="seeds"):
        L.lucky_cell({"d": 3, "runs": 2, "seeds": "huge"}, CPU, F64)
    lw0 = L.lw_cells("smoke")[0]
    with pytest.raises(ValueError, match=r"cfg\['m'\]"):
        L.lw_cell(dict(lw0, m=10**6), CPU, F64)
    f3 = L.fig3_cells("smoke")[0]
    with pytest.raises(ValueError, match=r"cfg\['panel'\]"):
        L.fig3_cell(dict(f3, panel="z"), CPU, F64)
    with pytest.raises(ValueError, match="'C'"):
        L.fig4_cell({k: v for k, v in L.fig4_cells("smoke")[0].items() if k != "C"}, CPU, F64)
    with pytest.raises(ValueError, match=r"cfg\['s'\]"):
        L.sep_cell(dict(L.sep_cells("smoke")[0], s=1), CPU, F64)
    with pytest.raises(ValueError, match="digits"):
        L.fig3_cells("smoke", digits="cifar")
