"""Tests for cnnbias.stats."""

import numpy as np
import pytest
import torch
from cnnbias import stats


def test_error_rate_ties_count_half():
    s = torch.tensor([[2.0, 0.0, -1.0, 0.5], [-1.0, -2.0, 0.0, 3.0]])
    y = torch.tensor([1.0, 1.0, 1.0, -1.0])
    err = stats.error_rate(s, y)
    assert torch.allclose(err, torch.tensor([(0 + 0.5 + 1 + 1) / 4, (1 + 1 + 0.5 + 1) / 4], dtype=torch.float64))
    assert torch.allclose(stats.accuracy(s, y), 1 - err)


def test_error_rate_rejects_bad_labels():
    with pytest.raises(ValueError, match="y must"):
        stats.error_rate(torch.ones(3), torch.tensor([1.0, 0.0, 1.0]))


def test_mean_se_numpy_and_torch():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    m, se = stats.mean_se(x)
    assert m == pytest.approx(2.5)
    assert se == pytest.approx(np.std(x, ddof=1) / 2)
    mt, st = stats.mean_se(torch.tensor(x))
    assert float(mt) == pytest.approx(2.5) and float(st) == pytest.approx(float(se))
    m1, s1 = stats.mean_se(np.array([5.0]))
    assert m1 == 5.0 and s1 == 0.0


def test_spearman():
    assert stats.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert stats.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        stats.spearman([1, 2], [1, 2])


def test_holm_reject_step_down():
    from cnnbias.stats import holm_reject

    # m = 4: thresholds 0.0125, 0.0167, 0.025, 0.05 for the sorted p-values
    assert holm_reject([0.01, 0.04, 0.03, 0.005]).tolist() == [True, False, False, True]
    assert holm_reject([0.01, 0.015, 0.02, 0.04]).tolist() == [True, True, True, True]
    assert holm_reject([0.01, 0.015, 0.03, 0.04]).tolist() == [True, True, False, False]
    assert not holm_reject([0.2, 0.3]).any()
    # one hypothesis: the plain test
    assert holm_reject([0.049]).tolist() == [True]


def test_holm_reject_bad_input():
    import pytest
    from cnnbias.stats import holm_reject

    with pytest.raises(ValueError, match="p_values"):
        holm_reject([])
    with pytest.raises(ValueError, match="p_values"):
        holm_reject([0.1, float("nan")])
    with pytest.raises(ValueError, match="alpha"):
        holm_reject([0.1], alpha=0)
