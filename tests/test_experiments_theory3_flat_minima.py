"""Tests of cnnbias.experiments.theory3.flat_minima at smoke scale, and of its exact pieces."""

import math

import numpy as np
import pytest
import torch
from cnnbias.experiments.theory3 import flat_minima as F
from cnnbias.models import mlp

SMOKE = F.CONFIGS["smoke"]


def test_configs_have_all_scales_and_parts():
    assert set(F.CONFIGS) == {"smoke", "book", "paper"}
    for s in F.CONFIGS.values():
        assert set(s) == {"noise", "sgdl", "wells", "wedge", "fig10"}
    assert max(F.CONFIGS["paper"]["wells"]["dims"]) == 8 and max(F.CONFIGS["paper"]["wedge"]["dims"]) == 8


def test_per_example_grads_match_autograd_and_weighted_gradient():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(7, 5, generator=g, dtype=torch.float64)
    y = torch.tensor([1.0, -1, 1, 1, -1, -1, 1], dtype=torch.float64)
    p = mlp.init(3, 5, [g])
    G = F.per_example_grads(p, X, y)
    for i in range(7):
        q = {k: v.clone().requires_grad_(True) for k, v in p.items()}
        f = mlp.forward(q, X[None, i:i + 1])[0, 0]
        loss = torch.nn.functional.softplus(-y[i] * f)
        loss.backward()
        flat = torch.cat([q["W1"].grad[0].reshape(-1), q["b1"].grad[0], q["v"].grad[0], q["c"].grad])
        assert torch.allclose(G[i], flat, atol=1e-12)
    c = torch.rand(1, 7, generator=g, dtype=torch.float64)
    _, grads = F._forward_grads(p, X[None], y[None], c)
    flat = torch.cat([grads["W1"][0].reshape(-1), grads["b1"][0], grads["v"][0], grads["c"]])
    assert torch.allclose(flat, (c[0, :, None] * G).sum(0), atol=1e-12)


def test_sgd_and_sgdl_weights_have_equal_covariance():
    # SGD: counts/B (multinomial); SGDL: 1/n + (z - mean z)/sqrt(nB); both covariances (I - 11^T/n)/(nB)
    n, B, R = 6, 3, 200000
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(n, (R, B), generator=g)
    c1 = torch.zeros(R, n, dtype=torch.float64).scatter_add_(1, idx, torch.ones(R, B, dtype=torch.float64)) / B
    z = torch.randn(R, n, generator=g, dtype=torch.float64)
    c2 = 1 / n + (z - z.mean(1, keepdim=True)) / math.sqrt(n * B)
    target = (torch.eye(n, dtype=torch.float64) - 1 / n) / (n * B)
    for c in (c1, c2):
        assert torch.allclose(c.mean(0), torch.full((n,), 1 / n, dtype=torch.float64), atol=3e-3)
        assert torch.allclose(torch.cov(c.T), target, atol=3e-3 / (n * B) * 10)


def test_ks_normal_small_for_gaussian_large_for_uniform():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(20000, 2, generator=g, dtype=torch.float64)
    assert float(F.ks_normal(z).max()) < 0.015
    u = (torch.rand(20000, 1, generator=g, dtype=torch.float64) - 0.5) * math.sqrt(12)
    assert float(F.ks_normal(u)[0]) > 0.03


def test_gradient_noise_smoke():
    r = F.gradient_noise(SMOKE["noise"])
    nB, k = len(SMOKE["noise"]["batches"]), r["coords"]
    assert r["kurt"].shape == (nB, k) and r["ks"].shape == (nB, k)
    assert torch.all(torch.isfinite(r["kurt"])) and 0 <= r["test_err"] <= 1


def test_sgd_vs_sgdl_smoke():
    r = F.sgd_vs_sgdl(SMOKE["sgdl"])
    assert r["train_err"].shape[:2] == (2, SMOKE["sgdl"]["seeds"])
    assert torch.all((r["test_err"] >= 0) & (r["test_err"] <= 1))


def test_chains_smoke_shapes_and_probabilities():
    w = F.wells_chains(SMOKE["wells"])
    assert w["occ"].shape == (2, 2, 3) and np.allclose(w["occ"].sum(-1), 1)
    assert np.allclose(w["exact"].sum(-1), 1)
    e = F.wedge_chains(SMOKE["wedge"])
    assert e["occ"].shape == (2, 3) and np.allclose(e["occ"].sum(-1), 1)
    s = F.wedge_sgd(SMOKE["fig10"])
    assert s["occ"].shape == (2, 3) and s["amplitude"] == pytest.approx(math.sqrt(4 * 0.25 / 0.1))


def test_occupancy_counts_undecided_evenly():
    lab = torch.tensor([[[1, -1]], [[1, 2]]])  # [times=2, groups=1, chains=2]
    mean, se = F.occupancy(lab)
    assert torch.allclose(mean[0].sum(), torch.tensor(1.0, dtype=torch.float64))
    assert mean[0, 1] == pytest.approx((1.0 + 1 / 6) / 2)


def test_wedge_sgd_rejects_bad_config():
    with pytest.raises(ValueError):
        F.wedge_sgd({**SMOKE["fig10"], "n_data": 2})


def test_digits_task_split():
    g = torch.Generator().manual_seed(3)
    Xtr, ytr, Xte, yte = F.digits_task(100, g)
    assert Xtr.shape == (100, 64) and len(yte) == 1797 - 100
    assert set(ytr.unique().tolist()) <= {-1.0, 1.0}
    with pytest.raises(ValueError):
        F.digits_task(0, g)


def test_minibatch_kurtosis_is_kappa1_over_B():
    # i.i.d. draws with replacement: the excess kurtosis of a mean of B draws is exactly kappa_1 / B
    # (cumulants of a mean); the chapter reports this as a library check, not a claim
    r = F.gradient_noise({**SMOKE["noise"], "draws": 4000})
    B = np.array(r["batches"], dtype=float)
    kurt = r["kurt"].mean(1).numpy()
    pred = float(r["kappa1"].mean()) / B
    assert np.all(np.abs(kurt / pred - 1) < 0.2)
    assert abs(np.polyfit(np.log(B), np.log(kurt), 1)[0] + 1) < 0.1


# -- the sweep theory3.flat_minima ---------------------------------------------------------------------------

import json  # noqa: E402

from cnnbias import sweeps  # noqa: E402
from cnnbias.claims import Claims  # noqa: E402


def _smoke_cells():
    return [(c, json.loads(json.dumps(F.flat_minima_cell(c)))) for c in F.flat_minima_cells("smoke")]


@pytest.fixture(scope="module")
def smoke_cells():
    return _smoke_cells()


def test_sweep_registered_with_its_claims():
    sw = sweeps.get("theory3.flat_minima")
    assert sw is F.SWEEP and sw.cpu_only
    assert [c.id for c in sweeps.claims_of(sw.name)] == sorted(i for i, _, _ in F.CLAIMS)
    ids = {i for i, _, _ in F.CLAIMS}
    assert {"theory3.sgdl_like_sgd", "theory3.gibbs_slice_ratio_grows_with_D",
            "theory3.langevin_matches_gibbs", "theory3.sgd_sgdl_prefer_valley"} <= ids
    assert "cnnbias.experiments.theory3.flat_minima" in sw.modules and "cnnbias.langevin" in sw.modules


def test_cells_per_scale():
    book = F.flat_minima_cells("book")
    assert [c["part"] for c in book] == list(F.PARTS)
    for c in book[1:]:  # book cells are the chapter's settings, unchanged (same seeds)
        assert {k: v for k, v in c.items() if k != "part"} == F.CONFIGS["book"][c["part"]]
    paper = F.flat_minima_cells("paper")
    P = F.CONFIGS["paper"]
    count = {p: sum(c["part"] == p for c in paper) for p in F.PARTS}
    sp = F.SPLIT["paper"]
    assert count == {"gibbs": 1, "noise": 1, "sgdl": P["sgdl"]["seeds"] // sp["sgdl_group"],
                     "wells": 2 * 8 * sp["wells_blocks"], "wedge": 7 * sp["wedge_blocks"], "fig10": sp["fig10_blocks"]}
    for p in ("wells", "wedge", "fig10"):  # every setting keeps the paper's chains, split in blocks
        per = {}
        for c in paper:
            if c["part"] == p:
                key = (tuple(c.get("steps_eta", [])), tuple(c.get("dims", [])))
                per[key] = per.get(key, 0) + c["chains"]
        assert set(per.values()) == {P[p]["chains"]}
    groups = sorted(c["seed_group"] for c in paper if c["part"] == "sgdl")
    assert groups[0][0] == 0 and groups[-1][1] == P["sgdl"]["seeds"]
    with pytest.raises(ValueError, match="scale"):
        F.flat_minima_cells("huge")


def test_smoke_cells_are_json_and_deterministic(smoke_cells):
    cfgs = F.flat_minima_cells("smoke")
    assert [c for c, _ in smoke_cells] == cfgs
    assert all(isinstance(r, dict) and r for _, r in smoke_cells)
    # one cell of each chain part and an SGDL group, recomputed: equal
    for part in ("sgdl", "wells", "wedge", "fig10"):
        c, r = next((c, r) for c, r in smoke_cells if c["part"] == part)
        assert json.loads(json.dumps(F.flat_minima_cell(c))) == r
    # blocks have their own streams
    w = [r for c, r in smoke_cells if c["part"] == "wells"]
    assert w[0]["rows"][0]["occ"] != w[1]["rows"][0]["occ"]


def test_cell_rejects_bad_config():
    good = F.flat_minima_cells("smoke")
    with pytest.raises(ValueError, match="part"):
        F.flat_minima_cell({**good[0], "part": "nope"})
    c = next(c for c in good if c["part"] == "wells")
    with pytest.raises(ValueError, match="n_steps"):
        F.flat_minima_cell({k: v for k, v in c.items() if k != "n_steps"})
    with pytest.raises(ValueError, match="bogus"):
        F.flat_minima_cell({**c, "bogus": 1})
    with pytest.raises(ValueError, match="block"):
        F.flat_minima_cell({**c, "block": -1})
    s = next(c for c in good if c["part"] == "sgdl")
    with pytest.raises(ValueError, match="seed_group"):
        F.flat_minima_cell({**s, "seed_group": [0]})
    with pytest.raises(ValueError, match="seeds"):
        F.flat_minima_cell({**s, "seed_group": [1, 5]})


def test_claim_functions_make_their_ids(smoke_cells):
    for cid, fn, parts in F.CLAIMS:
        spec = sweeps.get_claim(cid)
        sel = [(c, r) for c, r in smoke_cells if spec.select(c)]
        assert {c["part"] for c, _ in sel} == set(parts)
        cl = Claims("theory3", scale="smoke")
        fn(sel, cl)
        assert [c.id for c in cl] == [cid]
    cl = Claims("theory3", scale="smoke")
    F.claim_grad_noise_kurtosis_clt(smoke_cells, cl)
    assert [c.id for c in cl.checks] == ["theory3.grad_noise_kurtosis_clt"]


def test_pool_is_the_mean_and_se_over_all_chains():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(30, 3, generator=g, dtype=torch.float64).numpy()
    blocks = [(b.mean(0), b.std(0, ddof=1) / math.sqrt(len(b)), len(b)) for b in (x[:10], x[10:25], x[25:])]
    m, s, n = F.pool(blocks)
    assert n == 30 and np.allclose(m, x.mean(0)) and np.allclose(s, x.std(0, ddof=1) / math.sqrt(30))
    one = F.pool(blocks[:1])
    assert np.array_equal(one[0], blocks[0][0]) and one[2] == 10


def test_sgdl_seed_group_keeps_initializations():
    cfg = {**SMOKE["sgdl"], "steps": 0}
    full = F.sgd_vs_sgdl(cfg)
    part = F.sgd_vs_sgdl(cfg, range(1, 2))
    assert part["first_seed"] == 1 and part["seeds"] == 1
    assert torch.equal(full["train_err"][:, 1:2], part["train_err"])  # step 0: same initial networks


def test_tables_pool_blocks(smoke_cells):
    w = F.wells_table(smoke_cells)
    assert w["occ"].shape == (2, 2, 3) and w["chains"] == SMOKE["wells"]["chains"]
    assert np.allclose(w["occ"].sum(-1), 1)
    e = F.wedge_table(smoke_cells)
    assert e["dims"] == SMOKE["wedge"]["dims"] and e["hist_d2"].sum() == SMOKE["wedge"]["chains"]
    f = F.fig10_table(smoke_cells)
    assert f["chains"] == SMOKE["fig10"]["chains"] and f["hist"].shape == (2, 48, 48)
    s = F.sgdl_table(smoke_cells)
    assert s["train_err"].shape[:2] == (2, SMOKE["sgdl"]["seeds"])
    n = F.noise_table(smoke_cells)
    assert n["hist"].shape == (len(SMOKE["noise"]["batches"]), 3, 60)
    with pytest.raises(ValueError, match="sgdl"):
        F.sgdl_table([cr for cr in smoke_cells if cr[0]["part"] != "sgdl"])
