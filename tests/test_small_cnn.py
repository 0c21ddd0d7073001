"""Tests for cnnbias.models.small_cnn: the batched 3-layer digit CNN and the k-means compression helper."""

import pytest
import torch
from cnnbias.experiments import xord as XE
from cnnbias.models import small_cnn as S


def _reference_logits(p, img):
    """Plain per-image loops: 3x3 valid convolution + bias, ReLU, 2x2 max-pool, fully connected."""
    C = p["conv"].shape[0]
    H, W = img.shape
    fm = torch.zeros(C, H - 2, W - 2, dtype=img.dtype)
    for c in range(C):
        for i in range(H - 2):
            for j in range(W - 2):
                fm[c, i, j] = (img[i:i + 3, j:j + 3].reshape(9) * p["conv"][c]).sum() + p["bias"][c]
    fm = torch.relu(fm)
    h2, w2 = (H - 2) // 2, (W - 2) // 2
    pooled = torch.zeros(C, h2, w2, dtype=img.dtype)
    for i in range(h2):
        for j in range(w2):
            pooled[:, i, j] = fm[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].reshape(C, 4).max(-1).values
    return pooled.reshape(-1) @ p["fc"] + p["fcb"]


def test_forward_matches_loops():
    gens = [torch.Generator().manual_seed(s) for s in range(2)]
    p = S.init_params(3, 8, 8, gens)
    imgs = torch.rand(2, 4, 8, 8, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    out = S.logits(p, imgs)
    assert out.shape == (2, 4, 10)
    for r in range(2):
        pr = {k: v[r] for k, v in p.items()}
        for i in range(4):
            assert torch.allclose(out[r, i], _reference_logits(pr, imgs[r, i]), atol=1e-12)
    shared = S.logits(p, imgs[0])
    assert torch.allclose(shared[0], out[0], atol=1e-12)


def test_training_is_batch_independent_and_learns():
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(3, 30, 8, 8, generator=g, dtype=torch.float64)
    labels = torch.randint(10, (3, 30), generator=g)
    gens = [torch.Generator().manual_seed(100 + s) for s in range(3)]
    p = S.init_params(6, 8, 8, gens)
    res = XE.train_cnn(p, imgs, labels, 0.02, 40)
    one = XE.train_cnn({k: v[1:2] for k, v in p.items()}, imgs[1:2], labels[1:2], 0.02, 40)
    assert torch.allclose(res.params["conv"][1], one.params["conv"][0], atol=1e-10)
    assert (res.final_loss < S.cross_entropy(p, imgs, labels)).all()
    err = S.test_error(res.params, imgs[0], labels[0])
    assert err.shape == (3,) and float(err[0]) < 0.9


def test_cluster_and_compress():
    g = torch.Generator().manual_seed(1)
    true = torch.randn(4, 10, generator=g, dtype=torch.float64) * 5
    pts = true.repeat_interleave(30, 0) + 0.01 * torch.randn(120, 10, generator=g, dtype=torch.float64)
    params = {"conv": pts[None, :, :9].clone(), "bias": pts[None, :, 9].clone()}
    cen = XE.cluster_filters(params, 4, seeds=[0])
    assert cen.shape == (1, 4, 10)
    d = torch.cdist(cen[0], true)
    assert float(d.min(1).values.max()) < 0.05
    cp = S.compressed_params(cen, 8, 8, [torch.Generator().manual_seed(3)])
    assert torch.equal(cp["conv"], cen[..., :9]) and torch.equal(cp["bias"], cen[..., 9])
    assert cp["fc"].shape == (1, 4 * 9, 10)
    with pytest.raises(ValueError, match="n_clusters"):
        XE.cluster_filters(params, 200)
    with pytest.raises(ValueError, match="C"):
        S.init_params(0, 8, 8, [torch.Generator()])


def test_minibatch_training_runs():
    g = torch.Generator().manual_seed(4)
    imgs = torch.rand(2, 40, 8, 8, generator=g, dtype=torch.float64)
    labels = torch.randint(10, (2, 40), generator=g)
    p = S.init_params(3, 8, 8, [torch.Generator().manual_seed(s) for s in range(2)])
    res = XE.train_cnn(p, imgs, labels, 0.02, 5, batch_size=10, shuffle_seeds=[1, 2])
    assert (res.epochs == 5).all() and torch.isfinite(res.final_loss).all()
    with pytest.raises(ValueError, match="shuffle_seeds"):
        XE.train_cnn(p, imgs, labels, 0.02, 5, batch_size=10)
