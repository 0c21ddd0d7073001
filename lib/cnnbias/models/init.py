"""Per-run random initialization: run ``r`` draws only from its own generator ``gens[r]``.

So a run's initial weights do not depend on how many other runs are batched with it, nor on their
order (:func:`cnnbias.config.generators` seeds one generator per run).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["normal"]


def normal(gens: Sequence[torch.Generator], shape: Sequence[int], std: float = 1.0,
           dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``[R, *shape]`` with i.i.d. ``N(0, std^2)`` entries, row ``r`` drawn (on the CPU, in ``dtype``) from
    ``gens[r]``: ``std * torch.randn(shape, generator=gens[r])``."""
    if not gens or not all(isinstance(g, torch.Generator) for g in gens):
        raise ValueError("gens must be a non-empty sequence of torch.Generator, one per run")
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"shape must hold non-negative sizes, got {shape}")
    std = float(std)
    if not std >= 0:
        raise ValueError(f"std must be a number >= 0, got {std!r}")
    return torch.stack([std * torch.randn(shape, generator=g, dtype=dtype) for g in gens])
