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
