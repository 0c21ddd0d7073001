"""Tests for cnnbias.theory.taskcls: Theorem 4's terms vs brute force, Lemma 5, Prop. 6, sample complexity."""

import math

import pytest
import torch
from cnnbias.data import positions as P
from cnnbias.theory import convlinear as C
from cnnbias.theory import primitive as Pr
from cnnbias.theory import taskcls as T


@pytest.mark.parametrize("d,k,n", [(6, 2, 3), (7, 3, 2), (8, 1, 3), (9, 2, 4)])
def test_second_term_exact_vs_brute_force(d, k, n):
    assert T.thm4_second_term(d, k, n).item() == pytest.approx(
        T.brute_force_second_term(d, k, n), abs=1e-14
    )


def test_paper_formula_and_approximations():
    for d, k in [(100, 5), (30, 3), (9, 5)]:
        assert torch.equal(T.near_count(d, k), T.near_count_paper(d, k)) == (d >= 2 * k - 1)
    ns = [1, 10, 50, 200]
    ex = T.thm4_second_term(100, 5, ns)
    assert bool((ex <= T.second_term_upper(100, 5, ns) + 1e-15).all())
    assert bool(
        (T.err2(100, 5, ns) <= ex + 1e-15).all()
    )  # (d-2k+1)/d is the interior value, the smallest
    assert torch.allclose(
        T.thm4_second_term(100, 1, ns), T.one_layer_error(100, ns)
    )  # k = 1: 1-Layer


def test_lemma5_implies_primitive_and_m_train():
    g = torch.Generator().manual_seed(0)
    d, k = 20, 4
    pos = torch.randint(0, d, (3000, 6), generator=g)
    M = T.m_train_positions(pos, d, k)
    t = P.task_cls(d)
    assert torch.allclose(M[:5], C.m_train(t, pos[:5], k), atol=1e-15)  # same as the generic M_tr
    ev = T.lemma5_event(T.occupancy(pos, d), k)
    prim = Pr.is_primitive_batch(M.transpose(-1, -2) @ M)
    assert bool(ev.any()) and bool((~ev).any())
    assert not bool((ev & ~prim).any())  # Lemma 5: event => primitive
    # brute-force event check on a few
    for r in range(50):
        S = set((pos[r] + 1).tolist())
        assert bool(ev[r]) == any((i - 1 in S and i in S) for i in range(k, d + 1))
    e1, npr = T.err1_mc(d, k, [6], 2000, torch.Generator().manual_seed(1))
    assert npr.item() <= e1.item()


def test_sample_complexity_limit():
    eps = 0.01
    for k in (2, 3, 5):
        r = [
            T.n_one_layer_closed(d, eps) / T.n_conv_closed(d, k, eps)
            for d in (100, 10_000, 1_000_000)
        ]
        assert abs(r[-1] - (2 * k - 1)) < 1e-3 * (2 * k - 1)
        assert abs(r[0] - (2 * k - 1)) > abs(r[-1] - (2 * k - 1))
    n = T.n_for_error_exact(100, 5, eps)
    assert T.thm4_second_term(100, 5, n).item() <= eps < T.thm4_second_term(100, 5, n - 1).item()
    assert math.isclose(T.n_conv_closed(100, 1, eps), math.log(50) / math.log(100 / 99))


def test_sparse_sets_and_prop6_structure():
    d, k, n = 60, 3, 5
    gens = [torch.Generator().manual_seed(i) for i in range(200)]
    pos = T.sample_sparse_positions(d, k, n, gens)
    one = pos + 1
    assert (
        bool((one >= k).all())
        and bool((one.diff(dim=-1) >= 2 * k).all())
        and bool((one <= d).all())
    )
    M = T.m_train_positions(pos, d, k)
    MtM = M.transpose(-1, -2) @ M
    assert torch.allclose(MtM, torch.eye(k, dtype=torch.float64).expand_as(MtM) / n, atol=1e-15)
    # symmetry: flipping signs on S_s flips the lag-s sum, for every s
    w = torch.randn(100, k, generator=gens[0], dtype=torch.float64)
    for s in range(1, k):
        S = T.flip_set(k, s)
        flipped = torch.where(S, -w, w)
        assert torch.allclose(T.lag_sum(flipped, s), -T.lag_sum(w, s))
    with pytest.raises(ValueError, match="sparse"):
        T.sample_sparse_positions(20, 5, 3, gens[:1])


def test_primitive_sets_have_theorem4_error():
    """Proof of Theorem 4: if M^T M is primitive the Theorem-2 error is exactly 1/2 the fraction of far positions."""
    d, k = 30, 3
    g = torch.Generator().manual_seed(5)
    pos = torch.randint(0, d, (400, 8), generator=g)
    M = T.m_train_positions(pos, d, k)
    prim = Pr.is_primitive_batch(M.transpose(-1, -2) @ M, atol=1e-14)
    err, m = C.thm2_error(M, P.task_cls(d))
    ident = T.primitive_identity_error(pos, d, k)
    assert bool(prim.any())
    assert torch.allclose(err[prim], ident[prim], atol=1e-12)
    assert bool((m[prim] == 1).all())
    # far mask by brute force
    occ = T.occupancy(pos[:20], d)
    fm = T.far_mask(occ, k)
    for r in range(20):
        S = set(pos[r].tolist())
        assert fm[r].tolist() == [all(abs(s - l) >= k for s in S) for l in range(d)]


def test_err1_exact_matches_brute_force_and_monte_carlo():
    import itertools

    for d, k, n in [(6, 2, 3), (7, 3, 4), (8, 4, 3), (6, 1, 4), (9, 5, 4)]:
        hits = sum(
            not any((i - 1) in S and i in S for i in range(max(k, 2), d + 1))
            for S in (set(p) for p in itertools.product(range(1, d + 1), repeat=n)))
        assert T.err1_exact(d, k, n) == pytest.approx(hits / d**n, rel=1e-15)
    e1, _ = T.err1_mc(30, 3, [8], 40000, torch.Generator().manual_seed(1))
    exact = T.err1_exact(30, 3, 8)
    assert abs(float(e1[0]) - exact) < 4 * (exact * (1 - exact) / 40000) ** 0.5
    with pytest.raises(ValueError, match="n"):
        T.err1_exact(10, 2, 0)


def test_bound_crossing_n():
    n = T.bound_crossing_n(100, 5, 60)
    assert n is not None
    b = lambda m: T.err1_exact(100, 5, m) + float(T.err2(100, 5, m)[0])  # noqa: E731
    assert b(n) < float(T.one_layer_error(100, n)[0])
    assert b(n - 1) >= float(T.one_layer_error(100, n - 1)[0])
    assert T.bound_crossing_n(100, 5, 3) is None
    with pytest.raises(ValueError, match="n_max"):
        T.bound_crossing_n(100, 5, 0)
