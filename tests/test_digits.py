"""Tests for cnnbias.data.digits: IDX reading (raw and gzip), malformed files, fallback."""

import numpy as np
import pytest
import torch
from cnnbias.data import digits


def _write_split(root, n=6, gz=False):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labs = rng.integers(0, 10, size=n, dtype=np.uint8)
    ext = ".gz" if gz else ""
    digits.write_idx(root / f"train-images-idx3-ubyte{ext}", imgs)
    digits.write_idx(root / f"train-labels-idx1-ubyte{ext}", labs)
    return imgs, labs


@pytest.mark.parametrize("gz", [False, True])
def test_reads_mnist_idx(tmp_path, gz):
    imgs, labs = _write_split(tmp_path, gz=gz)
    x, y, src = digits.load_digits(tmp_path)
    assert src == "mnist"
    assert x.shape == (6, 28, 28) and x.dtype == torch.float32
    assert torch.allclose(x, torch.from_numpy(imgs.astype(np.float32) / 255))
    assert y.tolist() == labs.tolist()


def test_env_variable(tmp_path, monkeypatch):
    _write_split(tmp_path)
    monkeypatch.setenv("CNNBIAS_MNIST_DIR", str(tmp_path))
    assert digits.load_digits()[2] == "mnist"


def test_fallback_is_bundled_sklearn(monkeypatch):
    monkeypatch.delenv("CNNBIAS_MNIST_DIR", raising=False)
    x, y, src = digits.load_digits()
    assert src == "sklearn-8x8" and x.shape == (1797, 8, 8)
    assert float(x.min()) >= 0 and float(x.max()) <= 1 and set(y.tolist()) == set(range(10))


def test_malformed_files(tmp_path):
    _write_split(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04junk")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*magic"):
        digits.load_digits(tmp_path)
    digits.write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((6, 28, 28), np.uint8))
    raw = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(raw[:-10])
    with pytest.raises(ValueError, match="data bytes"):
        digits.load_digits(tmp_path)
    digits.write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="labels"):
        digits.load_digits(tmp_path)


def test_missing_dir_and_files(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        digits.load_digits(tmp_path / "nope")
    with pytest.raises(ValueError, match="no file"):
        digits.load_digits(tmp_path)
    with pytest.raises(ValueError, match="split"):
        digits.load_digits(split="valid")


def _raw_idx(code: int, arr: np.ndarray) -> bytes:
    import struct

    return bytes([0, 0, code, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()


@pytest.mark.parametrize("code,dt", [(0x0D, ">f4"), (0x0C, ">i4"), (0x0E, ">f8"), (0x09, "i1")])
def test_non_byte_images_rejected(tmp_path, code, dt):
    """Float32 / int32 images must not be divided by 255 as if they were bytes."""
    _write_split(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_raw_idx(code, np.zeros((6, 28, 28), dtype=dt)))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*unsigned-byte"):
        digits.load_digits(tmp_path)


def test_float_labels_rejected(tmp_path):
    _write_split(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_raw_idx(0x0D, np.zeros(6, dtype=">f4")))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.*integer"):
        digits.load_digits(tmp_path)


def test_truncated_gzip_names_file(tmp_path):
    _write_split(tmp_path, gz=True)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz.*(corrupt|truncated)"):
        digits.load_digits(tmp_path)
    p.write_bytes(b"\x1f\x8b" + b"garbage" * 5)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz"):
        digits.read_idx(p)


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        digits.load_digits(split="validation")
    with pytest.raises(TypeError, match="root"):
        digits.load_digits(root=3)
    with pytest.raises(TypeError, match="path"):
        digits.read_idx(None)
    with pytest.raises(ValueError, match="0..255"):
        digits.write_idx("unused", np.array([256, 1]))
    with pytest.raises(ValueError, match="0..255"):
        digits.write_idx("unused", np.array([0.5]))
