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
