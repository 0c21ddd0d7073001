"""Tests of cnnbias.theory.vc: the shattered set, the linear system, the shattering network."""

import itertools

import pytest
import torch
from cnnbias.data import patterns as P
from cnnbias.models import maxpool
from cnnbias.theory import vc


def test_linear_system_closed_form_matches_solve():
    for N in (2, 4, 8):
        y = vc.all_labelings(N)
        a1, a2 = vc.solve_alpha(y), vc.solve_alpha(y, method="solve")
        assert torch.allclose(a1, a2, atol=1e-12)
        A = vc.system_matrix(N)
        assert torch.allclose(a1 @ A.T, y.flip(-1), atol=1e-12)  # row I: sum_{I' != I} alpha = y_{I^c}


@pytest.mark.parametrize("n", [2, 3])
def test_every_labeling_realized_naively(n):
    """The proof's network realizes every labeling, checked with a per-example loop over (I, channel, patch)."""
    B = vc.shattered_set(n)
    N, d = B.shape[0], 2 * n
    assert N == 2 ** (n - 1)
    # B is in the support of D_vc and all points are distinct
    assert len({tuple(sorted(r.tolist())) for r in B}) == N
    for labels in itertools.product([-1.0, 1.0], repeat=N):
        y = torch.tensor(labels, dtype=torch.float64)
        W = vc.shattering_network(y.unsqueeze(0), n)[0]
        for i in range(N):
            out = 0.0
            for c in range(2 * N):
                resp = max(max(float(W[c] @ P.one_hot_patterns(d)[p]), 0.0) for p in B[i].tolist())
                out += resp if c < N else -resp
            assert abs(out - labels[i]) < 1e-9


def test_verify_shattering_n4_and_core_forward():
    r = vc.verify_shattering(4, forward=lambda W, idx: maxpool.forward_fixed(W, idx=idx))
    assert r["realized"] == r["labelings"] == 256 and r["max_abs_err"] < 1e-9
    r3 = vc.verify_shattering(3)
    assert r3["realized"] == 16


def test_shattering_nets_violate_psi():
    y = vc.all_labelings(4)
    W = vc.shattering_network(y, 3)
    q = vc.psi_quantities(W, P.one_hot_patterns(6))
    assert torch.all(q["Mw_plus_1"] == 0) and torch.all(q["Mu_minus_2"] == 0)
    # a network with a detector of p1 has M_w^+(1) > 0
    W2 = torch.zeros(1, 2, 6, dtype=torch.float64)
    W2[0, 0, 0] = 1.0
    W2[0, 1, 1] = 2.0
    q2 = vc.psi_quantities(W2, P.one_hot_patterns(6))
    assert float(q2["Mw_plus_1"]) == 1.0 and float(q2["Mu_minus_2"]) == 2.0


def test_dvc_support_and_fit_by_shattering():
    g = torch.Generator().manual_seed(1)
    n = 4
    idx, y = P.sample_Dvc(200, n, g)
    I = vc.config_index(idx, n)
    B = vc.shattered_set(n)
    # the spurious patterns of each sample are those of x_I
    for t in range(20):
        assert set(idx[t].tolist()) - {0, 1} == set(B[I[t], : n - 1].tolist())
    Wfit, _labels = vc.fit_by_shattering(idx[:5], y[:5], n)
    out = maxpool.forward_fixed(Wfit.unsqueeze(0), idx=idx[:5].unsqueeze(0))[0]
    assert torch.all(torch.sign(out) == y[:5])
    assert vc.vc_lower_bound(n) <= vc.vc_upper_bound(n, 2 * n)
    with pytest.raises(ValueError):
        vc.shattered_set(1)
    with pytest.raises(ValueError):
        vc.config_index(torch.tensor([[0, 2, 3, 4]]), 4)
