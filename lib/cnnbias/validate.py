"""Argument checks shared by the public API: every failure is a ValueError (or TypeError) that
names the argument and its allowed values.

Each helper returns its argument *unchanged* (so a checked call computes exactly what the unchecked
one did) and is NaN-safe: comparisons are written so that NaN fails them (``not x > 0``).
Value checks over a whole tensor (:func:`labels_pm1`, :func:`index_in_range`, :func:`finite_tensor`)
cost O(size): use them at the API boundary, never inside a training loop.

Layer: alongside :mod:`cnnbias.config` and :mod:`cnnbias.stats` (imports only numpy and torch).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "integer",
    "real",
    "positive",
    "nonnegative",
    "finite",
    "probability",
    "choice",
    "tensor",
    "floating_tensor",
    "finite_tensor",
    "labels_pm1",
    "index_in_range",
    "generator",
    "generators",
]


def _is_int(x: Any) -> bool:
    if isinstance(x, (bool, np.bool_)):
        return False
    if isinstance(x, numbers.Integral):
        return True
    return isinstance(x, torch.Tensor) and x.dim() == 0 and not x.dtype.is_floating_point \
        and not x.dtype.is_complex and x.dtype != torch.bool


def _range_text(lo, hi, lo_open: bool = False, hi_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi}"
    return "any value"


def integer(name: str, x: Any, lo: int | None = None, hi: int | None = None) -> Any:
    """``x`` must be an integer (not a bool, not a float) with ``lo <= x <= hi`` (bounds optional)."""
    if not _is_int(x):
        raise TypeError(f"{name} must be an integer {_range_text(lo, hi)}, got {x!r} "
                        f"({type(x).__name__})")
    v = int(x)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name} must be an integer {_range_text(lo, hi)}, got {v}")
    return x


def _as_float(name: str, x: Any, what: str) -> float:
    if isinstance(x, (bool, np.bool_)) or isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be {what}, got {x!r} ({type(x).__name__})")
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise TypeError(f"{name} must be {what} (a number), got a tensor of shape {tuple(x.shape)}")
        return float(x)
    try:
        return float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be {what}, got {x!r} ({type(x).__name__})") from None


def real(name: str, x: Any, lo: float | None = None, hi: float | None = None, *,
         lo_open: bool = False, hi_open: bool = False) -> Any:
    """``x`` must be a finite real number in the given range (NaN and +-inf always fail)."""
    what = f"a finite number {_range_text(lo, hi, lo_open, hi_open)}"
    v = _as_float(name, x, what)
    ok = math.isfinite(v)
    if ok and lo is not None:
        ok = v > lo if lo_open else v >= lo
    if ok and hi is not None:
        ok = v < hi if hi_open else v <= hi
    if not ok:
        raise ValueError(f"{name} must be {what}, got {x!r}")
    return x


def positive(name: str, x: Any) -> Any:
    """``x`` must be a finite number ``> 0``."""
    return real(name, x, 0, lo_open=True)


def nonnegative(name: str, x: Any) -> Any:
    """``x`` must be a finite number ``>= 0``."""
    return real(name, x, 0)


def finite(name: str, x: Any) -> Any:
    """``x`` must be a finite number."""
    return real(name, x)


def probability(name: str, x: Any, *, open_: bool = False) -> Any:
    """``x`` must lie in [0, 1] (or (0, 1) with ``open_``)."""
    return real(name, x, 0, 1, lo_open=open_, hi_open=open_)


def choice(name: str, x: Any, allowed: Iterable[Any]) -> Any:
    """``x`` must be one of ``allowed``."""
    allowed = tuple(allowed)
    try:
        ok = x in allowed
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {x!r}")
    return x


def tensor(name: str, x: Any, ndim: int | Sequence[int] | None = None, *,
           shape: Sequence[int | None] | None = None, kind: str | None = None) -> Any:
    """``x`` must be a torch.Tensor with ``ndim`` dimensions (an int or a tuple of allowed values),
    a given ``shape`` (``None`` entries free) and dtype ``kind`` ('float', 'int' or 'bool')."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if ndim is not None:
        nd = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.dim() not in nd:
            raise ValueError(f"{name} must have {' or '.join(map(str, nd))} dimensions, got shape "
                             f"{tuple(x.shape)}")
    if shape is not None:
        if x.dim() != len(shape) or any(s is not None and s != t for s, t in zip(shape, x.shape)):
            want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
            raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    if kind is not None:
        ok = {"float": x.dtype.is_floating_point,
              "int": not x.dtype.is_floating_point and not x.dtype.is_complex and x.dtype != torch.bool,
              "bool": x.dtype == torch.bool}[kind]
        if not ok:
            raise ValueError(f"{name} must be a {kind} tensor, got dtype {x.dtype}")
    return x


def floating_tensor(name: str, x: Any, ndim: int | Sequence[int] | None = None, **kw) -> Any:
    """A floating-point tensor (see :func:`tensor`)."""
    return tensor(name, x, ndim, kind="float", **kw)


def finite_tensor(name: str, x: Any) -> Any:
    """``x`` (a tensor) must hold no NaN or inf.  O(size)."""
    tensor(name, x)
    if x.dtype.is_floating_point and x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must hold only finite values (found NaN or inf)")
    return x


def labels_pm1(name: str, y: Any) -> Any:
    """``y`` must be a tensor of labels in {-1, +1} (labels in {0, 1} are rejected).  O(size)."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of labels in {{-1, +1}}, got {type(y).__name__}")
    if y.numel() and not bool(((y == 1) | (y == -1)).all()):
        vals = torch.unique(y.detach().flatten().cpu())[:6].tolist()
        raise ValueError(f"{name} must hold only labels -1 and +1; found values {vals}"
                         + (" (labels in {0, 1}? map them with 2*y - 1)" if set(vals) <= {0, 1} else ""))
    return y


def index_in_range(name: str, idx: Any, n: int) -> Any:
    """``idx`` must be an integer tensor with every entry in ``[0, n)``.  O(size)."""
    tensor(name, idx, kind="int")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise ValueError(f"{name} must hold indices in [0, {n}); found values in "
                         f"[{int(idx.min())}, {int(idx.max())}]")
    return idx


def generator(name: str, g: Any, *, optional: bool = False) -> Any:
    """``g`` must be a torch.Generator (or None when ``optional``)."""
    if g is None and optional:
        return g
    if not isinstance(g, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator{' or None' if optional else ''}, "
                        f"got {type(g).__name__}")
    return g


def generators(name: str, gens: Any, n: int | None = None) -> Any:
    """``gens`` must be a non-empty sequence of torch.Generator (of length ``n`` when given)."""
    if isinstance(gens, torch.Generator) or not isinstance(gens, Sequence):
        raise TypeError(f"{name} must be a list of torch.Generator (one per run), got {type(gens).__name__}")
    if len(gens) == 0:
        raise ValueError(f"{name} must hold at least one torch.Generator (one per run), got none")
    if n is not None and len(gens) != n:
        raise ValueError(f"{name} must hold {n} generators (one per run), got {len(gens)}")
    for i, g in enumerate(gens):
        if not isinstance(g, torch.Generator):
            raise TypeError(f"{name}[{i}] must be a torch.Generator, got {type(g).__name__}")
    return gens
