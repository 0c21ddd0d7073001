"""Run configuration: scale, device, dtype and per-run seeds.

Every experiment in the book is described by one dict per *scale*:

- ``smoke``: tiny sizes, for unit tests only;
- ``book`` (default): what the stored notebook outputs show, as close to the papers as fits in the
  book's time budget on a 2-core CPU;
- ``paper``: the papers' own settings, meant for a GPU.

The scale comes from ``CNNBIAS_SCALE``, the device from ``CNNBIAS_DEVICE`` (``cpu`` or ``cuda``;
default: CUDA when available).  Computations run in float64 on the CPU, so that printed numbers
are stable across machines, and in float32 on CUDA unless ``CNNBIAS_DTYPE=float64``.

Threads.  On the CPU the library runs torch with ``CNNBIAS_THREADS`` intra-op threads (default 1),
set when :mod:`cnnbias` is imported.  One thread makes float64 reductions independent of the
machine's core count (so stored outputs are the same everywhere), and the book's tensors are small
enough that a second thread buys little while an oversubscribed CPU (several kernels at once) makes
OpenMP barriers cost 5-10x.  Batched runs, not threads, are the book's source of speed.

Seeds.  Run ``r`` of an experiment draws its data and initialization from its own generator,
seeded by a hash of ``(experiment name, config, r)``.  A run's result therefore does not depend on
how many other runs are trained with it, nor on their order: the batched engine and a loop over
runs give the same numbers (tested in ``tests/test_engine.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

import torch

from cnnbias import validate as V

SCALES: tuple[str, ...] = ("smoke", "book", "paper")
DEVICES: tuple[str, ...] = ("cpu", "cuda")
DTYPES: tuple[str, ...] = ("float64", "float32")

__all__ = [
    "SCALES",
    "threads",
    "apply_threads",
    "scale",
    "device",
    "dtype",
    "for_scale",
    "run_seed",
    "generators",
    "describe",
]


def threads() -> int:
    """Intra-op CPU threads for torch, from ``CNNBIAS_THREADS`` (default 1)."""
    value = os.environ.get("CNNBIAS_THREADS", "1").strip() or "1"
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"CNNBIAS_THREADS={value!r} must be a positive integer (number of CPU threads)")
    return int(value)


def apply_threads() -> int:
    """Set torch's intra-op thread count to :func:`threads`; returns it."""
    n = threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def scale() -> str:
    """The current scale, from ``CNNBIAS_SCALE`` (default ``book``)."""
    value = os.environ.get("CNNBIAS_SCALE", "book").strip().lower() or "book"
    if value not in SCALES:
        raise ValueError(
            f"CNNBIAS_SCALE={value!r} is not a valid scale; allowed values: {', '.join(SCALES)}"
        )
    return value


def device() -> torch.device:
    """The compute device, from ``CNNBIAS_DEVICE`` (default: ``cuda`` when available, else ``cpu``)."""
    value = os.environ.get("CNNBIAS_DEVICE", "").strip().lower()
    if not value:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if value not in DEVICES:
        raise ValueError(
            f"CNNBIAS_DEVICE={value!r} is not a valid device; allowed values: {', '.join(DEVICES)}"
        )
    if value == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "CNNBIAS_DEVICE=cuda but torch sees no CUDA GPU on this machine; "
            "unset CNNBIAS_DEVICE or set it to 'cpu'"
        )
    return torch.device(value)


def dtype(dev: torch.device | str | None = None) -> torch.dtype:
    """Floating dtype: float64 on CPU; float32 on CUDA unless ``CNNBIAS_DTYPE=float64``."""
    if dev is not None and not isinstance(dev, (torch.device, str)):
        raise TypeError(f"dev must be None, a torch.device or a device string such as 'cpu', got {type(dev).__name__}")
    try:
        dev = torch.device(dev) if dev is not None else device()
    except RuntimeError:
        raise ValueError(f"dev must name a torch device such as 'cpu' or 'cuda', got {dev!r}") from None
    forced = os.environ.get("CNNBIAS_DTYPE", "").strip().lower()
    if forced:
        if forced not in DTYPES:
            raise ValueError(
                f"CNNBIAS_DTYPE={forced!r} is not valid; allowed values: {', '.join(DTYPES)}"
            )
        return getattr(torch, forced)
    return torch.float64 if dev.type == "cpu" else torch.float32


def for_scale(configs: Mapping[str, Mapping[str, Any]], name: str | None = None) -> dict[str, Any]:
    """Pick the settings of the current scale from ``configs = {"smoke": ..., "book": ..., "paper": ...}``.

    ``name`` (optional) names the experiment in error messages.  Every scale must be present, so that
    each experiment states its settings for all three scales in one place.
    """
    if not isinstance(configs, Mapping):
        raise TypeError(f"configs must be a dict with keys {', '.join(SCALES)}, got {type(configs).__name__}")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be None or a string naming the experiment, got {type(name).__name__}")
    what = f" for experiment {name!r}" if name else ""
    missing = [s for s in SCALES if s not in configs]
    extra = [s for s in configs if s not in SCALES]
    if missing or extra:
        raise ValueError(
            f"configs{what} must have exactly the keys {', '.join(SCALES)}; "
            f"missing: {missing or 'none'}, unknown: {extra or 'none'}"
        )
    chosen = configs[scale()]
    if not isinstance(chosen, Mapping):
        raise ValueError(f"configs[{scale()!r}]{what} must be a dict of settings, got {type(chosen).__name__}")
    return dict(chosen)


def _canonical(config: Mapping[str, Any] | None) -> str:
    return json.dumps(config or {}, sort_keys=True, default=repr, separators=(",", ":"))


def run_seed(experiment: str, config: Mapping[str, Any] | None, r: int) -> int:
    """A 63-bit seed for run ``r`` of ``experiment`` under ``config`` (sha256 of the three)."""
    if not isinstance(experiment, str) or not experiment:
        raise ValueError("experiment must be a non-empty string naming the experiment")
    V.integer("r", r, 0)
    if config is not None and not isinstance(config, Mapping):
        raise TypeError(f"config must be None or a dict of settings, got {type(config).__name__}")
    payload = f"{experiment}|{_canonical(config)}|{int(r)}".encode()
    return int.from_bytes(hashlib.sha256(payload).digest()[:8], "little") & ((1 << 63) - 1)


def generators(
    experiment: str, config: Mapping[str, Any] | None, R: int, start: int = 0
) -> list[torch.Generator]:
    """One CPU ``torch.Generator`` per run ``start, ..., start + R - 1``, seeded by :func:`run_seed`."""
    V.integer("R", R, 1)
    V.integer("start", start, 0)
    gens = []
    for r in range(start, start + int(R)):
        g = torch.Generator(device="cpu")
        g.manual_seed(run_seed(experiment, config, r))
        gens.append(g)
    return gens


def describe() -> str:
    """One line saying which scale, device, dtype and torch version produced the outputs."""
    dev = device()
    return (
        f"scale={scale()} device={dev.type} dtype={str(dtype(dev)).replace('torch.', '')} "
        f"torch={torch.__version__.split('+')[0]}"
    )
