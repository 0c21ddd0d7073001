"""Tests of cnnbias.theory.xord_lemmas (k = 1 certificate, Lemmas A.1/A.2, S_t^+, gd_sets, Thm 5.3 part 2)."""

import math

import pytest
import torch
from cnnbias.data import xord as X
from cnnbias.engine import StopRule, train
from cnnbias.experiments import xord as XE
from cnnbias.theory import xord as T
from cnnbias.theory import xord_lemmas as L


def _gens(n, seed=0):
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def test_set_index_and_distribution():
    assert X.SUBSETS[L.set_index((0, 1, 2, 3))].all()
    qp, qm = L.thm53_class_distributions(0.92, 0.8)
    assert abs(float(qp.sum()) - 1) < 1e-12 and abs(float(qm.sum()) - 1) < 1e-12
    assert float(qp[L.set_index((0, 1, 3))]) == pytest.approx(0.04)
    assert float(qm[L.set_index((1,))]) == pytest.approx(0.1)
    assert (X.SUBSET_LABELS[qp > 0] > 0).all() and (X.SUBSET_LABELS[qm > 0] < 0).all()
    with pytest.raises(ValueError):
        L.set_index((4,))


def test_error_under_k2_network_and_ties():
    q = 0.5 * sum(L.thm53_class_distributions(0.9, 0.9))
    assert float(L.error_under(T.k2_network(), q)[0]) == 0.0
    W0 = torch.zeros(1, 4, 2, dtype=torch.float64)  # N = 0 everywhere: a tie on every point
    assert float(L.error_under(W0, q)[0]) == pytest.approx(0.5)
    assert float(L.error_under(W0, q, ties="error")[0]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        L.error_under(W0, q, ties="x")
    with pytest.raises(ValueError):
        L.error_under(W0, torch.ones(15, dtype=torch.float64))


def test_k1_cannot_realize():
    g = torch.Generator().manual_seed(1)
    W = torch.randn(5000, 2, 2, generator=g, dtype=torch.float64)
    assert int(L.k1_errors(W).min()) >= 1
    assert not bool(L.k1_certificate(W).any())
    with pytest.raises(ValueError):
        L.k1_errors(torch.zeros(1, 4, 2, dtype=torch.float64))


def test_lemma_a1_exact_tail_and_sizes():
    assert L.lemma_a1_exact_tail(120) < 2 * math.exp(-8)
    assert L.lemma_a1_exact_tail(1) == 0.0
    W = torch.randn(200, 240, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    s = L.lemma_a1_sizes(W).double()
    assert abs(float(s.mean()) - 60) < 2  # each filter in the union with probability 1/2
    assert L.lemma_a1_violations(W).dtype == torch.bool


def test_lemma_a2_ratio():
    W = torch.full((1, 2, 2), 0.1, dtype=torch.float64)
    # |w.x1| = 0.2, eta/4 = 0.1 -> ratio 2
    assert float(L.lemma_a2_ratio(W, 0.4)[0]) == pytest.approx(2.0)
    assert L.lemma_a2_bound(2) < 1e-6


def test_track_S_plus_increment_is_two_eta():
    k, ce, gam = 120, 1 / 410, 8.0
    W0 = torch.stack([T.sigma_g_max(ce, k) * torch.randn(2 * k, 2, generator=g, dtype=torch.float64)
                      for g in _gens(2)])
    out = L.track_S_plus(W0, ce / k, gam, 200)
    assert float(out["min_dS"].min()) >= -1e-9
    assert float(out["ratio_min"].min()) == pytest.approx(2.0, rel=1e-6)
    assert float(out["ratio_max"].max()) == pytest.approx(2.0, rel=1e-6)


def test_gd_sets_equals_autograd():
    R, k = 4, 3
    W0 = torch.stack([0.01 * torch.randn(2 * k, 2, generator=g, dtype=torch.float64) for g in _gens(R, 5)])
    masks = X.SUBSETS[torch.tensor([[14, 0, 1], [14, 5, 2], [13, 0, 3], [12, 1, 3]])]
    ys = X.SUBSET_LABELS[torch.tensor([[14, 0, 1], [14, 5, 2], [13, 0, 3], [12, 1, 3]])]
    counts = torch.tensor([[1.0, 2, 1], [1, 1, 0], [2, 1, 1], [1, 1, 1]], dtype=torch.float64)
    r = L.gd_sets(W0, masks, ys, counts, 0.02, 1.0, 40)

    def loss_fn(p, b):
        return XE.eq3_loss_sets(XE.network_on_run_sets(p["W"], b.take(masks)), b.take(ys), b.take(counts), 1.0)

    res = train(loss_fn, {"W": W0}, trainable=("W",), optimizer="gd", lr=0.02, stop=StopRule(max_epochs=40))
    # runs stopped by gd_sets at zero loss have zero gradient, so the iterates agree
    assert float((res.params["W"] - r["W"]).abs().max()) < 1e-12


def test_gd_sets_validates():
    W0 = torch.zeros(1, 2, 2, dtype=torch.float64)
    with pytest.raises(ValueError):
        L.gd_sets(W0, torch.ones(2, 1, 4, dtype=torch.bool), torch.ones(2, 1), torch.ones(2, 1), 0.1, 1.0, 5)
    with pytest.raises(ValueError):
        L.gd_sets(W0, torch.ones(1, 1, 4, dtype=torch.bool), torch.ones(1, 1), torch.ones(1, 1), -0.1, 1.0, 5)
