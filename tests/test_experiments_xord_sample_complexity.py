"""Tests of cnnbias.experiments.xord_sample_complexity (Theorem 4.1 measured)."""

import math

import pytest
import torch
from cnnbias.experiments import xord_sample_complexity as SC


def test_sample_counts():
    c = SC.sample_counts(50, 0.9, 0.7, torch.Generator().manual_seed(0))
    assert c.shape == (6,) and float(c[:3].sum()) == 50 and float(c[3:].sum()) == 50
    assert float(SC.sample_counts(5, 1.0, 1.0, torch.Generator())[[0, 3]].sum()) == 10
    with pytest.raises(ValueError):
        SC.sample_counts(0, 0.5, 0.5, torch.Generator())


def test_thm41_runs_small_net():
    r = SC.thm41_runs("test.thm41", 2, 1 / 41, 1.0, [1, 3], 6, 0.92, 0.92, 500)
    assert r["m"].tolist() == [1] * 6 + [3] * 6
    assert bool(((r["test_error"] >= 0) & (r["test_error"] <= 1)).all())
    assert torch.allclose(r["gen_error"], r["test_error"] - r["train_error"])
    s = SC.success_by_m(r, 0.01)
    assert set(s) == {1, 3} and all(n == 6 for _, n in s.values())
    with pytest.raises(ValueError):
        SC.thm41_runs("test.thm41", 2, 1 / 41, 1.0, [], 6, 0.92, 0.92, 500)


def test_type_runs_and_stratified_success():
    r = SC.thm41_type_runs("test.thm41_m1", 2, 1 / 41, 1.0, 1, 0.92, 0.92, 300)
    assert len(SC.m1_types()) == 9 and r["type"].numel() == 9
    assert abs(float(r["type_prob"].sum()) - 1) < 1e-12
    P, se = SC.stratified_success(r, 0.01)
    assert 0 <= P <= 1 and se == 0.0  # one run per type


def test_sample_complexity():
    assert SC.sample_complexity({1: (3, 10), 2: (9, 10)}, 0.16) == 4.0
    assert math.isinf(SC.sample_complexity({1: (3, 10)}, 0.16))
    with pytest.raises(ValueError):
        SC.sample_complexity({1: (3, 10)}, 1.5)
