"""Digit pattern detection (max-pooling paper, Sec. 7, Fig. 3c and Fig. 5).

An image is made of ``n`` (paper: four) handwritten digits, one per patch.  The discriminative
patterns are the digits ``pos`` (3, label +1) and ``neg`` (5, label -1); every image holds exactly
one discriminative digit at a random position, and its other ``n - 1`` patches are digits drawn
uniformly (with replacement) from the spurious images (all other digits).  Unlike the orthogonal
setting, two images of the same digit differ, so "patterns" are not orthogonal.

Digit images come from :func:`cnnbias.data.digits.load_digits` (MNIST when configured, else
scikit-learn's 8x8 digits).  :func:`split_pools` divides the images of every class between a
training and a test pool, so test images contain digit images never seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnnbias import validate as V
from cnnbias.data import require_generator

__all__ = ["DigitPools", "sample_digit_patterns", "split_pools"]


@dataclass
class DigitPools:
    """Flattened digit images ``[N, H*W]`` of the discriminative and spurious digits."""

    pos: torch.Tensor
    neg: torch.Tensor
    spurious: torch.Tensor
    shape: tuple[int, int]


def split_pools(images: torch.Tensor, labels: torch.Tensor, pos: int = 3, neg: int = 5,
                test_fraction: float = 0.5, generator: torch.Generator | None = None,
                ) -> tuple[DigitPools, DigitPools]:
    """Split each digit's images at random into a train and a test pool (``test_fraction`` to test)."""
    require_generator(generator)
    V.integer("pos", pos, 0, 9)
    V.integer("neg", neg, 0, 9)
    if pos == neg:
        raise ValueError(f"pos and neg must be different digits, got {pos} and {neg}")
    V.real("test_fraction", test_fraction)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    try:
        images = torch.as_tensor(images)
        labels = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError("images and labels must be tensors (or arrays): [N, H, W] and [N] integer digits") from None
    V.tensor("images", images, 3)
    V.tensor("labels", labels, 1, kind="int")
    if images.dim() != 3 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"images must be [N, H, W] with N = len(labels); got {tuple(images.shape)}")
    flat = images.reshape(images.shape[0], -1).to(torch.float64)
    perm = torch.randperm(images.shape[0], generator=generator)
    flat, labels = flat[perm], labels[perm]
    out = []
    for part in (0, 1):
        pools = {}
        for name, sel in (("pos", labels == pos), ("neg", labels == neg),
                          ("spurious", (labels != pos) & (labels != neg))):
            X = flat[sel]
            cut = round(X.shape[0] * (1 - test_fraction))
            if cut < 1 or cut >= X.shape[0]:
                raise ValueError(f"too few images of class {name} to split ({X.shape[0]})")
            pools[name] = X[:cut] if part == 0 else X[cut:]
        out.append(DigitPools(shape=tuple(images.shape[1:]), **pools))
    return out[0], out[1]


def sample_digit_patterns(m: int, pools: DigitPools, n: int = 4,
                          generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``m`` images of ``n`` digits: ``X [m, n, H*W]``, ``y [m]`` (+1 iff the image holds a ``pos`` digit)."""
    require_generator(generator)
    V.integer("m", m)
    V.integer("n", n)
    if not isinstance(pools, DigitPools):
        raise TypeError(f"pools must be a DigitPools (see split_pools), got {type(pools).__name__}")
    if int(m) < 1 or int(n) < 1:
        raise ValueError(f"m and n must be >= 1, got m={m}, n={n}")
    y = torch.where(torch.rand(m, generator=generator) < 0.5, 1.0, -1.0).to(torch.float64)
    ip = torch.randint(0, pools.pos.shape[0], (m,), generator=generator)
    ineg = torch.randint(0, pools.neg.shape[0], (m,), generator=generator)
    disc = torch.where(y[:, None] > 0, pools.pos[ip], pools.neg[ineg])  # [m, D]
    isp = torch.randint(0, pools.spurious.shape[0], (m, n), generator=generator)
    X = pools.spurious[isp].clone()  # [m, n, D]
    where = torch.randint(0, n, (m,), generator=generator)
    X[torch.arange(m), where] = disc
    return X, y
