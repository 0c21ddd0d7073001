"""Data: positions (Part I), orthogonal patterns and their distributions (Part II), XORD (Part III), digits.

Every sampler draws from a ``torch.Generator`` passed by the caller: the library never touches
torch's global random state, so a run's data depend only on its own seed
(:func:`cnnbias.config.run_seed`).
"""

import torch

__all__ = ["require_generator"]


def require_generator(generator, name: str = "generator") -> torch.Generator:
    """``generator`` if it is a ``torch.Generator``, else a ValueError naming the argument."""
    if not isinstance(generator, torch.Generator):
        raise ValueError(
            f"{name} must be a torch.Generator (e.g. torch.Generator().manual_seed(0)); the library never "
            f"uses torch's global random state; got {type(generator).__name__}")
    return generator
