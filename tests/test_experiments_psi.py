"""Tests for cnnbias.experiments.psi: the fast N_W path, training to zero loss, validation."""

import pytest
import torch
from cnnbias import config, stats
from cnnbias.data import patterns as pat
from cnnbias.experiments.psi import init_W, network_outputs, train_psi
from cnnbias.models.maxpool import forward_fixed
from cnnbias.theory import psi


def test_init_W():
    gens = config.generators("t", {}, 2)
    W = init_W(5, 7, 0.1, gens)
    assert W.shape == (2, 10, 7) and W.dtype == torch.float64
    W2 = init_W(5, 7, 0.1, config.generators("t", {}, 2))
    torch.testing.assert_close(W, W2)
    with pytest.raises(ValueError):
        init_W(0, 7, 0.1, gens)
    with pytest.raises(ValueError):
        init_W(5, 7, 0.0, gens)


def test_train_psi_learns_Du_and_batching_invariance():
    cfg = {"n": 6, "d": 14, "m": 120}
    gens = config.generators("test.psi_train", cfg, 3)
    idx, y = pat.stack_runs(pat.sample_Du, gens, m=620, n=6, d=14)
    W0 = init_W(30, 14, 1e-4, gens)
    seeds = [config.run_seed("test.psi_train", cfg, r) for r in range(3)]
    res = train_psi(W0, y[:, :120], idx=idx[:, :120], lr=0.01, batch_size=20, max_epochs=300,
                    shuffle_seeds=seeds)
    assert all(r == "loss_below" for r in res.stop_reason)
    assert torch.all(res.final_loss < 1e-5)
    err = stats.error_rate(network_outputs(res.params["W"], idx=idx[:, 120:]), y[:, 120:])
    assert torch.all(err == 0)
    s = psi.pattern_statistics(idx[:, :120], y[:, :120], 14)
    assert torch.all(torch.isfinite(psi.c_star(res.params["W"], s, 120)))
    # run 1 alone gives the same weights (per-run data, init and shuffling)
    one = train_psi(W0[1:2], y[1:2, :120], idx=idx[1:2, :120], lr=0.01, batch_size=20, max_epochs=300,
                    shuffle_seeds=seeds[1:2])
    torch.testing.assert_close(one.params["W"][0], res.params["W"][1], rtol=0, atol=1e-10)


def test_train_psi_validation():
    W0 = torch.zeros(1, 4, 5, dtype=torch.float64)
    y = torch.ones(1, 3, dtype=torch.float64)
    idx = torch.zeros(1, 3, 2, dtype=torch.int64)
    with pytest.raises(ValueError):
        train_psi(W0, y, lr=0.1, batch_size=3, max_epochs=1, shuffle_seeds=None)
    with pytest.raises(ValueError):
        train_psi(W0, y[:, :2], idx=idx, lr=0.1, batch_size=3, max_epochs=1, shuffle_seeds=None)


def test_sample_runs_per_run_p():
    from cnnbias.experiments.psi import sample_runs

    gens = config.generators("test.dp", {}, 2)
    idx, y = sample_runs("p", 400, 5, 12, gens, p=[0.0, 1.0])
    s = psi.pattern_statistics(idx, y, 12)
    # p = 0: pattern 2 (p3) only in negative points; p = 1: only in positive points
    assert float(s[0, 2]) < -0.4 and float(s[1, 2]) > 0.4
    with pytest.raises(ValueError):
        sample_runs("p", 10, 5, 12, gens, p=[0.5])
    with pytest.raises(ValueError):
        sample_runs("vc", 10, 5, 12, gens)


def test_run_cell_smoke():
    from cnnbias.experiments.psi import run_cell

    r = run_cell("test.cell", "u", 5, 12, 10, 60, 2, lr=0.01, batch_size=20, max_epochs=400, sigma_g=1e-4,
                 m_test=200, check_every=2)
    assert torch.all(r["converged"]) and torch.all(r["test_err"] == 0)
    assert r["ratio_pos"].shape == (2, 12) and torch.all(torch.isfinite(r["c_star"]))
    # Eq. 3: the smallest output on a positive test point is at least the lower bound
    assert torch.all(r["out_pos_min"] >= r["eq3_pos"] - 1e-12)
    assert torch.all(-r["out_neg_max"] >= r["eq3_neg"] - 1e-12)


def test_run_digits_smoke(monkeypatch):
    from cnnbias.data import colored_digits as cd
    from cnnbias.experiments.psi import run_digits

    monkeypatch.delenv("CNNBIAS_MNIST_DIR", raising=False)
    pools = cd.load_pools()
    r = run_digits("test.digits", pools, 6, 2, max_epochs=3, m_test=20, n_ref=10)
    assert r["W"].shape == (2, 40, 192) and r["test_acc"].shape == (2,)
    assert torch.all((r["test_acc"] >= 0) & (r["test_acc"] <= 1))
    assert torch.all(torch.isfinite(r["green_ratio"]))
    assert not torch.equal(r["W"], r["W0"])


def test_chunked_eval_matches(monkeypatch):
    import cnnbias.experiments.psi as pt

    cfg = {"n": 5, "d": 12}
    gens = config.generators("test.chunk", cfg, 2)
    idx, y = pat.stack_runs(pat.sample_Du, gens, m=90, n=5, d=12)
    W0 = init_W(8, 12, 1e-3, gens)
    seeds = [1, 2]
    a = train_psi(W0, y, idx=idx, lr=0.05, batch_size=30, max_epochs=40, shuffle_seeds=seeds)
    monkeypatch.setattr(pt, "ELEMENT_BUDGET", 2 * 16 * 5 * 7)  # 7 points per chunk
    assert pt.points_per_chunk(2, 16, 5) == 7
    b = pt.train_psi(W0, y, idx=idx, lr=0.05, batch_size=30, max_epochs=40, shuffle_seeds=seeds)
    torch.testing.assert_close(a.final_loss, b.final_loss, rtol=1e-12, atol=1e-14)
    assert torch.equal(a.epochs, b.epochs)
    out = network_outputs(a.params["W"], idx=idx, chunk=13)
    torch.testing.assert_close(out, forward_fixed(a.params["W"], idx=idx), rtol=0, atol=1e-13)


def test_rank_trend_test_and_power():
    from cnnbias.experiments.psi import rank_trend_power, rank_trend_test

    x = torch.arange(30, dtype=torch.float64)
    rho, p = rank_trend_test(x, x, 0.3)
    assert rho == pytest.approx(1.0) and p < 1e-6
    rho, p = rank_trend_test(x, -x, 0.3)
    assert rho == pytest.approx(-1.0) and p > 0.999
    assert rank_trend_test(x, torch.ones(30), 0.3)[0] == 0.0
    # at rho = rho0 the power is the level; it grows with rho and N
    assert rank_trend_power(30, 0.3, 0.3, 0.05) == pytest.approx(0.05)
    assert rank_trend_power(30, 0.8) > rank_trend_power(30, 0.6) > 0.05
    assert rank_trend_power(60, 0.6) > rank_trend_power(30, 0.6)
    # the size of the test: under independence (rho = 0 <= 0.3) it rejects rarely
    g = torch.Generator().manual_seed(0)
    rej = sum(rank_trend_test(torch.randn(30, generator=g), torch.randn(30, generator=g), 0.3)[1] < 0.05
              for _ in range(200))
    assert rej <= 5
    with pytest.raises(ValueError):
        rank_trend_test(x[:3], x[:3])
    with pytest.raises(ValueError):
        rank_trend_test(x, x, 1.0)
    with pytest.raises(ValueError):
        rank_trend_power(30, 0.5, alpha=0.0)


def test_binomial_excess_pvalue():
    from cnnbias.experiments.psi import binomial_excess_pvalue
    from scipy.stats import binom

    assert binomial_excess_pvalue(0, 100, 0.01) == 1.0
    assert binomial_excess_pvalue(3, 100, 0.01) == pytest.approx(1 - binom.cdf(2, 100, 0.01))
    assert binomial_excess_pvalue(100, 100, 1.0) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        binomial_excess_pvalue(5, 4, 0.1)
    with pytest.raises(ValueError):
        binomial_excess_pvalue(1, 4, 1.5)


def test_run_digits_color_split(monkeypatch):
    from cnnbias.data import colored_digits as cd
    from cnnbias.experiments.psi import run_digits

    monkeypatch.delenv("CNNBIAS_MNIST_DIR", raising=False)
    pools = cd.load_pools()
    r = run_digits("test.digits_split", pools, 20, 2, k=1, max_epochs=2, m_test=20, n_ref=10)
    pur, dom = r["purity"], r["dominant_color"]
    assert pur.shape == (2, 2) and dom.shape == (2, 2)
    moved = dom >= 0
    assert torch.all((pur[moved] >= 1 / 3 - 1e-12) & (pur[moved] <= 1 + 1e-12))
    assert torch.all(torch.isnan(pur[~moved]))
    # a w filter only gains mass from positive points (blue or green digits), a u filter from negative
    # points (red or green): its learned positive mass has no red (resp. blue) part
    assert not bool((dom[:, 0] == cd.RED).any()) and not bool((dom[:, 1] == cd.BLUE).any())
    assert torch.all(torch.isfinite(r["green_ratio_init"]))
