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
