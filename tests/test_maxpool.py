"""Tests for cnnbias.models.maxpool against a naive per-example implementation."""

import pytest
import torch
from cnnbias.models import maxpool


def naive(W, a, X):
    """sum_c a_c max_j relu(w_c . x[j]) with Python loops, one run, one example."""
    out = 0.0
    for c in range(W.shape[0]):
        out += float(a[c]) * max(max(float(W[c] @ X[j]), 0.0) for j in range(X.shape[0]))
    return out


def test_dense_and_gather_match_naive():
    g = torch.Generator().manual_seed(0)
    R, C, d, m, n = 3, 6, 7, 5, 4
    W = torch.randn(R, C, d, generator=g, dtype=torch.float64)
    a = torch.randn(R, C, generator=g, dtype=torch.float64)
    idx = torch.randint(0, d, (R, m, n), generator=g)
    X = torch.eye(d, dtype=torch.float64)[idx]
    f_idx = maxpool.forward(W, a, idx=idx)
    f_X = maxpool.forward(W, a, X=X)
    assert torch.allclose(f_idx, f_X, atol=1e-12)
    for r in range(R):
        for i in range(m):
            assert f_X[r, i].item() == pytest.approx(naive(W[r], a[r], X[r, i]), abs=1e-12)
    Xd = torch.randn(R, m, n, d, generator=g, dtype=torch.float64)
    fd = maxpool.forward(W, a, X=Xd)
    assert fd[1, 2].item() == pytest.approx(naive(W[1], a[1], Xd[1, 2]), abs=1e-12)


def test_forward_fixed_is_plus_minus_readout():
    g = torch.Generator().manual_seed(1)
    W = torch.randn(2, 8, 5, generator=g, dtype=torch.float64)
    idx = torch.randint(0, 5, (2, 3, 4), generator=g)
    a = maxpool.fixed_readout(4, 2)
    assert a[0].tolist() == [1.0] * 4 + [-1.0] * 4
    assert torch.allclose(maxpool.forward_fixed(W, idx=idx), maxpool.forward(W, a, idx=idx))


def test_gradient_flows_to_argmax_patch_only():
    W = torch.tensor([[[1.0, 2.0, -1.0]]], dtype=torch.float64, requires_grad=True)
    idx = torch.tensor([[[0, 1, 2]]])
    maxpool.responses(W, idx=idx).sum().backward()
    assert W.grad.tolist() == [[[0.0, 1.0, 0.0]]]


def test_shape_errors():
    W = torch.zeros(2, 4, 3)
    with pytest.raises(ValueError, match="exactly one"):
        maxpool.responses(W)
    with pytest.raises(ValueError, match="X must"):
        maxpool.responses(W, X=torch.zeros(2, 5, 2, 4))
    with pytest.raises(ValueError, match="idx must"):
        maxpool.responses(W, idx=torch.zeros(3, 5, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="even"):
        maxpool.forward_fixed(torch.zeros(1, 3, 2), idx=torch.zeros(1, 2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="a must"):
        maxpool.forward(W, torch.zeros(2, 3), idx=torch.zeros(2, 5, 2, dtype=torch.int64))


def test_one_hot_backward_matches_dense_autograd():
    g = torch.Generator().manual_seed(3)
    R, C, d, m, n = 2, 5, 6, 7, 3
    W = torch.randn(R, C, d, generator=g, dtype=torch.float64)
    idx = torch.randint(0, d, (R, m, n), generator=g)
    up = torch.randn(R, m, C, generator=g, dtype=torch.float64)
    W1 = W.clone().requires_grad_(True)
    (maxpool.responses(W1, idx=idx) * up).sum().backward()
    W2 = W.clone().requires_grad_(True)
    (maxpool.responses(W2, X=torch.eye(d, dtype=torch.float64)[idx]) * up).sum().backward()
    assert torch.allclose(W1.grad, W2.grad, atol=1e-12)
    assert torch.autograd.gradcheck(lambda w: maxpool.responses(w, idx=idx), (W.clone().requires_grad_(True),))


def test_patterns_argument_equals_dense():
    g = torch.Generator().manual_seed(4)
    R, C, d, l, m, n = 2, 6, 5, 4, 3, 3
    W = torch.randn(R, C, d, generator=g, dtype=torch.float64)
    P = torch.randn(l, d, generator=g, dtype=torch.float64)
    Pr = torch.randn(R, l, d, generator=g, dtype=torch.float64)
    idx = torch.randint(0, l, (R, m, n), generator=g)
    assert torch.allclose(maxpool.forward_fixed(W, idx=idx, patterns=P), maxpool.forward_fixed(W, X=P[idx]), atol=1e-12)
    Xr = torch.stack([Pr[r][idx[r]] for r in range(R)])
    assert torch.allclose(maxpool.responses(W, idx=idx, patterns=Pr), maxpool.responses(W, X=Xr), atol=1e-12)
    with pytest.raises(ValueError, match="patterns must have shape"):
        maxpool.responses(W, idx=idx, patterns=torch.zeros(l, d + 1))
    with pytest.raises(ValueError, match="patterns goes with idx"):
        maxpool.responses(W, X=Xr, patterns=P)


@pytest.mark.parametrize("path", ["ref", "auto"])
def test_out_of_range_pattern_index_raises_for_any_run(path):
    W = torch.randn(3, 4, 5, dtype=torch.float64)
    for r, bad in ((0, 5), (1, 7), (2, 5), (0, -1)):
        idx = torch.zeros(3, 2, 2, dtype=torch.int64)
        idx[r, 1, 0] = bad
        with pytest.raises(ValueError, match=r"pattern indices in \[.*\]; they must lie in \[0, d\) = \[0, 5\)"):
            maxpool.responses(W, idx=idx)
        with pytest.raises(ValueError, match="must lie in"):
            maxpool.forward(W, torch.ones(3, 4, dtype=torch.float64), idx=idx)
    P = torch.randn(3, 5, dtype=torch.float64)  # l = 3 patterns
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        maxpool.responses(W, idx=torch.full((3, 2, 2), 3, dtype=torch.int64), patterns=P)


@pytest.mark.parametrize("path", ["ref", "auto"])
def test_near_tie_gradient_goes_to_the_first_patch(path):
    from cnnbias.stats import TIE_RTOL

    # patch 1 exceeds patch 0 only by a fraction of the tie tolerance: patch 0 gets the gradient
    W = torch.tensor([[[1.0, 1.0 + TIE_RTOL / 8, 0.5, 1.0 + 1e-6]]], dtype=torch.float64, requires_grad=True)
    h = maxpool.onehot_maxpool(W, torch.tensor([[[0, 1, 2], [2, 1, 0], [1, 0, 3]]]), path=path)
    h.sum().backward()
    # point 0: patches 0, 1 near-tied -> pattern 0; point 1: pattern 2 is below; patterns 1 and 0
    # near-tied -> the first patch of the two, pattern 1; point 2: pattern 3 is a clear max
    assert W.grad.tolist() == [[[1.0, 1.0, 0.0, 1.0]]]
    assert h[0, 0, 0].item() == 1.0 + TIE_RTOL / 8  # the value is still the exact max
