"""Noisy orthogonal patterns (max-pooling paper, Sec. 7, Fig. 3b and Fig. 4).

Each patch is its pattern plus an independent noise vector ``v`` with ``||v|| <= noise``:
``x[j] = o_{idx[j]} + v_j``.  The paper says only "independent random noise v ... where
||v|| <= 1.0"; we draw ``v`` uniformly from the ball of radius ``noise`` in R^d (direction uniform
on the sphere, radius ``noise * U^(1/d)``), so in R^20 most noise vectors have norm close to
``noise``.  With noise the data are no longer linearly separable in general, while the
discriminative pattern is still present in every image.
"""

from __future__ import annotations

import torch

from cnnbias import validate as V
from cnnbias.data import require_generator
from cnnbias.data.patterns import embed

__all__ = ["ball_noise", "noisy_embed"]


def ball_noise(shape: tuple[int, ...], d: int, radius: float, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """I.i.d. vectors uniform in the ball ``{v in R^d : ||v|| <= radius}``: ``shape + (d,)``."""
    require_generator(generator)
    V.nonnegative("radius", radius)
    V.integer("d", d, 1)
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (tuple, list, torch.Size)):
        raise TypeError(f"shape must be a tuple of integers >= 0, got {shape!r}")
    for s_ in shape:
        V.integer("shape[i]", s_, 0)
    g = torch.randn(*shape, d, generator=generator, dtype=torch.float64)
    g = g / g.norm(dim=-1, keepdim=True).clamp(min=1e-300)
    rad = radius * torch.rand(*shape, 1, generator=generator, dtype=torch.float64) ** (1.0 / d)
    return (g * rad).to(dtype)


def noisy_embed(idx: torch.Tensor, patterns: torch.Tensor, noise: float,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """``X = patterns[idx] + v`` with ``v`` i.i.d. uniform in the ball of radius ``noise``.

    ``idx`` has any shape ``[..., n]``; returns ``idx.shape + (d,)`` in the patterns' dtype.
    ``noise = 0`` returns the clean embedding.
    """
    require_generator(generator)
    V.nonnegative("noise", noise)
    X = embed(idx, patterns)
    if noise == 0:
        return X
    return X + ball_noise(tuple(idx.shape), patterns.shape[1], noise, generator, patterns.dtype)
