"""Tests of cnnbias.experiments.convlin_extra (paired statistics, departure, Pitman-Morgan, logistic runs)."""

import pytest
import torch
from cnnbias.experiments import convlin as E
from cnnbias.experiments import convlin_extra as X


def test_departure_index():
    R = 10
    noise = torch.linspace(-1, 1, R, dtype=torch.float64)[None, :] * 0.01
    shift = torch.tensor([0.0, 0.5, 0.0, 0.3, 0.4, 0.5], dtype=torch.float64)[:, None]
    b = torch.zeros(6, R, dtype=torch.float64)
    a = b + shift + noise
    assert X.departure_index(a, b) == 3  # row 1 departs but row 2 falls back
    assert X.departure_index(b + noise, b) is None


def test_paired_z_and_reexport():
    assert X.paired_difference is E.paired_difference
    a = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    m, se = X.paired_z(a, torch.zeros_like(a))
    assert float(m[0]) == 2.0 and abs(float(se[0]) - (1.0 / 3) ** 0.5) < 1e-12


def test_pitman_morgan():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(400, generator=g, dtype=torch.float64)
    e = torch.randn(400, generator=g, dtype=torch.float64)
    a, b = 3 * z + e, z  # var(a) > var(b), correlated
    ratio, p = X.pitman_morgan(a, b)
    assert ratio > 2 and p < 1e-6
    ratio2, p2 = X.pitman_morgan(b, a)
    assert ratio2 < 1 and p2 > 0.5
    with pytest.raises(ValueError, match="4 pairs"):
        X.pitman_morgan(a[:3], b[:3])


def test_logistic_runs_fit_with_margin_one():
    r = X.logistic_runs("cls", 16, 3, [4, 8], 3, 0.1, 20000, experiment="t/log")
    assert r.err.shape == (2, 3) and bool(r.fitted.all())
    r0 = X.logistic_runs("cls", 16, 3, [4, 8], 3, 0.1, 20000, experiment="t/log", stop_margin=0.0)
    assert bool((r0.epochs <= r.epochs).all())
    with pytest.raises(ValueError, match="stop_margin"):
        X.logistic_runs("cls", 16, 3, [4], 2, 0.1, 10, stop_margin=-1.0)


def test_xhinge_after_fit_matches_init_runs():
    a = X.xhinge_after_fit("cls", 20, 3, 8, 4, 0.1, 200, 10, 4000, experiment="t/af")
    r = E.init_runs("cls", 20, 3, 8, 4, 0.1, 200, 10, 3000, experiment="t/af")
    assert torch.equal(a.err_end, r.x_test[-1])  # same training set and initializations
    fitted = a.t_fit >= 0
    assert bool(fitted.any())
    for j in fitted.nonzero().flatten().tolist():
        t_idx = r.t_x.index(int(a.t_fit[j]))
        assert float(r.x_train[t_idx, j]) == 0.0 and float(a.err_fit[j]) == float(r.x_test[t_idx, j])
    assert bool((a.cos_far <= 1 + 1e-12).all())
    with pytest.raises(ValueError, match="t_far"):
        X.xhinge_after_fit("cls", 20, 3, 8, 2, 0.1, 200, 10, 100)
