"""Compiled CPU kernels, built once per machine with ``torch.utils.cpp_extension.load``.

:func:`maxpool_onehot` returns the fused one-hot max-pool kernel (``maxpool_onehot.cpp``: forward
and backward in one pass each over the ``[R, m, C]`` responses), or ``None`` when it cannot be
used, in which case callers use the pure-torch reference path (bit-identical in float64, tested in
``tests/test_maxpool_kernel.py``).

- Built on first use (or ahead of time by ``python -m cnnbias._ext``, e.g. from ``make setup``)
  into ``<repo>/.cache/torch_extensions/<python>-<torch>/`` (gitignored; ``CNNBIAS_EXT_DIR``
  overrides), with plain ``-O2 -ffp-contract=off``: no ``-march=native``, no ``-ffast-math``, so
  the binary and its rounding are the same on every x86-64 CPU.  Needs a C++ compiler and ninja.
- ``CNNBIAS_KERNEL``: ``auto`` (default: the compiled kernel if it builds, else the reference path),
  ``ref`` (always the reference path), ``compiled`` (raise if the kernel cannot be built).
- A failed build is remembered for the process (no retry per call); :func:`status` says why.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("cnnbias")

_SOURCE = Path(__file__).with_name("maxpool_onehot.cpp")
_CFLAGS = ["-O2", "-ffp-contract=off", "-fno-fast-math"]
MODES = ("auto", "ref", "compiled")
_state: dict = {"mod": None, "tried": False, "why": "not built yet"}


def mode() -> str:
    """The kernel mode from ``CNNBIAS_KERNEL`` (validated)."""
    m = os.environ.get("CNNBIAS_KERNEL", "auto") or "auto"
    if m not in MODES:
        raise ValueError(f"CNNBIAS_KERNEL={m!r} is not supported; allowed values: {', '.join(MODES)}")
    return m


def build_dir() -> Path:
    """Where the compiled kernel lives: ``$CNNBIAS_EXT_DIR`` or ``<repo>/.cache/torch_extensions/<py>-<torch>``."""
    import torch

    tag = f"py{sys.version_info.major}{sys.version_info.minor}-torch{torch.__version__.replace('+', '_')}"
    env = os.environ.get("CNNBIAS_EXT_DIR")
    if env:
        return Path(env) / tag
    repo = Path(__file__).resolve().parents[3]
    root = repo / ".cache" if (repo / "pyproject.toml").exists() else Path.home() / ".cache" / "cnnbias"
    return root / "torch_extensions" / tag


def _say(msg: str) -> None:
    # a terminal gets the message; a notebook kernel (stderr not a tty) only logs it, so stored
    # notebook outputs never depend on whether the kernel was already built
    log.info(msg)
    if sys.stderr.isatty():
        print(f"cnnbias: {msg}", file=sys.stderr, flush=True)


def build(verbose: bool = False):
    """Compile (or load the already compiled) kernel; returns the module or raises."""
    import torch.utils.cpp_extension as cpp

    d = build_dir()
    d.mkdir(parents=True, exist_ok=True)
    fresh = not any(d.glob("*.so"))
    if fresh:
        _say(f"compiling the one-hot max-pool kernel once for this machine into {d} (about 30 s) ...")
    mod = cpp.load(
        name="cnnbias_maxpool_onehot",
        sources=[str(_SOURCE)],
        extra_cflags=_CFLAGS,
        build_directory=str(d),
        verbose=verbose,
    )
    if fresh:
        _say("kernel compiled")
    return mod


def maxpool_onehot():
    """The compiled kernel module, or ``None`` (mode ``ref``, or ``auto`` and the build failed)."""
    m = mode()
    if m == "ref":
        return None
    if not _state["tried"]:
        _state["tried"] = True
        try:
            _state["mod"] = build()
            _state["why"] = "compiled kernel loaded"
        except Exception as exc:  # no compiler, no ninja, read-only tree: fall back to the reference
            _state["why"] = f"build failed ({type(exc).__name__}: {str(exc).strip().splitlines()[-1:]})"
            log.warning("cnnbias: one-hot max-pool kernel unavailable, using the torch reference path: %s",
                        _state["why"])
    if _state["mod"] is None and m == "compiled":
        raise RuntimeError(f"CNNBIAS_KERNEL=compiled but the kernel cannot be used: {_state['why']}")
    return _state["mod"]


def status() -> str:
    """One line: which max-pool path is used and why."""
    m = mode()
    if m == "ref":
        return "reference torch path (CNNBIAS_KERNEL=ref)"
    maxpool_onehot()
    return _state["why"] if _state["mod"] is not None else f"reference torch path: {_state['why']}"
