"""Tests of cnnbias.data.noisy_patterns."""

import torch
from cnnbias.data import patterns as P
from cnnbias.data.noisy_patterns import ball_noise, noisy_embed


def test_ball_noise_norms_and_uniformity():
    g = torch.Generator().manual_seed(0)
    v = ball_noise((20000,), 3, 0.5, g)
    r = v.norm(dim=-1)
    assert float(r.max()) <= 0.5 + 1e-12
    # uniform in the ball: P(||v|| <= 0.5 t) = t^d; t = 0.5 -> 1/8
    frac = float((r <= 0.25).double().mean())
    assert abs(frac - 0.125) < 4 * (0.125 * 0.875 / 20000) ** 0.5
    assert abs(float(v.mean(0).abs().max())) < 0.02


def test_noisy_embed_shapes_and_zero_noise():
    g = torch.Generator().manual_seed(1)
    O = P.orthogonal_patterns(6, 8, g)
    idx, _y = P.sample_D(10, 4, 6, g)
    X0 = noisy_embed(idx, O, 0.0, g)
    assert torch.equal(X0, P.embed(idx, O))
    X1 = noisy_embed(idx, O, 1.0, g)
    assert X1.shape == (10, 4, 8)
    assert float((X1 - X0).norm(dim=-1).max()) <= 1.0 + 1e-12
