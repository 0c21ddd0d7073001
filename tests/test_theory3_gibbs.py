"""Tests of cnnbias.theory.theory3.gibbs: exact Gibbs integrals against brute-force quadrature."""

import math

import numpy as np
import pytest
import torch
from cnnbias.theory.theory3.gibbs import GaussianWells, WedgeValley, periodic_diff

GW = GaussianWells()
WV = WedgeValley()


def _grid(L, n):
    h = L / n
    return (np.arange(n) + 0.5) * h, h


@pytest.mark.parametrize("T", [0.1, 0.3, 1.0])
def test_wells_mass_1d_2d_against_quadrature(T):
    x, h = _grid(18.0, 9000)
    U1 = 1 - GW.phi(0, x) - GW.phi(1, x)
    z1 = np.sum(np.exp(-(U1 - 1) / T)) * h
    assert math.exp(GW.log_mass(T, 1)) == pytest.approx(z1, rel=1e-9)
    xs, hs = _grid(18.0, 1800)
    X, Y = np.meshgrid(xs, xs, indexing="ij")
    U2 = 1 - GW.phi(0, X) * GW.phi(0, Y) - GW.phi(1, X) * GW.phi(1, Y)
    w = np.exp(-(U2 - 1) / T) * hs * hs
    assert math.exp(GW.log_mass(T, 2)) == pytest.approx(w.sum(), rel=1e-8)
    a, b = GW.box(1)
    inbox = (X > a) & (X < b) & (Y > a) & (Y < b)
    assert GW.basin_probabilities(T, 2)[1] == pytest.approx(w[inbox].sum() / w.sum(), rel=1e-3)


def test_wells_3d_against_monte_carlo_free_quadrature():
    # D = 3 by a coarse product grid (smooth periodic integrand: the midpoint rule converges fast)
    T = 0.5
    xs, h = _grid(18.0, 180)
    p0, p1 = GW.phi(0, xs), GW.phi(1, xs)
    G1 = p0[:, None, None] * p0[None, :, None] * p0[None, None, :]
    G2 = p1[:, None, None] * p1[None, :, None] * p1[None, None, :]
    z = np.sum(np.exp((G1 + G2) / T)) * h**3
    assert math.exp(GW.log_mass(T, 3)) == pytest.approx(z, rel=1e-6)


def test_excess_mass_ratio_is_two_to_the_D():
    for T in (0.05, 0.3):
        for D in (1, 4, 8):
            r = math.exp(GW.log_excess_mass(T, D, 1) - GW.log_excess_mass(T, D, 0))
            assert r == pytest.approx(2.0**D, rel=1e-12)


def test_excess_mass_against_radial_quadrature():
    T, D, s = 0.2, 3, 2.0
    r = np.linspace(0, 40, 400001)
    f = 4 * np.pi * r**2 * (np.exp(np.exp(-r**2 / (2 * s * s)) / T) - 1)
    assert math.exp(GW.log_excess_mass(T, D, 1)) == pytest.approx(np.trapezoid(f, r), rel=1e-7)


def test_slice_density_normalized_and_matches_2d_marginal():
    T = 0.3
    x, h = _grid(18.0, 3600)
    p = GW.slice_density(T, 2, x)
    assert p.sum() * h == pytest.approx(1.0, rel=1e-9)
    X, Y = np.meshgrid(x, x, indexing="ij")
    w = np.exp((GW.phi(0, X) * GW.phi(0, Y) + GW.phi(1, X) * GW.phi(1, Y)) / T)
    marg = w.sum(1) / (w.sum() * h)
    assert np.max(np.abs(p - marg)) < 1e-8 * marg.max()


def test_wells_grad_is_gradient_of_potential():
    x = torch.rand(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 18
    x.requires_grad_(True)
    GW.potential(x).sum().backward()
    assert torch.allclose(GW.grad(x.detach()), x.grad, atol=1e-12)


def test_wells_basin_labels_and_tolerance():
    x = torch.tensor([[4.0, 4.0], [12.0, 12.0], [4.0, 12.0], [6.5, 4.0]], dtype=torch.float64)
    assert GW.basin(x).tolist() == [1, 2, 0, -1]


@pytest.mark.parametrize("D", [2, 3])
def test_wedge_masses_against_grid(D):
    T = 0.3
    xs, h = _grid(12.0, 1200 if D == 2 else 240)
    grids = np.meshgrid(*([xs] * D), indexing="ij")
    t = [torch.as_tensor(g.ravel()) for g in grids]
    X = torch.stack(t, -1)
    U = WV.potential(X).numpy()
    w = np.exp(-(U - 1) / T) * h**D
    lab = WV.basin(X).numpy()
    m = WV.masses(T, D)
    assert m["iso"] + m["valley"] + m["plateau"] == pytest.approx(w.sum(), rel=2e-3)
    assert m["valley"] == pytest.approx(w[lab == 2].sum(), rel=2e-3)
    assert m["iso"] == pytest.approx(w[lab == 1].sum(), rel=2e-2)


def test_wedge_grad_matches_finite_differences_off_kinks():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(200, 3, dtype=torch.float64, generator=g) * 12
    e = 1e-6
    num = torch.stack([(WV.potential(x + e * torch.eye(3, dtype=torch.float64)[j])
                        - WV.potential(x - e * torch.eye(3, dtype=torch.float64)[j])) / (2 * e) for j in range(3)], -1)
    assert torch.allclose(WV.grad(x), num, atol=1e-6)


def test_wedge_isolated_share_falls_and_valley_dominates():
    p = np.array([WV.basin_probabilities(0.25, D) for D in range(2, 9)])
    assert np.all(np.diff(p[:, 0]) < 0)
    assert np.all(p[:, 1] > p[:, 0])


def test_periodic_diff():
    d = periodic_diff(torch.tensor([0.5, 17.5]), 0.0, 18.0)
    assert torch.allclose(d, torch.tensor([0.5, -0.5]))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "x"])
def test_invalid_temperature(bad):
    with pytest.raises(ValueError, match="temperature"):
        GW.log_mass(bad, 2)
    with pytest.raises(ValueError, match="temperature"):
        WV.masses(bad, 2)


def test_invalid_dimension_and_params():
    with pytest.raises(ValueError, match="dimension"):
        GW.log_mass(0.3, 0)
    with pytest.raises(ValueError, match="dimension"):
        WV.masses(0.3, 1)
    with pytest.raises(ValueError):
        GaussianWells(widths=(1.0, -2.0))
    with pytest.raises(ValueError):
        GaussianWells(centers=(4.0, 6.0))
    with pytest.raises(ValueError):
        WedgeValley(valley_center=4.0)
