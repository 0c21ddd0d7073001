"""Tests for cnnbias.config: scales, devices, dtypes, seeds."""

import pytest
import torch
from cnnbias import config


def test_scale_default_and_values(monkeypatch):
    monkeypatch.delenv("CNNBIAS_SCALE", raising=False)
    assert config.scale() == "book"
    for s in config.SCALES:
        monkeypatch.setenv("CNNBIAS_SCALE", s)
        assert config.scale() == s


def test_bad_scale_names_variable_and_allowed(monkeypatch):
    monkeypatch.setenv("CNNBIAS_SCALE", "huge")
    with pytest.raises(ValueError, match=r"CNNBIAS_SCALE.*smoke, book, paper"):
        config.scale()


def test_bad_device(monkeypatch):
    monkeypatch.setenv("CNNBIAS_DEVICE", "tpu")
    with pytest.raises(ValueError, match=r"CNNBIAS_DEVICE.*cpu, cuda"):
        config.device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="machine has a GPU")
def test_cuda_without_gpu_is_clear_error(monkeypatch):
    monkeypatch.setenv("CNNBIAS_DEVICE", "cuda")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        config.device()


def test_dtype(monkeypatch):
    monkeypatch.delenv("CNNBIAS_DTYPE", raising=False)
    assert config.dtype("cpu") == torch.float64
    assert config.dtype("cuda") == torch.float32
    monkeypatch.setenv("CNNBIAS_DTYPE", "float64")
    assert config.dtype("cuda") == torch.float64
    monkeypatch.setenv("CNNBIAS_DTYPE", "half")
    with pytest.raises(ValueError, match="CNNBIAS_DTYPE"):
        config.dtype("cpu")


def test_for_scale(monkeypatch):
    configs = {"smoke": {"R": 2}, "book": {"R": 10}, "paper": {"R": 100}}
    monkeypatch.setenv("CNNBIAS_SCALE", "smoke")
    assert config.for_scale(configs) == {"R": 2}
    monkeypatch.setenv("CNNBIAS_SCALE", "paper")
    assert config.for_scale(configs)["R"] == 100
    with pytest.raises(ValueError, match="missing"):
        config.for_scale({"book": {}}, name="fig2")


def test_seeds_deterministic_and_distinct():
    a = config.run_seed("exp", {"d": 100, "k": 5}, 3)
    assert a == config.run_seed("exp", {"k": 5, "d": 100}, 3)  # key order does not matter
    assert a != config.run_seed("exp", {"d": 100, "k": 5}, 4)
    assert a != config.run_seed("exp2", {"d": 100, "k": 5}, 3)
    assert 0 <= a < 2**63
    gens = config.generators("exp", {"d": 1}, 3)
    gens2 = config.generators("exp", {"d": 1}, 2, start=1)
    assert torch.equal(torch.rand(5, generator=gens[1]), torch.rand(5, generator=gens2[0]))
    with pytest.raises(ValueError, match="R"):
        config.generators("exp", {}, 0)
    with pytest.raises(ValueError, match="experiment"):
        config.run_seed("", {}, 0)


def test_describe():
    assert "scale=" in config.describe() and "dtype=" in config.describe()


def test_threads(monkeypatch):
    monkeypatch.delenv("CNNBIAS_THREADS", raising=False)
    assert config.threads() == 1
    monkeypatch.setenv("CNNBIAS_THREADS", "2")
    assert config.threads() == 2
    monkeypatch.setenv("CNNBIAS_THREADS", "zero")
    with pytest.raises(ValueError, match="CNNBIAS_THREADS"):
        config.threads()
