"""Summary statistics used across chapters.

- :func:`mean_se`: mean and standard error of the mean, ``se = std / sqrt(R)`` (unbiased std).
- :func:`error_rate`: the 0-1 error with ties counted 1/2, as in Eq. (1) of the conv-linear paper:
  ``err = mean_i [ 1{y_i s_i < 0} + 1/2 1{s_i = 0} ]`` for scores ``s`` and labels ``y`` in {+1, -1}.
- :func:`spearman`: Spearman rank correlation (average ranks for ties).
- :func:`near_max_threshold`, :func:`argmax_robust`: the library's one definition of a near-tie in a
  maximum (relative tolerance :data:`TIE_RTOL`), so that which entry wins does not depend on the
  last bit of a float.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

__all__ = ["mean_se", "margin_errors", "error_rate", "accuracy", "spearman", "TIE_RTOL", "near_max_threshold", "argmax_robust",
           "holm_reject"]


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


def margin_errors(margins, dim: int = -1, rtol: float | None = None) -> torch.Tensor:
    """Per-example 0-1 error of margins ``z = y s`` with ties counted 1/2 (Eq. 1 of the conv-linear paper):
    ``1`` if ``z < -tol``, ``1/2`` if ``|z| <= tol``, ``0`` otherwise, with ``tol = rtol * max |z|`` along
    ``dim`` (``rtol`` defaults to :data:`TIE_RTOL`).

    The tolerance is the library's one definition of a tie at zero: a margin that is zero in exact
    arithmetic but computed as +-1e-17 by one CPU's kernels and as 0 by another's counts 1/2 on both.
    """
    z = _as_tensor(margins)
    r = TIE_RTOL if rtol is None else rtol
    if not r >= 0:
        raise ValueError(f"rtol must be a number >= 0, got {rtol!r}")
    if z.dim() == 0:
        z = z.reshape(1)
    tol = r * z.abs().amax(dim, keepdim=True)
    tie = z.abs() <= tol
    return torch.where(tie, torch.tensor(0.5, dtype=torch.float64), (z < 0).to(torch.float64))


def error_rate(scores, y, dim: int = -1, mask=None, rtol: float | None = None):
    """Error with ties counted 1/2: ``mean(margin_errors(y s))`` along ``dim`` (:func:`margin_errors`:
    a margin within ``rtol`` (default :data:`TIE_RTOL`) of the largest one in magnitude is a tie).

    ``scores`` and ``y`` broadcast (e.g. ``[R, m]`` scores against ``[m]`` or ``[R, m]`` labels);
    labels must be +1 or -1.  ``mask`` (0/1, broadcasting like the margins) averages over the examples
    it keeps, e.g. the real examples of runs padded to a common size.
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
    err = margin_errors(margin, dim, rtol)
    if mask is None:
        return err.mean(dim)
    mk = _as_tensor(mask).to(torch.float64)
    try:
        num, den = (err * mk).sum(dim), mk.expand_as(err).sum(dim)
    except RuntimeError:
        raise ValueError(f"mask {tuple(mk.shape)} must broadcast against the margins {tuple(err.shape)}") from None
    if bool((den <= 0).any()):
        raise ValueError("mask must keep at least one example along dim")
    return num / den


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


def holm_reject(p_values, alpha: float = 0.05) -> np.ndarray:
    """Holm's step-down test of a family of hypotheses at family-wise error ``alpha``.

    Sort the p-values ``p_(1) <= ... <= p_(m)``; reject ``H_(1), ..., H_(j-1)`` where ``j`` is the
    first index with ``p_(j) > alpha / (m - j + 1)``.  The chance of any false rejection is at most
    ``alpha`` whatever the dependence between the tests (Holm 1979).  Returns a boolean array, in the
    input order, True where the hypothesis is rejected.  A claim "holds at every n" tested as one family
    passes iff nothing is rejected.
    """
    p = np.asarray(p_values, dtype=float).ravel()
    if p.size == 0:
        raise ValueError("p_values must hold at least one p-value")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p_values must lie in [0, 1] (no NaN)")
    if not (isinstance(alpha, numbers.Real) and 0 < alpha < 1):
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    order = np.argsort(p, kind="stable")
    m = p.size
    reject = np.zeros(m, dtype=bool)
    for rank, i in enumerate(order):
        if p[i] > alpha / (m - rank):
            break
        reject[i] = True
    return reject


TIE_RTOL = 1e-12
"""Relative tolerance of a near-tie in a maximum; ``z`` ties with the maximum ``M`` when
``z >= M - TIE_RTOL * |M|``.  Large against last-bit rounding (1e-16 relative per operation),
small against the gaps between distinct weights, so it moves no decision that was not a tie."""


def near_max_threshold(mx: torch.Tensor, rtol: float = TIE_RTOL) -> torch.Tensor:
    """``mx - rtol * |mx|``: entries ``>=`` this tie with the maximum ``mx`` (NaN stays NaN).

    The one definition of a near-tie used by :func:`argmax_robust` and by the one-hot max-pool
    (:mod:`cnnbias.models.maxpool`, whose compiled kernel computes the same two roundings)."""
    if not rtol >= 0:
        raise ValueError(f"rtol must be >= 0, got {rtol!r}")
    return mx - rtol * mx.abs()


def argmax_robust(z: torch.Tensor, dim: int = -1, rtol: float = TIE_RTOL) -> torch.Tensor:
    """Index of the maximum along ``dim``, near-ties (:func:`near_max_threshold`) going to the
    *first* index, so the answer does not flip with the last bit of the values.  A slice with a
    NaN gives index 0."""
    if not isinstance(z, torch.Tensor) or z.dim() == 0 or z.shape[dim] == 0:
        raise ValueError("argmax_robust needs a tensor with a non-empty dimension dim")
    thr = near_max_threshold(z.amax(dim, keepdim=True), rtol)
    hit = z >= thr
    # first True along dim (0 when none: a NaN slice)
    return hit.to(torch.uint8).argmax(dim)
