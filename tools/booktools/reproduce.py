"""Reproduce one claim of a chapter by executing that chapter at a chosen scale.

Claims that rest on a declared sweep are recomputed from their cells by ``python -m cnnbias
reproduce``; every other claim is computed by its chapter.  :func:`reproduce_claim` finds the
chapter whose stored outputs hold the claim, executes a copy of it (in the chapter's folder, the
stored notebook untouched) with ``CNNBIAS_SCALE`` (and optionally ``CNNBIAS_DEVICE``) set, and
returns the claim's new record beside the stored one at that scale, if the book stores one.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from booktools.claims import ClaimRecord, book_claims, read_claims
from booktools.execute import execute_notebook

__all__ = ["ChapterClaim", "chapter_of", "chapter_claim_ids", "execute_copy", "reproduce_claim", "compare"]

SCALES = ("smoke", "book", "paper")


@dataclass(frozen=True)
class ChapterClaim:
    """A claim recomputed by executing its chapter: the new record and the stored one (if any)."""

    record: ClaimRecord
    stored: ClaimRecord | None
    notebook: Path
    seconds: float


def chapter_claim_ids(root: str | os.PathLike) -> dict[str, Path]:
    """Every claim id recorded in the chapters' stored outputs -> its chapter (relative path)."""
    out: dict[str, Path] = {}
    for nb, recs in book_claims(root).items():
        for r in recs:
            out.setdefault(r.id, Path(nb))
    return out


def chapter_of(claim_id: str, root: str | os.PathLike) -> Path:
    """The chapter notebook (relative to ``root``) whose stored outputs hold ``claim_id``; LookupError
    naming close ids when none does."""
    ids = chapter_claim_ids(root)
    if claim_id in ids:
        return ids[claim_id]
    prefix = claim_id.split(".")[0] + "."
    near = sorted(i for i in ids if i.startswith(prefix))[:12]
    hint = f"; ids with prefix {prefix!r}: {', '.join(near)}" if near else ""
    raise LookupError(f"claim {claim_id!r} is not recorded in any chapter of the book{hint}")


def compare(new: ClaimRecord, old: ClaimRecord | None) -> str:
    """One line: does the recomputed record equal the stored one (status, measured values)?"""
    if old is None:
        return f"no stored record of {new.id} at scale {new.scale!r} to compare with"
    if (new.status, new.values, new.measured) == (old.status, old.values, old.measured):
        return f"identical to the stored record ({old.notebook}, scale {old.scale})"
    diff = [f"status {old.status} -> {new.status}"] if new.status != old.status else []
    diff += [f"{k}: {old.values.get(k)!r} -> {v!r}" for k, v in new.values.items() if old.values.get(k) != v]
    return "differs from the stored record: " + ("; ".join(diff) or f"measured {old.measured!r} -> {new.measured!r}")


def execute_copy(src: Path, scale: str, root: str | os.PathLike, device: str | None = None,
                 dtype: str | None = None, timeout: int = 1800) -> tuple[list[ClaimRecord], float]:
    """Execute a temporary copy of notebook ``src`` (in its folder) with ``CNNBIAS_SCALE=scale``; return
    the claim records of the executed copy and the wall time.  The copy is removed; ``src`` is untouched."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if device not in (None, "cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if dtype not in (None, "float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    src = Path(src)
    env = {"CNNBIAS_SCALE": scale, "CNNBIAS_PROGRESS": "0",
           # the python3 kernelspec runs `python`: make it this interpreter (e.g. the project's .venv)
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
           **({"CNNBIAS_DEVICE": device} if device else {}), **({"CNNBIAS_DTYPE": dtype} if dtype else {})}
    saved = {k: os.environ.get(k) for k in env}
    fd, tmp = tempfile.mkstemp(prefix=f".reproduce-{src.stem}-", suffix=".ipynb", dir=src.parent)
    os.close(fd)
    try:
        os.environ.update(env)
        Path(tmp).write_bytes(src.read_bytes())
        seconds = execute_notebook(Path(tmp), timeout=timeout)
        recs = read_claims(tmp, root)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        Path(tmp).unlink(missing_ok=True)
    rel = Path(os.path.relpath(src, root)).as_posix()
    return [ClaimRecord(rel, *[getattr(r, f) for f in ("id", "status", "statement", "values", "se", "tolerance",
                                                      "paper", "paper_value", "measured", "scale")])
            for r in recs], seconds


def reproduce_claim(claim_id: str, scale: str, root: str | os.PathLike, device: str | None = None,
                    dtype: str | None = None, timeout: int = 1800) -> ChapterClaim:
    """Execute a copy of the chapter holding ``claim_id`` at ``scale`` and return its record.

    The copy is written next to the chapter (its folder is the working directory of the kernel) under a
    temporary name and removed afterwards.  Raises LookupError for an unknown id, ValueError for a bad
    scale or device, :class:`~booktools.execute.ExecutionFailed` when a cell fails, and LookupError when
    the executed chapter did not record the claim at that scale.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    root = Path(root)
    rel = chapter_of(claim_id, root)
    src = root / rel
    stored = next((r for r in read_claims(src, root) if r.id == claim_id and r.scale == scale), None)
    recs, seconds = execute_copy(src, scale, root, device=device, dtype=dtype, timeout=timeout)
    recs = [r for r in recs if r.id == claim_id and r.scale == scale]
    if not recs:
        raise LookupError(f"{rel} executed at scale {scale!r} did not record claim {claim_id!r}")
    return ChapterClaim(recs[-1], stored, rel, seconds)
