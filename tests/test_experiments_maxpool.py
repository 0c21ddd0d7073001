"""Tests of cnnbias.experiments.maxpool: Algorithm 1's phase separation, Lemma 5.2, the proof quantities."""

import math

import torch
from cnnbias import config
from cnnbias.data import patterns as P
from cnnbias.experiments import maxpool as lw


def test_sphere_init_and_lucky_probability():
    gens = config.generators("test_lw_init", {}, 40)
    W, a = lw.sphere_init(500, 4, 0.3, gens)
    assert torch.allclose(W.norm(dim=-1), torch.full((40, 500), 0.3, dtype=torch.float64))
    assert set(a.unique().tolist()) == {-1.0, 1.0}
    lp, lm = lw.lucky_masks(W, a)
    assert not bool((lp & lm).any())
    p = lw.lucky_probability(4)
    assert abs(p - (1 - 2**-3) / 6) < 1e-15
    N = lp.numel()
    for mask in (lp, lm):
        frac = float(mask.double().mean())
        assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / N)


def test_phase_separation_and_lemmas():
    d, T1 = 4, 5
    hp = lw.default_hparams(d, T1, eta2_fraction=0.9)
    assert all(lw.theorem_conditions(hp["k"], d, T1, hp["eta1"], hp["eta2"], hp["r"]).values())
    idx, y = P.stack_runs(P.sample_D, config.generators("test_lw_data", {}, 2), m=40, n=3, l=d)

    def gens():
        return config.generators("test_lw", {}, 2)

    res = lw.lw_cnn(idx, y, k=hp["k"], d=d, T1=T1, T2=50, eta1=hp["eta1"], eta2=hp["eta2"], r=hp["r"],
                    gens=gens(), sizes=[40, 30])
    # phase 1 trains W only, phase 2 trains a only
    assert not torch.equal(res.W, res.W0)
    assert torch.equal(res.W_history[-1], res.W)
    assert not torch.equal(res.a, res.a0)
    # phase 1 sees only S1, phase 2 only S2 (sizes respected)
    assert res.mask1[1].sum() == 15 and res.mask2[1].sum() == 15 and res.mask2[0].sum() == 20
    # the second phase does not move W: rerunning phase 1 alone gives the same W^(T1)
    res_b = lw.lw_cnn(idx, y, k=hp["k"], d=d, T1=T1, T2=5, eta1=hp["eta1"], eta2=hp["eta2"], r=hp["r"],
                      gens=gens(), sizes=[40, 30], record_W=False)
    assert torch.equal(res_b.W, res.W)
    # changing S2's labels does not change W^(T1)
    y2 = y.clone()
    y2[:, 25:] *= -1
    res_c = lw.lw_cnn(idx, y2, k=hp["k"], d=d, T1=T1, T2=5, eta1=hp["eta1"], eta2=hp["eta2"], r=hp["r"],
                      gens=gens(), sizes=[40, 30], record_W=False)
    assert torch.equal(res_c.W[0], res.W[0])
    chk = lw.dynamics_checks(res)
    ok = lw.eq14_holds(y, res.mask1)
    for r in range(2):
        if ok[r]:
            assert chk["lemma53_growth"][r] >= 0 and chk["lemma53_others"][r] >= 0
        assert chk["lemma55"][r] >= 0
    # loss of phase 2 decreases
    L = res.loss2_history[:, 0]
    assert bool((L[1:] <= L[:-1] + 1e-15).all())


def test_exact_error_matches_monte_carlo():
    """exact_error = the error on a large sample of D (random networks, ties impossible)."""
    from cnnbias.models import maxpool
    from cnnbias.stats import error_rate

    g = torch.Generator().manual_seed(1)
    R, k, d, n = 3, 7, 5, 4
    W = torch.randn(R, k, d, generator=g, dtype=torch.float64)
    a = torch.randn(R, k, generator=g, dtype=torch.float64)
    exact = lw.exact_error(W, a, n, d)
    idx, y = P.sample_D(40000, n, d, g)
    mc = error_rate(maxpool.forward(W, a, idx=idx.expand(R, *idx.shape)), y)
    assert bool(((exact - mc).abs() <= 5 * (0.25 / 40000) ** 0.5).all())
    assert bool(((exact > 0.05) & (exact < 0.95)).any())  # a non-trivial check


def test_max_margin_readout_is_the_hard_margin_svm():
    """Same ||v||^2 as the QP of theory.min_norm; margins >= 1 with equality on the support vectors;
    a non-separable set is reported as such."""
    from cnnbias.theory import min_norm as mn

    g = torch.Generator().manual_seed(2)
    Z = torch.rand(2, 12, 6, generator=g, dtype=torch.float64)
    y = torch.where(torch.rand(2, 12, generator=g) < 0.5, 1.0, -1.0).to(torch.float64)
    Z[0] += 2 * y[0, :, None] * torch.tensor([1.0, -1, 0, 0, 0, 0], dtype=torch.float64)  # separable
    Z[1, 1], y[1, 0], y[1, 1] = Z[1, 0], 1.0, -1.0  # a point with both labels: not separable
    mask = torch.ones(2, 12, dtype=torch.float64)
    mask[0, 10:] = 0
    v, sep = lw.max_margin_readout(Z, y, mask)
    assert sep.tolist() == [True, False]
    marg = y[0, :10] * (Z[0, :10] @ v[0])
    assert float(marg.min()) > 1 - 1e-6 and abs(float(marg.min()) - 1) < 1e-6
    ref, _, _ = mn.min_norm_squared(Z[0, :10], y[0, :10])
    assert abs(float(v[0] @ v[0]) - ref) < 1e-4 * ref


def test_sample_complexity_nested_runs():
    out = lw.sample_complexity("test_sc", {}, d=3, n=3, sizes=[4, 8, 16], reps=3, T1=3, eps=0.05)
    assert out["err"].shape == (3, 3) and out["m_star"].shape == (3,)
    for r in range(3):
        ok = out["err"][r] <= 0.05
        ms = out["m_star"][r]
        if math.isfinite(ms):
            s = [4, 8, 16].index(int(ms))
            assert ok[s:].all() and (s == 0 or not ok[s - 1])
        else:
            assert not ok[-1]
    import pytest

    with pytest.raises(ValueError, match="eps"):
        lw.sample_complexity("test_sc", {}, d=3, n=3, sizes=[4, 8], reps=1, T1=3, eps=0.7)
    with pytest.raises(ValueError, match="sizes"):
        lw.sample_complexity("test_sc", {}, d=3, n=3, sizes=[8, 4], reps=1, T1=3, eps=0.05)


def test_dvc_sweep_cell_and_claims():
    """The sweep cell maxpool.vc_dvc computes the chapter's per-run values; its claims come out of them."""
    from cnnbias.claims import Claims

    cfg = lw.VC_CONFIGS["smoke"]
    r = lw.vc_dvc_cell(cfg, torch.device("cpu"), torch.float64)
    R = cfg["reps"]
    for key in ("sgd_train", "sgd_test", "sh_train", "sh_test", "cstar", "eq9_worst", "epochs"):
        assert len(r[key]) == R
    assert r == lw.dvc_sgd_vs_shattering(cfg)  # deterministic: the same seeds
    claims = Claims("maxpool")
    lw.dvc_claims(r, claims)
    assert [c.id for c in claims] == ["maxpool.dvc_sgd_generalizes", "maxpool.dvc_sgd_cstar"]
    assert claims.as_records()[1]["values"]["max_cstar"] >= 0


def test_sample_complexity_chunks_change_nothing():
    kw = dict(d=3, n=3, sizes=[4, 8], reps=3, T1=3, eps=0.05)
    a = lw.sample_complexity("test_sc_chunk", {}, **kw)
    b = lw.sample_complexity("test_sc_chunk", {}, chunk_numbers=1.0, **kw)  # one repetition per chunk
    assert (a["err"] == b["err"]).all() and (a["m_star"] == b["m_star"]).all()


def test_sc_cells_families_and_claims():
    """The sweep cells of maxpool.lw_sc cover both families once; the slope of exact data is recovered."""
    from cnnbias.claims import Claims

    cells = lw.sc_cells("book")
    pairs = [(c["d"], c["n"]) for c in cells]
    assert len(pairs) == len(set(pairs)) and (4, 3) in pairs
    s = lw.SC_SCALES["book"]
    assert {d for d, n in pairs if n == s["n0"]} == set(s["ds"])
    assert {n for d, n in pairs if d == s["d_n"]} == set(s["ns"])
    # synthetic results: m* = 2 d exactly in the d-family (slope 1), m* = 8 in the n-family (slope 0)
    fake = [(c, {"m_star": [2.0 * c["d"] if c["n"] == c["n0"] and c["d"] != c["d_n"] else 8.0] * 5})
            for c in cells]
    b_n, se_n, _ = lw.sc_slope(fake, "n")
    assert abs(b_n) < 1e-12 and se_n < 1e-12
    claims = Claims("maxpool")
    lw.sc_claims(fake, claims)
    assert [c.status for c in claims] == ["FAIL", "PASS"]  # slope 1 is not < 1; slope 0 is independent of n
