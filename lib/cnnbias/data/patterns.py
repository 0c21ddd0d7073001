"""Orthogonal-pattern detection problems (max-pooling paper Sec. 3; PSI paper Sec. 3 and App. E).

An input ``x = (x[1], ..., x[n])`` consists of n patches, each a pattern from an orthonormal set
``O = {o_1, ..., o_l}`` in R^d.  We refer to patterns by index (0-based):

- pattern 0 is the positive pattern (``o_1`` / ``p_1``), present exactly in the points with y = +1;
- pattern 1 is the negative pattern (``o_2`` / ``p_2``), present exactly in the points with y = -1;
- patterns 2, ..., l-1 are spurious.

A dataset is ``idx: LongTensor [m, n]`` (the pattern index of each patch) and ``y: [m]`` in {+1, -1};
:func:`embed` turns indices into vectors.  With one-hot patterns (``P = I_d``) the dot product
``w . x[j]`` is ``w[idx[j]]``, a gather (see :mod:`cnnbias.models.maxpool`).

Distributions (labels are +1 or -1 with probability 1/2 each; the discriminative pattern is placed
at a uniformly random position):

- :func:`sample_D` (max-pooling paper, Sec. 3): the other n-1 patches i.i.d. uniform over the
  spurious patterns (with replacement);
- :func:`sample_Du` (PSI paper, App. E.2): n-1 distinct spurious patterns, uniformly without
  replacement from {2, ..., d-1};
- :func:`sample_Dvc` (PSI paper, App. E.2, d = 2n): for j = 1..n-1 one of the two patterns
  ``p_{2j+1}, p_{2j+2}`` (0-based indices 2j, 2j+1) uniformly; its support is the shattered set B
  of Theorem 5.1 (Remark E.1);
- :func:`sample_Dp` (PSI paper, App. E.5): given y = +1, pattern 2 with probability p else
  pattern 3; given y = -1, pattern 2 with probability 1-p else pattern 3; the remaining n-2
  patches without replacement from {4, ..., d-1}.

All of Du, Dvc satisfy ``E[y 1{p_i in x}] = 0`` for every spurious pattern (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from cnnbias.data import require_generator

__all__ = [
    "orthogonal_patterns",
    "one_hot_patterns",
    "sample_D",
    "sample_Du",
    "sample_Dvc",
    "sample_Dp",
    "stack_runs",
    "embed",
    "contains",
]


def _check_int(name: str, value, low: int) -> int:
    try:
        ok = not isinstance(value, (bool, str, bytes)) and int(value) == value
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok or int(value) < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def orthogonal_patterns(
    l: int, d: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """``l`` orthonormal rows in R^d: the first l rows of a Haar-random orthogonal matrix.

    Drawn as the Q factor of a Gaussian matrix with the signs of diag(R) absorbed (which makes Q
    Haar distributed).  Requires ``l <= d``.
    """
    require_generator(generator)
    l = _check_int("l", l, 1)
    d = _check_int("d", d, 1)
    if l > d:
        raise ValueError(f"l={l} orthogonal patterns do not fit in R^d with d={d}; need l <= d")
    g = torch.randn(d, d, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(g)
    q = q * torch.sign(torch.diagonal(r))[None, :]
    return q.T[:l].contiguous().to(dtype)


def one_hot_patterns(d: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The d one-hot patterns ``e_1, ..., e_d`` (rows of ``I_d``), as in the PSI experiments."""
    d = _check_int("d", d, 1)
    return torch.eye(d, dtype=dtype)


def _labels(m: int, generator) -> torch.Tensor:
    return torch.where(torch.rand(m, generator=generator) < 0.5, 1.0, -1.0).to(torch.float64)


def _place_discriminative(spurious: torch.Tensor, y: torch.Tensor, generator) -> torch.Tensor:
    """Insert pattern 0 (y=+1) or 1 (y=-1) at a uniformly random position of each row."""
    m, n1 = spurious.shape
    n = n1 + 1
    disc = torch.where(y > 0, 0, 1).to(torch.int64)
    pos = torch.randint(0, n, (m,), generator=generator)
    idx = torch.empty(m, n, dtype=torch.int64)
    cols = torch.arange(n)[None, :]
    before = cols < pos[:, None]
    # spurious entries fill every column except pos, in order
    src = torch.where(before, cols, cols - 1).clamp(min=0, max=max(n1 - 1, 0))
    if n1 > 0:
        idx[:] = torch.gather(spurious, 1, src.expand(m, n))
    idx[torch.arange(m), pos] = disc
    return idx


def sample_D(m: int, n: int, l: int, generator: torch.Generator | None = None):
    """m points of the max-pooling paper's distribution D (Sec. 3): spurious patches i.i.d. uniform
    over patterns {2, ..., l-1}.  Returns ``(idx [m, n], y [m])``."""
    require_generator(generator)
    m = _check_int("m", m, 1)
    n = _check_int("n", n, 1)
    l = _check_int("l", l, 3)
    y = _labels(m, generator)
    spurious = torch.randint(2, l, (m, n - 1), generator=generator)
    return _place_discriminative(spurious, y, generator), y


def _without_replacement(m: int, k: int, pool: torch.Tensor, generator) -> torch.Tensor:
    """m rows of k distinct entries of ``pool``, uniformly at random, in random order."""
    keys = torch.rand(m, pool.numel(), generator=generator)
    return pool[torch.argsort(keys, dim=1)[:, :k]]


def sample_Du(m: int, n: int, d: int, generator: torch.Generator | None = None):
    """m points of D_u (PSI App. E.2): n-1 distinct spurious patterns from {2, ..., d-1}."""
    require_generator(generator)
    m = _check_int("m", m, 1)
    n = _check_int("n", n, 2)
    d = _check_int("d", d, 3)
    if n - 1 > d - 2:
        raise ValueError(f"D_u needs n-1 <= d-2 distinct spurious patterns; got n={n}, d={d}")
    y = _labels(m, generator)
    spurious = _without_replacement(m, n - 1, torch.arange(2, d), generator)
    return _place_discriminative(spurious, y, generator), y


def sample_Dvc(m: int, n: int, generator: torch.Generator | None = None):
    """m points of D_vc (PSI App. E.2; d = 2n patterns): slot j in 1..n-1 holds pattern 2j or 2j+1
    (0-based), each with probability 1/2.  The support is the set B of Theorem 5.1 (Remark E.1)."""
    require_generator(generator)
    m = _check_int("m", m, 1)
    n = _check_int("n", n, 2)
    y = _labels(m, generator)
    j = torch.arange(1, n)
    bit = torch.randint(0, 2, (m, n - 1), generator=generator)
    spurious = 2 * j[None, :] + bit
    # positions are arbitrary in the paper (the network is permutation invariant); shuffle them
    spurious = torch.gather(spurious, 1, torch.argsort(torch.rand(m, n - 1, generator=generator), dim=1))
    return _place_discriminative(spurious, y, generator), y


def sample_Dp(m: int, n: int, d: int, p: float, generator: torch.Generator | None = None):
    """m points of D_p (PSI App. E.5).

    Given y=+1 pattern 2 w.p. p else pattern 3; given y=-1 pattern 2 w.p. 1-p else pattern 3; the
    other n-2 spurious patches distinct, from {4, ..., d-1}.  Thus ``E[y 1{p_2 in x}] = p - 1/2``.
    """
    require_generator(generator)
    m = _check_int("m", m, 1)
    n = _check_int("n", n, 2)
    d = _check_int("d", d, 4)
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    if n - 2 > d - 4:
        raise ValueError(f"D_p needs n-2 <= d-4 distinct spurious patterns; got n={n}, d={d}")
    y = _labels(m, generator)
    u = torch.rand(m, generator=generator)
    prob2 = torch.where(y > 0, p, 1.0 - p)
    first = torch.where(u < prob2, 2, 3).to(torch.int64)
    rest = _without_replacement(m, n - 2, torch.arange(4, d), generator)
    spurious = torch.cat([first[:, None], rest], dim=1)
    spurious = torch.gather(spurious, 1, torch.argsort(torch.rand(m, n - 1, generator=generator), dim=1))
    return _place_discriminative(spurious, y, generator), y


def stack_runs(
    sampler: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    gens: Sequence[torch.Generator],
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one dataset per run, each from its own generator: ``(idx [R, m, n], y [R, m])``."""
    if len(gens) == 0:
        raise ValueError("gens must hold one generator per run (got none)")
    if not callable(sampler):
        raise TypeError(f"sampler must be a callable such as sample_D, got {type(sampler).__name__}")
    draws = [sampler(generator=g, **kwargs) for g in gens]
    return torch.stack([a for a, _ in draws]), torch.stack([b for _, b in draws])


def embed(idx: torch.Tensor, patterns: torch.Tensor) -> torch.Tensor:
    """Pattern vectors of each patch: ``patterns[idx]`` with shape ``idx.shape + (d,)``."""
    if not isinstance(idx, torch.Tensor) or idx.dtype != torch.int64:
        raise ValueError("idx must be an int64 tensor of pattern indices")
    if not isinstance(patterns, torch.Tensor) or patterns.dim() != 2:
        raise ValueError(f"patterns must be a tensor [l, d] (one pattern per row), got "
                         f"{getattr(patterns, 'shape', type(patterns).__name__)}")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= patterns.shape[0]):
        raise ValueError(f"idx holds pattern indices outside [0, {patterns.shape[0]})")
    return patterns[idx]


def contains(idx: torch.Tensor, num_patterns: int) -> torch.Tensor:
    """Indicator ``1{p_i in x}``: float tensor ``idx.shape[:-1] + (num_patterns,)``."""
    num_patterns = _check_int("num_patterns", num_patterns, 1)
    if not isinstance(idx, torch.Tensor) or idx.dtype != torch.int64 or idx.dim() == 0:
        raise ValueError("idx must be an int64 tensor [..., n] of pattern indices")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= num_patterns):
        raise ValueError(f"idx holds pattern indices outside [0, num_patterns={num_patterns})")
    out = torch.zeros(idx.shape[:-1] + (num_patterns,), dtype=torch.float64)
    out.scatter_(-1, idx, 1.0)
    return out
