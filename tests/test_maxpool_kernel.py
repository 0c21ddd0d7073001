"""The compiled one-hot max-pool kernel (cnnbias._ext) against the pure-torch reference path.

The kernel must give the same bits as the reference in float64 (forward responses, backward
gradients, whole trainings), whatever the CPU's torch kernel path (ATEN_CPU_CAPABILITY)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from cnnbias import _ext
from cnnbias.engine import Batch, StopRule, logistic, train
from cnnbias.models import maxpool
from cnnbias.stats import TIE_RTOL, argmax_robust, near_max_threshold

needs_kernel = pytest.mark.skipif(
    _ext.mode() == "ref" or _ext.maxpool_onehot() is None, reason=f"compiled kernel unavailable: {_ext.status()}"
)


def _inputs(seed, R, C, d, m, n, kind="randn"):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(R, C, d, generator=g, dtype=torch.float64)
    if kind == "ties":  # many exact ties: values on a coarse grid
        W = torch.round(W * 2) / 2
    elif kind == "near":  # near-ties: pairs of patterns within a few ulps to 1e-13 of each other
        W[..., 1::2] = W[..., 0::2][..., : W[..., 1::2].shape[-1]] * (1 + 1e-13 * torch.rand(R, C, d // 2, generator=g))
    idx = torch.randint(0, d, (R, m, n), generator=g)
    up = torch.randn(R, m, C, generator=g, dtype=torch.float64)
    return W, idx, up


def _fwd_bwd(W, idx, up, path):
    W = W.clone().requires_grad_(True)
    h = maxpool.onehot_maxpool(W, idx, path=path)
    (gW,) = torch.autograd.grad((h * up).sum(), W)
    return h.detach(), gW


def _same_bits(a, b):
    return torch.equal(a, b) and torch.equal(torch.signbit(a), torch.signbit(b))


@needs_kernel
@pytest.mark.parametrize(
    "shape,kind",
    [
        ((3, 5, 7, 9, 3), "randn"),
        ((4, 6, 3, 200, 4), "randn"),  # d = 3: every pattern hit by many points (long index_add chains)
        ((2, 8, 6, 50, 5), "ties"),
        ((3, 7, 8, 40, 4), "near"),
        ((1, 100, 20, 12, 4), "randn"),
        ((5, 4, 10, 6, 1), "randn"),  # one patch
    ],
)
def test_kernel_is_bit_identical_to_reference(shape, kind):
    W, idx, up = _inputs(sum(shape), *shape, kind=kind)
    h_ref, g_ref = _fwd_bwd(W, idx, up, "ref")
    h_k, g_k = _fwd_bwd(W, idx, up, "kernel")
    # responses: the same numbers; a zero response is +0.0 from the kernel, while torch's relu keeps
    # -0.0 and torch.maximum(-0.0, 0.0) differs between its vector body and scalar tail (so the
    # sign of a zero response carries no meaning)
    assert torch.equal(h_ref, h_k)
    assert not torch.signbit(h_k).any()
    assert _same_bits(g_ref, g_k)


@needs_kernel
def test_kernel_propagates_nan_like_reference():
    W, idx, up = _inputs(0, 2, 3, 5, 6, 3)
    W[0, 1, :] = float("nan")
    W[1, 2, 0] = float("inf")
    h_ref, g_ref = _fwd_bwd(W, idx, up, "ref")
    h_k, g_k = _fwd_bwd(W, idx, up, "kernel")
    assert torch.isnan(h_ref[0, :, 1]).all()
    assert torch.equal(h_ref.isnan(), h_k.isnan()) and torch.equal(h_ref.nan_to_num(), h_k.nan_to_num())
    assert torch.equal(g_ref.isnan(), g_k.isnan()) and torch.equal(g_ref.nan_to_num(), g_k.nan_to_num())


def _train(R=6, steps=300, path_env="auto", monkeypatch=None):
    g = torch.Generator().manual_seed(11)
    C, d, m, n = 8, 10, 30, 4
    idx = torch.randint(0, d, (R, m, n), generator=g)
    y = torch.where(torch.rand(R, m, generator=g) < 0.5, 1.0, -1.0).double()
    W = 0.3 * torch.randn(R, C, d, generator=g, dtype=torch.float64)
    a = torch.randn(R, C, generator=g, dtype=torch.float64)

    def loss_fn(p, b: Batch):
        return logistic(b.take(y) * maxpool.forward(p["W"], p["a"], idx=b.take(idx))).mean(-1)

    monkeypatch.setenv("CNNBIAS_KERNEL", path_env)
    return train(loss_fn, {"W": W, "a": a}, lr=0.5, stop=StopRule(max_epochs=steps))


@needs_kernel
def test_training_is_bit_identical_with_kernel_and_reference(monkeypatch):
    ref = _train(path_env="ref", monkeypatch=monkeypatch)
    ker = _train(path_env="compiled", monkeypatch=monkeypatch)
    for k in ("W", "a"):
        assert torch.equal(ref.params[k], ker.params[k])
    assert torch.equal(ref.final_loss, ker.final_loss)


_CHILD = """
import json, torch
from cnnbias.models import maxpool
g = torch.Generator().manual_seed(5)
W = torch.randn(4, 9, 12, generator=g, dtype=torch.float64).requires_grad_(True)
idx = torch.randint(0, 12, (4, 40, 4), generator=g)
h = maxpool.onehot_maxpool(W, idx, path="kernel")
(gW,) = torch.autograd.grad((h * torch.linspace(-1, 1, 9, dtype=torch.float64)).sum(), W)
print(json.dumps({"h": h.detach().flatten().tolist(), "g": gW.flatten().tolist(),
                  "cap": torch.backends.cpu.get_cpu_capability()}))
"""


@needs_kernel
def test_kernel_is_independent_of_the_cpu_kernel_path():
    # the same computation here (native capability) and in a child process on torch's generic path
    here = {}
    exec(_CHILD.replace("print(", "here['out'] = ("), {"here": here})
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    res = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True)
    child = json.loads(res.stdout.strip().splitlines()[-1])
    native = json.loads(here["out"])
    assert child["cap"] == "DEFAULT"
    assert native["h"] == child["h"] and native["g"] == child["g"]


def test_reference_mode_and_validation(monkeypatch):
    monkeypatch.setenv("CNNBIAS_KERNEL", "ref")
    assert _ext.maxpool_onehot() is None
    assert "reference" in _ext.status()
    W, idx, up = _inputs(1, 2, 3, 5, 4, 2)
    h = maxpool.onehot_maxpool(W, idx)  # falls back to the reference path
    assert torch.equal(h, maxpool.onehot_maxpool(W, idx, path="ref"))
    with pytest.raises(RuntimeError, match="not available"):
        maxpool.onehot_maxpool(W, idx, path="kernel")
    monkeypatch.setenv("CNNBIAS_KERNEL", "fast")
    with pytest.raises(ValueError, match="CNNBIAS_KERNEL='fast'.*auto, ref, compiled"):
        _ext.mode()
    with pytest.raises(ValueError, match="path='x'"):
        maxpool.onehot_maxpool(W, idx, path="x")


def test_float32_uses_the_reference_path():
    W, idx, up = _inputs(2, 2, 3, 5, 4, 2)
    h32 = maxpool.onehot_maxpool(W.float(), idx)
    assert h32.dtype == torch.float32
    assert torch.equal(h32, maxpool.onehot_maxpool(W.float(), idx, path="ref"))


def test_argmax_robust_near_ties_go_to_the_first_index():
    z = torch.tensor(
        [[1.0, 2.0, 2.0 * (1 + TIE_RTOL / 4), 0.5], [3.0, 1.0, 3.0 * (1 + 10 * TIE_RTOL), 3.0], [0.0, 0.0, -1.0, 0.0]],
        dtype=torch.float64,
    )
    assert argmax_robust(z).tolist() == [1, 2, 0]
    assert argmax_robust(torch.tensor([[float("nan"), 1.0]])).tolist() == [0]
    assert near_max_threshold(torch.tensor([2.0], dtype=torch.float64)).item() == 2.0 - 2.0 * TIE_RTOL
    with pytest.raises(ValueError, match="rtol"):
        near_max_threshold(torch.tensor([1.0]), rtol=-1.0)
