"""Tests of cnnbias.theory.separability (linear separability by a linear program)."""

from __future__ import annotations

import pytest
import torch
from cnnbias.theory.separability import linearly_separable, separation_slack


def test_separable_and_xor():
    X = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    y_and = torch.tensor([-1, -1, -1, 1])
    y_xor = torch.tensor([-1, 1, 1, -1])
    assert separation_slack(X, y_and) == pytest.approx(0.0, abs=1e-9) and linearly_separable(X, y_and)
    # XOR: sum_i y_i (w.x_i + b) = 0 for every (w, b), so sum_i (1 - s_i) <= 0: the optimal total slack is 4
    assert separation_slack(X, y_xor) == pytest.approx(4.0, abs=1e-7)
    assert not linearly_separable(X, y_xor)


def test_random_points_in_general_position_are_separable_up_to_dimension_plus_one():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(11, 10, generator=g, dtype=torch.float64)  # m <= D + 1 points: any labels separable
    y = torch.where(torch.rand(11, generator=g) < 0.5, -1, 1)
    assert linearly_separable(X, y)


def test_bad_input():
    X = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"\by\b"):
        separation_slack(X, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="same m"):
        separation_slack(X, torch.tensor([1, -1]))
    with pytest.raises(ValueError, match="finite"):
        separation_slack(torch.tensor([[float("nan"), 0.0]] * 2, dtype=torch.float64), torch.tensor([1, -1]))
    with pytest.raises(ValueError, match="rtol"):
        linearly_separable(X, torch.tensor([1, -1, 1]), rtol=0.0)
