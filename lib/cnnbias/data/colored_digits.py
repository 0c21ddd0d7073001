"""Colored-digits data of Section 8 / App. G of the PSI paper (book key ``psi_orthogonal``).

A point is n = 9 digit images; for y = +1 one of them (uniformly chosen) is colored blue and the other eight
green; for y = -1 the discriminative digit is red.  A digit image g in [0, 1]^{H x W} colored c in {R, G, B}
is the patch x[j] = vec of the [3, H, W] image whose channel c holds g and whose other channels are zero, so
d = 3HW (2352 for MNIST, 192 for scikit-learn's 8x8 digits).  Patches of different colors are orthogonal;
blue and red digits are the discriminative patterns (P+ and P-), green digits the spurious ones.

Points are stored compactly as digit ids ``[.., m, n]`` into a pool of images and colors ``[.., m, n]``
(0 = red, 1 = green, 2 = blue); :func:`embed_colored` builds the dense patches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from cnnbias import validate as V
from cnnbias.data import require_generator
from cnnbias.data.digits import load_digits

__all__ = [
    "BLUE",
    "GREEN",
    "RED",
    "ColoredPools",
    "embed_colored",
    "filters_as_images",
    "load_pools",
    "sample_colored",
    "stack_colored",
]

RED, GREEN, BLUE = 0, 1, 2


@dataclass
class ColoredPools:
    """Digit images for training and testing: ``train [N1, H, W]``, ``test [N2, H, W]`` and the source."""

    train: Tensor
    test: Tensor
    source: str

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.train.shape[1]), int(self.train.shape[2])

    @property
    def d(self) -> int:
        H, W = self.shape
        return 3 * H * W


def load_pools(root: str | None = None, n_train_sklearn: int = 1000) -> ColoredPools:
    """Train/test digit pools from :func:`cnnbias.data.digits.load_digits`.

    MNIST (``root`` or ``CNNBIAS_MNIST_DIR``): the MNIST train split for training points and the test split for
    test points, as in App. G.  scikit-learn's 8x8 digits (the fallback, 1797 images): the first
    ``n_train_sklearn`` images form the training pool, the rest the test pool.
    """
    V.integer("n_train_sklearn", n_train_sklearn, 1)
    imgs, _, source = load_digits(root, split="train")
    if source == "mnist":
        test, _, _ = load_digits(root, split="test")
        return ColoredPools(imgs, test, source)
    if not 0 < n_train_sklearn < imgs.shape[0]:
        raise ValueError(f"n_train_sklearn must lie in (0, {imgs.shape[0]}); got {n_train_sklearn}")
    return ColoredPools(imgs[:n_train_sklearn], imgs[n_train_sklearn:], source)


def sample_colored(m: int, pool_size: int, n: int = 9, generator: torch.Generator | None = None
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """m points: (digit ids [m, n] into a pool of ``pool_size`` images, colors [m, n], y [m]).

    y = +1 or -1 with probability 1/2; the n digits are drawn uniformly (distinct within a point) from the pool;
    a uniformly chosen position gets color blue (y = +1) or red (y = -1), the others green.
    """
    require_generator(generator)
    V.integer("m", m, 1)
    V.integer("n", n, 1)
    V.integer("pool_size", pool_size, 1)
    if int(pool_size) < n:
        raise ValueError(f"pool_size must be >= n={n}; got {pool_size}")
    y = torch.where(torch.rand(m, generator=generator) < 0.5, 1.0, -1.0).to(torch.float64)
    keys = torch.rand(m, pool_size, generator=generator)
    ids = torch.topk(keys, n, dim=1).indices  # n distinct digits, random order
    pos = torch.randint(0, n, (m,), generator=generator)
    colors = torch.full((m, n), GREEN, dtype=torch.int64)
    colors[torch.arange(m), pos] = torch.where(y > 0, BLUE, RED)
    return ids, colors, y


def stack_colored(m: int, pool_size: int, gens: Sequence[torch.Generator], n: int = 9
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """One draw of :func:`sample_colored` per run generator: ids [R, m, n], colors [R, m, n], y [R, m]."""
    V.generators("gens", gens)
    draws = [sample_colored(m, pool_size, n, g) for g in gens]
    return tuple(torch.stack([dr[i] for dr in draws]) for i in range(3))  # type: ignore[return-value]


def embed_colored(ids: Tensor, colors: Tensor, pool: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """Dense patches [..., n, 3*H*W]: the digit pool[ids] placed in color channel ``colors`` (RGB order)."""
    V.tensor("ids", ids, kind="int")
    V.tensor("colors", colors, kind="int")
    V.tensor("pool", pool, 3)
    if ids.shape != colors.shape:
        raise ValueError(f"ids and colors must have the same shape; got {tuple(ids.shape)} vs {tuple(colors.shape)}")
    if colors.numel() and (int(colors.min()) < 0 or int(colors.max()) > 2):
        raise ValueError("colors must lie in {0 (red), 1 (green), 2 (blue)}")
    V.index_in_range("ids", ids, pool.shape[0])
    H, W = pool.shape[1], pool.shape[2]
    g = pool[ids].to(dtype).reshape(*ids.shape, 1, H * W)  # [..., n, 1, HW]
    onehot = torch.nn.functional.one_hot(colors, 3).to(dtype)[..., None]  # [..., n, 3, 1]
    return (onehot * g).reshape(*ids.shape, 3 * H * W)


def filters_as_images(W: Tensor, H: int, Wd: int) -> Tensor:
    """App. G scaling for display: max{0, w} of every filter of one network ``W [C, 3HW]``, divided by the largest
    entry over all of the network's filters and multiplied by 255; returned as uint8 images [C, H, W, 3]."""
    V.integer("H", H, 1)
    V.integer("Wd", Wd, 1)
    V.floating_tensor("W", W)
    if W.dim() != 2 or W.shape[1] != 3 * H * Wd:
        raise ValueError(f"W must be [C, 3*H*W={3 * H * Wd}]; got {tuple(W.shape)}")
    P = W.clamp(min=0)
    top = P.max()
    P = P / top if top > 0 else P
    img = (P * 255).round().to(torch.uint8).reshape(W.shape[0], 3, H, Wd).permute(0, 2, 3, 1)
    return img
