"""Tests of cnnbias.models.poly_features (standard and weight parameterizations of polynomials)."""

import math

import pytest
import torch
from cnnbias.models import poly_features as PF


def test_monomial_count_and_order():
    for d, k in ((1, 3), (2, 2), (3, 3)):
        e = PF.monomial_exponents(d, k)
        assert len(e) == math.comb(d + k, k)
        assert bool((e.sum(1)[1:] >= e.sum(1)[:-1]).all())
        assert len({tuple(r) for r in e.tolist()}) == len(e)


def test_monomial_features_values():
    e = PF.monomial_exponents(2, 2)
    X = torch.tensor([[2.0, 3.0]], dtype=torch.float64)
    phi = dict(zip(map(tuple, e.tolist()), PF.monomial_features(X, e)[0].tolist()))
    assert phi[(0, 0)] == 1 and phi[(1, 1)] == 6 and phi[(2, 0)] == 4 and phi[(0, 2)] == 9


def test_power_net_coefficients_reproduce_forward():
    g = torch.Generator().manual_seed(0)
    for m in (1, 2, 3):
        W = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
        b = torch.randn(2, 5, generator=g, dtype=torch.float64)
        c = torch.randn(2, 5, generator=g, dtype=torch.float64)
        X = torch.randn(2, 7, 3, generator=g, dtype=torch.float64)
        e = PF.monomial_exponents(3, m)
        a = PF.power_net_coefficients(W, b, c, m, e)
        via_a = (PF.monomial_features(X, e) @ a[..., None])[..., 0]
        assert torch.allclose(via_a, PF.power_net_forward(W, b, c, X, m), atol=1e-10)


def test_paper_example_a5():
    # (w1 x1 + w2 x2 + b)^2 summed over units: the x1 x2 coefficient is 2 sum_i w1i w2i (Sec. 9.10.4)
    g = torch.Generator().manual_seed(1)
    W = torch.randn(1, 6, 2, generator=g, dtype=torch.float64)
    b = torch.randn(1, 6, generator=g, dtype=torch.float64)
    e = PF.monomial_exponents(2, 2)
    a = PF.power_net_coefficients(W, b, torch.ones(1, 6, dtype=torch.float64), 2, e)[0]
    i = [tuple(r) for r in e.tolist()].index((1, 1))
    assert float(a[i]) == pytest.approx(2 * float((W[0, :, 0] * W[0, :, 1]).sum()), abs=1e-12)


def test_validation():
    with pytest.raises(ValueError):
        PF.monomial_features(torch.zeros(3, 2, dtype=torch.float64), PF.monomial_exponents(3, 2))
    with pytest.raises(ValueError):
        PF.power_net_forward(torch.zeros(1, 2, 3, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64),
                             torch.zeros(1, 2, dtype=torch.float64), torch.zeros(4, 2, dtype=torch.float64), 2)
