"""Real handwritten digits, with nothing downloaded.

:func:`load_digits` returns MNIST when the user points it at the IDX files (argument ``root`` or
environment variable ``CNNBIAS_MNIST_DIR``), and scikit-learn's bundled 8x8 digits (1,797 images,
UCI optical digits) otherwise.

MNIST IDX format (LeCun et al.): a big-endian header ``0x00 0x00 <type> <ndim>``, then ``ndim``
32-bit big-endian sizes, then the data.  Images are type 0x08 (unsigned byte), ndim 3
(N, 28, 28); labels are type 0x08, ndim 1 (N).  Files may be gzip-compressed (``.gz``).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

__all__ = ["load_digits", "read_idx", "write_idx", "MNIST_FILES"]

#: (images, labels) file stems of the two MNIST splits.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (raw or gzip).  A malformed file raises ValueError naming it."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike naming an IDX file, got {type(path).__name__}")
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read IDX file {path}: {e}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; truncated -> EOFError
            raise ValueError(f"{path}: corrupt or truncated gzip file ({type(e).__name__}: {e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES or ndim < 1:
        raise ValueError(f"{path}: unsupported IDX data type 0x{code:02x} or ndim {ndim}")
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    shape = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    dt = np.dtype(_IDX_TYPES[code])
    expected = int(np.prod(shape)) * dt.itemsize
    body = raw[4 + 4 * ndim :]
    if len(body) != expected:
        raise ValueError(f"{path}: header says shape {shape} ({expected} bytes) but the file has {len(body)} data bytes")
    return np.frombuffer(body, dtype=dt).reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzip when the name ends in .gz); used by the tests.

    The values must be integers in 0..255 (anything else would wrap or truncate silently)."""
    a = np.asarray(array)
    if a.ndim < 1 or a.ndim > 255:
        raise ValueError(f"array must have 1..255 dimensions, got shape {a.shape}")
    if a.dtype != np.uint8:
        if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)) or (
            a.size and (not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 255 or np.any(a != np.round(a)))
        ):
            raise ValueError(f"array must hold integers in 0..255 (written as unsigned bytes), got dtype {a.dtype}")
    array = np.ascontiguousarray(a, dtype=np.uint8)
    data = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def _code(dt: np.dtype) -> int:
    return next((c for c, t in _IDX_TYPES.items() if np.dtype(t) == dt), 0)


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (root / name).is_file():
            return root / name
    raise ValueError(f"MNIST directory {root} has no file {stem} (or {stem}.gz)")


def load_digits(root: str | os.PathLike | None = None, split: str = "train"):
    """Handwritten digits as ``(images float32 [N, H, W] in [0, 1], labels int64 [N], source)``.

    ``root`` (or ``CNNBIAS_MNIST_DIR``) names a folder with the MNIST IDX files; ``split`` is
    ``"train"`` or ``"test"``.  Without one, scikit-learn's bundled 8x8 digits are returned (the
    same set for either split; ``source == "sklearn-8x8"``); callers split them themselves.
    """
    if not isinstance(split, str) or split not in MNIST_FILES:
        raise ValueError(f"split must be one of {', '.join(MNIST_FILES)}, got {split!r}")
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be None or a str / os.PathLike folder, got {type(root).__name__}")
    root = root if root is not None else os.environ.get("CNNBIAS_MNIST_DIR") or None
    if root is not None:
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"CNNBIAS_MNIST_DIR / root {str(root)!r} is not a directory")
        img_path, lab_path = (_find(root, s) for s in MNIST_FILES[split])
        images, labels = read_idx(img_path), read_idx(lab_path)
        if images.dtype != np.uint8:
            raise ValueError(
                f"{img_path}: image data type is {images.dtype.name} (IDX type code 0x{_code(images.dtype):02x}); "
                "only unsigned-byte images (0x08, values 0..255) are supported (they are scaled by 1/255)"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{lab_path}: labels must be an integer IDX type (0x08), got data type {labels.dtype.name}")
        if images.ndim != 3:
            raise ValueError(f"{img_path}: expected a 3-d image array (N, H, W), got shape {images.shape}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"{lab_path}: expected {images.shape[0]} labels, got shape {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(f"{lab_path}: labels must be digits 0..9")
        x = torch.from_numpy(images.astype(np.float32) / 255.0)
        return x, torch.from_numpy(labels.astype(np.int64)), "mnist"
    from sklearn.datasets import load_digits as _sk

    bunch = _sk()
    x = torch.from_numpy((bunch.images / 16.0).astype(np.float32))
    return x, torch.from_numpy(bunch.target.astype(np.int64)), "sklearn-8x8"
