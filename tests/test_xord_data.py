"""Tests for cnnbias.data.xord: pattern sets, f*, diverse points, D+/D- sampling, OBD."""

import pytest
import torch
from cnnbias.data import xord as X


def test_patterns_and_dense_roundtrip():
    P = X.patterns()
    assert P.shape == (4, 2)
    assert torch.equal(P[2], -P[0]) and torch.equal(P[3], -P[1])
    idx = X.all_inputs(3)
    assert idx.shape == (64, 3) and len({tuple(r) for r in idx.tolist()}) == 64
    assert torch.equal(X.from_dense(X.to_dense(idx)), idx)
    assert torch.equal(X.from_dense(X.to_dense(idx).reshape(64, 6)), idx)
    with pytest.raises(ValueError, match="x must"):
        X.from_dense(torch.zeros(2, 3, 2))


def test_fstar_and_subsets():
    idx = X.all_inputs(4)
    y = X.fstar(idx)
    # negative points are exactly those made of x2, x4 only: 2^d of them
    assert int((y < 0).sum()) == 2**4
    assert X.SUBSETS.shape == (15, 4)
    assert int(X.uniform_subset_counts(4).sum()) == 4**4
    # label of a point = label of its pattern set
    s = X.pattern_set(idx)
    which = (s[:, None] == X.SUBSETS[None]).all(-1).long().argmax(-1)
    assert torch.equal(X.SUBSET_LABELS[which], y)


def test_diverse_definition():
    xp = torch.tensor([0, 1, 2, 3, 0])
    assert bool(X.is_diverse(xp, 1.0))
    assert not bool(X.is_diverse(torch.tensor([0, 1, 2, 2, 0]), 1.0))
    assert bool(X.is_diverse(torch.tensor([1, 3, 1, 1]), -1.0))
    assert not bool(X.is_diverse(torch.tensor([1, 1, 1, 1]), -1.0))
    a, b = X.diverse_pair(6)
    assert bool(X.is_diverse(a)) and bool(X.is_diverse(b)) and X.fstar(a) == 1 and X.fstar(b) == -1


def test_subset_distribution_matches_enumeration_uniform():
    d = 5
    idx = X.all_inputs(d)
    y = X.fstar(idx)
    s = X.pattern_set(idx)
    which = (s[:, None] == X.SUBSETS[None]).all(-1).long().argmax(-1)
    for lab in (1, -1):
        emp = torch.bincount(which[y == lab], minlength=15).double()
        assert torch.allclose(emp / emp.sum(), X.subset_distribution(d, lab), atol=1e-12)


@pytest.mark.parametrize("p_plus,p_minus", [(0.5, 0.9), (None, None)])
def test_sampling_monte_carlo(p_plus, p_minus):
    g = torch.Generator().manual_seed(1)
    d, m = 4, 4000
    idx, y = X.sample_xord(m, m, d, g, p_plus, p_minus)
    assert torch.equal(X.fstar(idx), y)
    div = X.is_diverse(idx, y).double()
    qp = X.subset_distribution(d, 1, p_plus)[X.SUBSETS.all(-1)].item()
    dp, dm = div[:m].mean().item(), div[m:].mean().item()
    se = 0.5 / m**0.5
    assert abs(dp - qp) < 4 * se
    want_m = p_minus if p_minus is not None else 1 - 2 / 2**d
    assert abs(dm - want_m) < 4 * se
    # negatives never contain positive patterns
    assert not bool(X.pattern_set(idx[m:])[:, [0, 2]].any())


def test_sampling_is_reproducible_and_validates():
    a = X.sample_xord(3, 3, 4, torch.Generator().manual_seed(7), 0.5, 0.9)
    b = X.sample_xord(3, 3, 4, torch.Generator().manual_seed(7), 0.5, 0.9)
    assert torch.equal(a[0], b[0])
    with pytest.raises(ValueError, match="label"):
        X.sample_class(2, 4, 0, torch.Generator())
    with pytest.raises(ValueError, match="p must"):
        X.sample_class(2, 4, 1, torch.Generator(), 1.5)
    with pytest.raises(ValueError, match="d must"):
        X.sample_class(2, 1, 1, torch.Generator())


def test_obd_sampling():
    d1 = 30
    P = X.obd_patterns(d1)
    assert P.shape == (60, 30)
    assert torch.allclose(P @ P.T, torch.block_diag(*[torch.tensor([[1.0, -1.0], [-1.0, 1.0]])] * 30).double())
    g = torch.Generator().manual_seed(0)
    pos = X.sample_obd(200, 1, d1, g)
    neg = X.sample_obd(200, -1, d1, g)
    assert torch.equal(X.obd_label(pos, d1), torch.ones(200, dtype=torch.float64))
    assert torch.equal(X.obd_label(neg, d1), -torch.ones(200, dtype=torch.float64))
    sizes_pos = [int((row.unique() < d1).sum()) for row in pos]
    sizes_neg = [int((row.unique() >= d1).sum()) for row in neg]
    assert set(sizes_pos) <= {4, 6, 8, 10} and set(sizes_neg) <= {4, 6, 8, 10}
    assert len(set(sizes_neg)) == 4
    with pytest.raises(ValueError, match="d1"):
        X.obd_patterns(3)
