"""Tests of cnnbias.data.digit_patterns."""

import pytest
import torch
from cnnbias.data.digit_patterns import sample_digit_patterns, split_pools
from cnnbias.data.digits import load_digits


def test_digit_images_label_rule():
    images, labels, _ = load_digits()
    images, labels = torch.as_tensor(images)[:2000], torch.as_tensor(labels)[:2000]  # small even with MNIST
    g = torch.Generator().manual_seed(0)
    tr, te = split_pools(images, labels, generator=g)
    # disjoint pools: no training image of a 3 appears in the test pool
    assert not any(bool((te.pos == row).all(1).any()) for row in tr.pos[:20])
    X, y = sample_digit_patterns(300, tr, n=4, generator=g)
    assert X.shape == (300, 4, tr.pos.shape[1])
    # each image holds exactly one discriminative digit, of the class given by y
    is_pos = torch.stack([(X[:, j, None, :] == tr.pos[None]).all(-1).any(-1) for j in range(4)], 1)
    is_neg = torch.stack([(X[:, j, None, :] == tr.neg[None]).all(-1).any(-1) for j in range(4)], 1)
    assert torch.equal(is_pos.sum(1) == 1, y > 0)
    assert torch.equal(is_neg.sum(1) == 1, y < 0)
    assert bool(((is_pos | is_neg).sum(1) == 1).all())
    with pytest.raises(ValueError):
        split_pools(images, labels, pos=3, neg=3)
