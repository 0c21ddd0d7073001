"""Tests of cnnbias.theory.min_norm (Proposition 6.1)."""

import math

import pytest
import torch
from cnnbias.data import patterns as P
from cnnbias.theory import min_norm as mn


def test_support_size_and_labels():
    idx, y = mn.support_D(3, 5)
    assert idx.shape == (2 * 3 * 9, 3)
    has0 = (idx == 0).any(1)
    assert torch.equal(has0, y > 0) and torch.equal((idx == 1).any(1), y < 0)
    assert len({tuple(r) for r in idx.tolist()}) == idx.shape[0]


@pytest.mark.parametrize("n,l", [(2, 3), (3, 4), (4, 4)])
def test_min_norm_is_2n_and_at_least_n(n, l):
    g = torch.Generator().manual_seed(n * 10 + l)
    idx, y = mn.support_D(n, l)
    X = P.embed(idx, P.orthogonal_patterns(l, l + 2, g)).reshape(len(y), -1)
    v, _w, margin = mn.min_norm_squared(X, y)
    assert margin >= 1 - 1e-6
    assert v >= n
    assert abs(v - mn.closed_form_min_norm_squared(n)) < 1e-5


@pytest.mark.parametrize("n,l", [(2, 3), (3, 5), (4, 6), (6, 4)])
def test_support_D_sets_matches_sampling(n, l):
    """The set probabilities sum to 1 and match the frequencies of the spurious sets of D samples."""
    idx, y, prob = mn.support_D_sets(n, l)
    assert abs(float(prob.sum()) - 1) < 1e-12
    assert bool((prob > 0).all())
    assert torch.equal(idx[:, 0] == 0, y > 0) and torch.equal(idx[:, 0] == 1, y < 0)
    key = {(int(yy), frozenset(r[1:].tolist())): float(p) for r, yy, p in zip(idx, y, prob)}
    assert len(key) == len(y)  # one representative per (label, set)
    g = torch.Generator().manual_seed(0)
    m = 20000
    X, Y = P.sample_D(m, n, l, g)
    counts = {}
    for r, yy in zip(X, Y):
        k = (int(yy), frozenset(v for v in r.tolist() if v >= 2))
        counts[k] = counts.get(k, 0) + 1
    assert set(counts) <= set(key)
    for k, p in key.items():
        f = counts.get(k, 0) / m
        assert abs(f - p) <= 5 * math.sqrt(p * (1 - p) / m) + 1e-12


def test_support_D_sets_validates():
    with pytest.raises(ValueError, match="n >= 2"):
        mn.support_D_sets(1, 4)
    with pytest.raises(ValueError, match="l"):
        mn.support_D_sets(3, 40)
