"""Tests of cnnbias.theory.min_norm (Proposition 6.1)."""

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
