"""Summary statistics used across chapters.

- :func:`mean_se`: mean and standard error of the mean, ``se = std / sqrt(R)`` (unbiased std).
- :func:`error_rate`: the 0-1 error with ties counted 1/2, as in Eq. (1) of the conv-linear paper:
  ``err = mean_i [ 1{y_i s_i < 0} + 1/2 1{s_i = 0} ]`` for scores ``s`` and labels ``y`` in {+1, -1}.
- :func:`spearman`: Spearman rank correlation (average ranks for ties).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

__all__ = ["mean_se", "error_rate", "accuracy", "spearman"]


def mean_se(x, dim: int = 0):
    """Mean and standard error along ``dim`` (numpy arrays or tensors; returns the same kind).

    With a single sample the standard error is 0 (there is nothing to estimate it from).
    """
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"dim must be an integer axis, got {dim!r}")
    if isinstance(x, torch.Tensor):
        if not -max(x.dim(), 1) <= dim < max(x.dim(), 1) or x.dim() == 0:
            raise ValueError(f"dim must be an axis of x (x has shape {tuple(x.shape)}), got {dim}")
        n = x.shape[dim]
        if n == 0:
            raise ValueError("mean_se needs at least one sample along dim")
        mean = x.mean(dim)
        se = x.std(dim, unbiased=True) / math.sqrt(n) if n > 1 else torch.zeros_like(mean)
        return mean, se
    arr = np.asarray(x, dtype=float)
    if not -max(arr.ndim, 1) <= dim < max(arr.ndim, 1) or arr.ndim == 0:
        raise ValueError(f"dim must be an axis of x (x has shape {arr.shape}), got {dim}")
    n = arr.shape[dim]
    if n == 0:
        raise ValueError("mean_se needs at least one sample along dim")
    mean = arr.mean(axis=dim)
    se = arr.std(axis=dim, ddof=1) / math.sqrt(n) if n > 1 else np.zeros_like(mean)
    return mean, se


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def error_rate(scores, y, dim: int = -1):
    """Error with ties counted 1/2: ``mean(1{y s < 0} + 0.5 * 1{s == 0})`` along ``dim``.

    ``scores`` and ``y`` broadcast (e.g. ``[R, m]`` scores against ``[m]`` or ``[R, m]`` labels);
    labels must be +1 or -1.
    """
    s = _as_tensor(scores)
    yy = _as_tensor(y).to(s.dtype if s.is_floating_point() else torch.float64)
    if not torch.all((yy == 1) | (yy == -1)):
        raise ValueError("y must contain only labels +1 and -1")
    if s.is_floating_point() and not bool(torch.isfinite(s).all()) and bool(torch.isnan(s).any()):
        raise ValueError("scores must not contain NaN (a NaN score is neither right nor wrong)")
    try:
        margin = yy * s
    except RuntimeError:
        raise ValueError(f"scores {tuple(s.shape)} and y {tuple(yy.shape)} must broadcast") from None
    err = (margin < 0).to(torch.float64) + 0.5 * (s == 0).to(torch.float64)
    return err.mean(dim)


def accuracy(scores, y, dim: int = -1):
    """``1 - error_rate(scores, y)`` (ties count 1/2)."""
    return 1.0 - error_rate(scores, y, dim)


def spearman(x, y) -> float:
    """Spearman rank correlation of two 1-d samples (NaN-free, same length >= 3)."""
    from scipy.stats import spearmanr

    a = np.asarray(x, dtype=float).ravel()
    b = np.asarray(y, dtype=float).ravel()
    if a.shape != b.shape or a.size < 3:
        raise ValueError("spearman needs two samples of equal length >= 3")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("spearman needs NaN-free samples x and y")
    return float(spearmanr(a, b).statistic)
