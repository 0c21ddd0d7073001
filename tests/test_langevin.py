"""Tests of cnnbias.langevin: input validation, divergence, and GDL against the exact Gibbs law."""

import math

import pytest
import torch
from cnnbias.langevin import LangevinDiverged, discrete_ou_variance, run_chains, temperature_from_noise


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_quadratic_well_variance_matches_discrete_ou():
    # U = k x^2 / 2: the chain is linear; its stationary variance is (T/k) 2/(2 - eta k) exactly.
    k, T, eta = 2.0, 0.5, 0.2
    x0 = torch.zeros(20000, 1, dtype=torch.float64)
    res = run_chains(lambda x: k * x, x0, eta, T, 200, _gen())
    v = float(res.x.var())
    target = discrete_ou_variance(T, k, eta)
    assert abs(v - target) < 4 * target * math.sqrt(2 / 20000)
    assert abs(target - T / k * 2 / (2 - eta * k)) < 1e-15


def test_double_well_matches_gibbs():
    # U = (x^2 - 1)^2 at T = 0.5: occupancy of x > 0 is 1/2 by symmetry and the law of x^2 matches quadrature.
    T, eta = 0.5, 0.01
    grad = lambda x: 4 * x * (x * x - 1)
    x0 = 4 * torch.rand(4000, 1, generator=_gen(7), dtype=torch.float64) - 2
    res = run_chains(grad, x0, eta, T, 4000, _gen(1), record_at=tuple(range(2000, 4001, 50)))
    xs = res.snapshots[..., 0]
    frac_pos = float((xs > 0).double().mean())
    assert abs(frac_pos - 0.5) < 0.03
    grid = torch.linspace(-3, 3, 60001, dtype=torch.float64)
    w = torch.exp(-((grid**2 - 1) ** 2) / T)
    m2 = float((w * grid**2).sum() / w.sum())
    per_chain = (xs**2).mean(0)
    se = float(per_chain.std() / math.sqrt(per_chain.numel()))
    assert abs(float(per_chain.mean()) - m2) < 4 * se + 0.01  # 0.01: O(eta) discretization bias


def test_piecewise_linear_valley_bias_vanishes_with_step():
    # U = min(|x - 6|, 1) on the circle [0, 12): Gibbs mass of the valley |x - 6| < 1 in closed form;
    # the O(eta) bias of the discretized chain at the kinks shrinks with the step.
    T = 0.25
    exact = 2 * T * (1 - math.exp(-1 / T)) / (2 * T * (1 - math.exp(-1 / T)) + 10 * math.exp(-1 / T))

    def grad(x):
        d = x - 6
        return torch.sign(d) * (d.abs() < 1)

    x0 = 12 * torch.rand(2000, 1, generator=_gen(8), dtype=torch.float64)
    res = run_chains(grad, x0, 0.025, T, 12000, _gen(9), period=12.0, record_at=tuple(range(6000, 12001, 100)))
    frac = float(((res.snapshots - 6).abs() < 1).double().mean())
    assert abs(frac - exact) < 0.02


def test_per_chain_step_and_temperature_broadcast():
    x0 = torch.zeros(2, 5000, 1, dtype=torch.float64)
    T = torch.tensor([[0.1], [1.0]], dtype=torch.float64)
    res = run_chains(lambda x: x, x0, 0.01, T, 1000, _gen(2))
    v = res.x.var(dim=(1, 2))
    assert abs(float(v[0]) - 0.1) < 0.02 and abs(float(v[1]) - 1.0) < 0.15


def test_mask_freezes_coordinates_and_period_wraps():
    x0 = torch.full((3, 4), 1.0, dtype=torch.float64)
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    res = run_chains(lambda x: torch.zeros_like(x), x0, 0.5, 4.0, 50, _gen(3), mask=mask, period=2.0)
    assert torch.all(res.x[:, 2:] == 1.0)
    assert torch.all((res.x >= 0) & (res.x < 2.0))


def test_same_generator_same_result():
    x0 = torch.zeros(10, 2, dtype=torch.float64)
    a = run_chains(lambda x: x, x0, 0.1, 1.0, 20, _gen(5)).x
    b = run_chains(lambda x: x, x0, 0.1, 1.0, 20, _gen(5)).x
    assert torch.equal(a, b)


def test_divergence_is_reported():
    x0 = torch.ones(4, 1, dtype=torch.float64)
    with pytest.raises(LangevinDiverged, match="diverged"):
        run_chains(lambda x: 10.0 * x, x0, 1.0, 0.1, 2000, _gen(), check_every=10)


@pytest.mark.parametrize("kw", [{"step": 0.0}, {"step": float("nan")}, {"temperature": -1.0},
                                {"temperature": float("inf")}])
def test_invalid_step_or_temperature(kw):
    args = {"step": 0.1, "temperature": 1.0, **kw}
    with pytest.raises(ValueError, match="step|temperature"):
        run_chains(lambda x: x, torch.zeros(2, 1, dtype=torch.float64), args["step"], args["temperature"],
                   10, _gen())


def test_other_invalid_inputs():
    x0 = torch.zeros(2, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="generator"):
        run_chains(lambda x: x, x0, 0.1, 1.0, 10, None)
    with pytest.raises(ValueError, match="x0"):
        run_chains(lambda x: x, torch.full((2, 1), float("nan")), 0.1, 1.0, 10, _gen())
    with pytest.raises(ValueError, match="n_steps"):
        run_chains(lambda x: x, x0, 0.1, 1.0, -1, _gen())
    with pytest.raises(ValueError, match="record_at"):
        run_chains(lambda x: x, x0, 0.1, 1.0, 10, _gen(), record_at=(11,))
    with pytest.raises(ValueError, match="broadcast"):
        run_chains(lambda x: x, x0, torch.ones(3), 1.0, 10, _gen())


def test_temperature_from_noise():
    assert temperature_from_noise(0.45, 1.0) == pytest.approx(0.10125)
    with pytest.raises(ValueError):
        temperature_from_noise(0.1, 0.0)
    with pytest.raises(ValueError):
        discrete_ou_variance(1.0, 1.0, 2.0)
