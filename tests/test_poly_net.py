"""Tests of cnnbias.models.poly_net: the polynomial ReLU, the masked MLP and the all-conv net."""

import math

import pytest
import torch
from cnnbias.models import poly_net as P


def gens(R, seed=0):
    return [torch.Generator().manual_seed(seed + r) for r in range(R)]


def test_abs_chebyshev_series_converges_to_abs():
    t = torch.linspace(-1, 1, 2001, dtype=torch.float64)
    for deg in (2, 10, 40):
        err = (P.poly_relu(t, deg, 1.0) - torch.relu(t)).abs().max().item()
        assert err <= P.poly_relu_error_bound(deg, 1.0) + 1e-12
    assert P.poly_relu_error_bound(40, 1.0) < P.poly_relu_error_bound(10, 1.0)


def test_poly_relu_is_a_polynomial_of_the_stated_degree():
    # finite differences of order degree+1 of a degree-`degree` polynomial vanish on a uniform grid
    x = torch.linspace(-6, 6, 40, dtype=torch.float64)
    v = P.poly_relu(x, 10, 4.0)
    d = v.clone()
    for _ in range(11):
        d = d[1:] - d[:-1]
    assert d.abs().max().item() < 1e-6 * v.abs().max().item()
    d10 = v.clone()
    for _ in range(10):
        d10 = d10[1:] - d10[:-1]
    assert d10.abs().max().item() > 1e-8  # degree exactly 10


def test_poly_relu_scales_with_bound():
    x = torch.linspace(-3, 3, 101, dtype=torch.float64)
    assert torch.allclose(P.poly_relu(2 * x, 10, 8.0), 2 * P.poly_relu(x, 10, 4.0), atol=1e-12)
    assert abs(P.abs_chebyshev_coefficients(2)[0] - 2 / math.pi) < 1e-15


@pytest.mark.parametrize("bad", [0, 3, -2, 2.0])
def test_degree_validated(bad):
    with pytest.raises(ValueError, match="degree"):
        P.abs_chebyshev_coefficients(bad)


def test_activate_rejects_unknown():
    with pytest.raises(ValueError, match="activation"):
        P.activate(torch.zeros(2), "tanh")


def test_mlp_width_mask_equals_unpadded_net():
    D, C = 5, 3
    p = P.mlp_init([2, 4], D, C, gens(2))
    assert p["W"].shape == (2, 4, D) and p["mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    X = torch.randn(7, D, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for act in P.ACTIVATIONS:
        out = P.mlp_forward(p, X, act)
        small = {"W": p["W"][:1, :2], "V": p["V"][:1, :, :2]}
        assert torch.allclose(out[:1], P.mlp_forward(small, X, act), atol=1e-13)
        # per-run inputs give the same result as a shared input
        assert torch.allclose(out, P.mlp_forward(p, X.expand(2, 7, D), act), atol=1e-13)
    assert P.mlp_n_params(4, D, C) == 4 * (D + C)


def test_mlp_run_independent_of_batch():
    p = P.mlp_init([3, 8], 4, 2, gens(2))
    q = P.mlp_init([8], 4, 2, gens(1, seed=1))
    assert torch.equal(p["W"][1], q["W"][0]) and torch.equal(p["V"][1], q["V"][0])


def test_relu_mlp_is_homogeneous():
    p = P.mlp_init([6], 4, 3, gens(1))
    X = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    q = {"W": 2 * p["W"], "V": 3 * p["V"], "mask": p["mask"]}
    assert torch.allclose(P.mlp_forward(q, X), 6 * P.mlp_forward(p, X), atol=1e-12)


def test_mlp_validates_shapes():
    p = P.mlp_init([2], 4, 3, gens(1))
    with pytest.raises(ValueError, match="X must have shape"):
        P.mlp_forward(p, torch.zeros(3, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="gens"):
        P.mlp_init([2, 3], 4, 3, gens(1))
    with pytest.raises(ValueError, match="widths"):
        P.mlp_init([0], 4, 3, gens(1))


def test_allconv_shapes_params_and_mask():
    L, layers = 40, 5
    assert P.allconv_lengths(L, layers) == [20, 10, 5, 3]
    p = P.allconv_init([3, 5], layers, L, 10, gens(2))
    X = torch.randn(6, L, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = P.allconv_forward(p, X)
    assert out.shape == (2, 6, 10)
    small = P.allconv_init([3], layers, L, 10, gens(1))
    # run 0 (3 channels, padded to 5) equals the same run built unpadded
    assert torch.allclose(out[:1], P.allconv_forward(small, X), atol=1e-12)
    n_w = sum(int((v[0] != 0).sum()) for k, v in small.items() if k != "mask")
    assert n_w == P.allconv_n_params(3, layers, L, 10)
    assert torch.allclose(P.allconv_forward(p, X.expand(2, 6, L)), out, atol=1e-12)
    assert P.allconv_forward(p, X, "poly").shape == (2, 6, 10)


def test_per_run_bound_equals_scalar_bound():
    p = P.mlp_init([3, 3], 4, 2, gens(2))
    X = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    q = dict(p, bound=torch.tensor([2.0, 8.0], dtype=torch.float64))
    out = P.mlp_forward(q, X, "poly")
    assert torch.allclose(out[0], P.mlp_forward(p, X, "poly", bound=2.0)[0], atol=1e-13)
    assert torch.allclose(out[1], P.mlp_forward(p, X, "poly", bound=8.0)[1], atol=1e-13)
    with pytest.raises(ValueError, match="bound"):
        P.poly_relu(torch.zeros(2, 3), 10, torch.tensor([1.0, -1.0]))


def test_allconv_per_run_bound_matches_scalar_bounds():
    L, layers = 20, 3
    p = P.allconv_init([3, 5], layers, L, 10, gens(2))
    X = torch.randn(6, L, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    bounds = torch.tensor([2.0, 8.0], dtype=torch.float64)
    out = P.allconv_forward(dict(p, bound=bounds), X, "poly")
    for r in range(2):
        one = P.allconv_forward(p, X, "poly", bound=float(bounds[r]))
        assert torch.allclose(out[r], one[r], rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="R=2"):
        P.allconv_forward(dict(p, bound=torch.ones(6, dtype=torch.float64)), X, "poly")
