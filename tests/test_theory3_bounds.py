"""Tests of cnnbias.theory.theory3.bounds (Eq. 17, Lemma 2, Lemma 5 of Theory III)."""

import math

import pytest
import torch
from cnnbias.theory.theory3 import bounds as B


def test_eq17_inverse_pair():
    for W, k, n in ((100, 32, 1000), (5000, 1, 300)):
        eps = B.eq17_epsilon(n, 0.05, W, k)
        assert math.isclose(B.eq17_sample_bound(eps, 0.05, W, k), n, rel_tol=1e-12)


def test_eq17_vacuous_when_W_ge_n():
    for n in (10, 200, 50000):
        assert B.eq17_epsilon(n, 0.05, n, 1) > 1
        W = B.eq17_vacuous_width(n, 0.05, 32)
        assert B.eq17_epsilon(n, 0.05, W, 32) >= 1 > (B.eq17_epsilon(n, 0.05, W - 1, 32) if W > 1 else 0)


def test_eq17_validation():
    with pytest.raises(ValueError, match="delta"):
        B.eq17_epsilon(10, 1.5, 10, 1)
    with pytest.raises(ValueError, match="eps"):
        B.eq17_sample_bound(float("nan"), 0.1, 10, 1)


def test_interval_covering_and_cube_cover_d1():
    assert B.interval_covering_number(1.0, 0.25) == 4
    assert B.interval_covering_number(1.0, 0.3) == 4
    assert B.cube_cover_size(1, 1.0, 0.25) == 4  # exact in d = 1


def test_cube_cover_is_a_cover():
    # every sample point of the ball is within eps of some cell centre
    d, r, eps = 2, 1.0, 0.3
    h = 2 * eps / math.sqrt(d)
    g = torch.Generator().manual_seed(0)
    p = torch.rand(5000, d, generator=g, dtype=torch.float64) * 2 - 1
    p = p[torch.linalg.vector_norm(p, dim=-1) <= r]
    centres = (torch.floor(p / h) + 0.5) * h
    assert float(torch.linalg.vector_norm(p - centres, dim=-1).max()) <= eps + 1e-12
    cells = {tuple(c) for c in torch.floor(p / h).long().tolist()}
    assert len(cells) <= B.cube_cover_size(d, r, eps) <= B.lemma2_bound(d, r, eps)


def test_greedy_packing_separated_and_covering():
    g = torch.Generator().manual_seed(1)
    p = torch.randn(800, 2, generator=g, dtype=torch.float64)
    kept = B.greedy_packing(p, 0.5)
    q = p[kept]
    dist = torch.cdist(q, q) + torch.eye(len(q), dtype=torch.float64) * 10
    assert float(dist.min()) > 0.5
    assert float(torch.cdist(p, q).min(1).values.max()) <= 0.5


def test_lemma2_bounds_order_and_validation():
    assert B.volume_lower_bound(3, 1.0, 0.25) <= B.packing_bound(3, 1.0, 0.25) <= B.lemma2_bound(3, 1.0, 0.25)
    with pytest.raises(ValueError, match="eps"):
        B.lemma2_bound(2, 1.0, 1.5)


def test_rademacher_layer1_exact_small_cases():
    # d = 1, n = 1: E|eps x| = |x|
    assert B.rademacher_layer1_exact(torch.tensor([[0.5]], dtype=torch.float64), 2.0) == pytest.approx(1.0)
    # d = 1, n = 2, x = (1, 1): E |eps1 + eps2| / 2 = 1/2
    assert B.rademacher_layer1_exact(torch.ones(2, 1, dtype=torch.float64), 1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="\\[-1, 1\\]"):
        B.rademacher_layer1_exact(torch.full((2, 1), 2.0, dtype=torch.float64), 1.0)


def test_layer1_worst_case_is_max_over_vertices():
    # brute force over all X in {+-1}^{n x d} for n = 4, d = 2
    import itertools
    best = 0.0
    for bits in itertools.product((-1.0, 1.0), repeat=8):
        X = torch.tensor(bits, dtype=torch.float64).reshape(4, 2)
        best = max(best, B.rademacher_layer1_exact(X, 1.0))
    assert B.rademacher_layer1_worst(4, 2) == pytest.approx(best, rel=1e-12)


def test_massart_always_holds_paper_fails_at_d1():
    rows = B.lemma5_worst_case(dims=(1, 2), ns=range(1, 7))
    assert all(r["R1"] <= r["massart"] for r in rows)
    assert all(r["R1"] > r["paper"] for r in rows if r["d"] == 1)


def test_layer2_relu_recursion_and_sup():
    g = torch.Generator().manual_seed(2)
    X = torch.rand(6, 2, generator=g, dtype=torch.float64) * 2 - 1
    r2 = B.rademacher_layer2_relu_exact(X, 1.0, 1.0)
    assert r2 <= 2 * B.rademacher_layer1_exact(X, 1.0) + 1e-12
    # the enumerated sup is at least the value on a fine grid of the l1 sphere
    th = torch.linspace(0, 2 * math.pi, 20001, dtype=torch.float64)[:-1]
    W = torch.stack([th.cos(), th.sin()], -1)
    W = W / W.abs().sum(-1, keepdim=True)
    act = torch.relu(X @ W.T)
    E = B.sign_vectors(6)
    grid = float((E @ act / 6).abs().amax(-1).mean())
    assert grid <= r2 + 1e-12
    assert r2 - grid < 1e-2


def test_lemma5_bound_value():
    assert B.lemma5_bound([1.0, 2.0], 4, 100) == pytest.approx(math.sqrt(2 * math.log(4)) * 2 * 4 / 10)
    with pytest.raises(ValueError):
        B.lemma5_bound([], 4, 100)
