"""Tests for cnnbias.data.positions (tasks of the conv-linear paper, Section 1 and App. G)."""

import pytest
import torch
from cnnbias.data import positions as P


@pytest.mark.parametrize("d", [6, 9, 100])
def test_sizes_and_labels(d):
    t = P.task_cls(d)
    assert t.N == 2 * d
    X = t.dense()
    assert torch.equal(X.sum(-1), t.y)  # +e_l -> +1, -e_l -> -1
    t = P.task_1st_ctrl(d)
    assert t.N == d
    pos = t.dense().argmax(-1) + 1  # 1-based
    assert torch.equal(t.y, torch.where(pos <= d / 2, -1.0, 1.0).double())
    t = P.task_3rd_ctrl(d)
    assert t.N == d * (d - 1)
    X = t.dense()
    assert torch.equal(X.sum(-1), torch.zeros(t.N, dtype=torch.float64))
    a, b = X.argmax(-1), X.argmin(-1)  # +1 at a (object A), -1 at b (arm B)
    assert bool((a != b).all())
    assert torch.equal(t.y, torch.where(a > b, 1.0, -1.0).double())
    assert len({(int(i), int(j)) for i, j in zip(a, b)}) == t.N  # all distinct points
    t = P.task_even_odd(d)
    pos = t.dense().argmax(-1) + 1
    assert torch.equal(t.y, torch.where(pos % 2 == 1, 1.0, -1.0).double())


@pytest.mark.parametrize("name", P.TASKS)
def test_linear_separability_without_bias(name):
    t = P.make_task(name, 20)
    margins = t.y * (t.dense() @ P.separator(t))
    assert bool((margins > 0).all())


def test_sampling_with_replacement_uniform_and_masked():
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    idx, mask = P.sample_training_sets(10, [5, 200, 1], gens)
    assert idx.shape == (3, 200) and mask.shape == (3, 200)
    assert mask.sum(-1).tolist() == [5, 200, 1]
    assert bool((idx >= 0).all() and (idx < 10).all())
    # with replacement: 200 draws from 10 must repeat; roughly uniform
    counts = torch.bincount(idx[1], minlength=10)
    assert counts.max() > 1 and counts.min() > 5
    # reproducible per generator, independent of batching
    idx2, _ = P.sample_training_sets(10, [200], [torch.Generator().manual_seed(1)])
    assert torch.equal(idx2[0], idx[1])


def test_mean_yx_and_occupancy():
    t = P.task_cls(8)
    idx = torch.tensor([[0, 8, 3, 3], [2, 2, 2, 2]])  # +e_1, -e_1, +e_4, +e_4
    mask = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.float64)
    m = P.mean_yx(t, idx, mask)
    assert torch.allclose(m[0], torch.tensor([0.5, 0, 0, 0.5, 0, 0, 0, 0], dtype=torch.float64))
    assert torch.allclose(m[1], torch.tensor([0, 0, 1.0, 0, 0, 0, 0, 0], dtype=torch.float64))
    occ = P.occupied_positions(t, idx, mask)
    assert occ[0].nonzero().flatten().tolist() == [0, 3]


def test_validation():
    with pytest.raises(ValueError, match="name"):
        P.make_task("nope", 10)
    with pytest.raises(ValueError, match="d"):
        P.task_3rd_ctrl(1)
    with pytest.raises(ValueError, match="n"):
        P.sample_indices(10, 0, torch.Generator())
