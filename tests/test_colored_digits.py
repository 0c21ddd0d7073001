"""Tests for cnnbias.data.colored_digits (PSI Sec. 8 / App. G)."""

import pytest
import torch
from cnnbias.data import colored_digits as cd


def test_sample_colored_structure():
    g = torch.Generator().manual_seed(0)
    ids, col, y = cd.sample_colored(500, 40, 9, g)
    assert ids.shape == (500, 9) and col.shape == (500, 9) and y.shape == (500,)
    non_green = (col != cd.GREEN).sum(1)
    assert torch.all(non_green == 1)
    disc = col[col != cd.GREEN]
    assert torch.equal(disc == cd.BLUE, y > 0)
    assert all(len(set(r)) == 9 for r in ids.tolist())
    assert 0.4 < float((y > 0).double().mean()) < 0.6
    assert ids.min() >= 0 and ids.max() < 40


def test_embed_colored_orthogonal_colors():
    pool = torch.rand(10, 4, 4)
    ids = torch.tensor([[0, 0, 3]])
    col = torch.tensor([[cd.RED, cd.GREEN, cd.BLUE]])
    X = cd.embed_colored(ids, col, pool)
    assert X.shape == (1, 3, 48)
    assert float(X[0, 0] @ X[0, 1]) == 0.0 and float(X[0, 1] @ X[0, 2]) == 0.0
    assert float(X[0, 0] @ X[0, 0]) == pytest.approx(float((pool[0].double() ** 2).sum()))
    torch.testing.assert_close(X[0, 2].reshape(3, 4, 4)[2], pool[3].double())
    with pytest.raises(ValueError):
        cd.embed_colored(ids, torch.tensor([[0, 1, 3]]), pool)


def test_filters_as_images_scaling():
    W = torch.tensor([[1.0, -2.0, 0.5] + [0.0] * 9, [4.0] + [0.0] * 11])
    img = cd.filters_as_images(W, 2, 2)
    assert img.shape == (2, 2, 2, 3) and img.dtype == torch.uint8
    assert int(img.max()) == 255 and int(img[1, 0, 0, 0]) == 255
    assert int(img[0, 0, 0, 0]) == round(255 / 4) and int(img[0, 0, 1, 0]) == 0


def test_load_pools_sklearn(monkeypatch):
    monkeypatch.delenv("CNNBIAS_MNIST_DIR", raising=False)
    pools = cd.load_pools()
    assert pools.source == "sklearn-8x8" and pools.d == 192
    assert pools.train.shape[0] == 1000 and pools.test.shape[0] == 797
