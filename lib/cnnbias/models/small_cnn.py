"""The three-layer digit CNN of :cite:`xord`, Sec. 6.2, batched over runs, and the filter-clustering compression.

Network: a 3x3 convolution with ``C`` channels (stride 1, no padding, with bias), ReLU, 2x2 max-pooling (stride 2,
floor), and a fully connected layer to 10 classes.  For an ``H x W`` image the pooled map has
``P = floor((H-2)/2) * floor((W-2)/2)`` cells per channel.  Parameters carry a leading run axis:

    conv [R, C, 9], bias [R, C], fc [R, C * P, 10] (channel-major), fcb [R, 10]

Compression (Sec. 6.2): cluster the ``C`` trained filters (with their biases, as points of R^10) by k-means into 4
clusters, use the centres as the filters of a 4-channel network, and train only its fully connected layer.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cnnbias import validate as V

_KEYS = ("conv", "bias", "fc", "fcb")


def _check_params(params: dict[str, Tensor]) -> None:
    if not isinstance(params, dict) or any(n not in params for n in _KEYS):
        raise ValueError(f"params must be a dict with keys {_KEYS} (see init_params)")
    V.floating_tensor("params['conv']", params["conv"], 3)
    if params["conv"].shape[-1] != 9:
        raise ValueError(f"params['conv'] must have shape [R, C, 9] (3x3 filters), got {tuple(params['conv'].shape)}")


def _check_images(images: Tensor, R: int) -> None:
    V.tensor("images", images, (3, 4))
    if images.dtype.is_complex or images.dtype == torch.bool:
        raise ValueError(f"images must be a real tensor, got dtype {images.dtype}")
    if images.ndim == 4 and images.shape[0] != R:
        raise ValueError(f"images must be [m, H, W] (shared) or [R={R}, m, H, W], got {tuple(images.shape)}")
    if images.shape[-1] < 4 or images.shape[-2] < 4:
        raise ValueError(f"images must be at least 4x4, got {tuple(images.shape[-2:])}")


def pooled_cells(H: int, W: int) -> int:
    """Number of cells per channel after the 3x3 convolution and 2x2 max-pooling."""
    V.integer("H", H)
    V.integer("W", W)
    if H < 4 or W < 4:
        raise ValueError(f"images must be at least 4x4, got {H}x{W}")
    return ((H - 2) // 2) * ((W - 2) // 2)


def init_params(C: int, H: int, W: int, gens: list[torch.Generator], dtype: torch.dtype = torch.float64
                ) -> dict[str, Tensor]:
    """PyTorch-default-like uniform initialization (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``) for each run from its
    own generator: ``{"conv", "bias", "fc", "fcb"}`` with a leading run axis."""
    V.integer("C", C, 1)
    V.generators("gens", gens)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    P = pooled_cells(H, W)
    out = {"conv": [], "bias": [], "fc": [], "fcb": []}
    for g in gens:
        b1, b2 = 1 / 3.0, 1 / math.sqrt(C * P)
        out["conv"].append((torch.rand(C, 9, generator=g, dtype=dtype) * 2 - 1) * b1)
        out["bias"].append((torch.rand(C, generator=g, dtype=dtype) * 2 - 1) * b1)
        out["fc"].append((torch.rand(C * P, 10, generator=g, dtype=dtype) * 2 - 1) * b2)
        out["fcb"].append((torch.rand(10, generator=g, dtype=dtype) * 2 - 1) * b2)
    return {k: torch.stack(v) for k, v in out.items()}


def features(params: dict[str, Tensor], images: Tensor) -> Tensor:
    """Pooled ReLU feature maps ``[R, m, C * P]`` (channel-major) of per-run images ``[R, m, H, W]`` (or a shared
    batch ``[m, H, W]``).  The R runs' convolutions are one grouped ``conv2d`` (runs as groups)."""
    import torch.nn.functional as F

    _check_params(params)
    _check_images(images, params["conv"].shape[0])
    R, C, _ = params["conv"].shape
    w = params["conv"].reshape(R * C, 1, 3, 3)
    if images.ndim == 3:  # shared by all runs
        z = F.conv2d(images[:, None], w)  # [m, R*C, h, w]
    else:
        z = F.conv2d(images.transpose(0, 1), w, groups=R)
    z = z + params["bias"].reshape(1, R * C, 1, 1)
    z = torch.relu(F.max_pool2d(z, 2))  # max-pool and ReLU commute
    m = z.shape[0]
    return z.reshape(m, R, -1).transpose(0, 1)


def logits(params: dict[str, Tensor], images: Tensor) -> Tensor:
    """Class scores ``[R, m, 10]``."""
    return torch.bmm(features(params, images), params["fc"]) + params["fcb"][:, None, :]


def cross_entropy(params: dict[str, Tensor], images: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy per run ``[R]`` (``images [R, m, H, W]``, ``labels [R, m]``).

    Cheap checks only (the engine calls this every step): the labels' dtype and shape; their range 0..9
    is checked by the training drivers and :func:`test_error`."""
    V.tensor("labels", labels, kind="int")
    if tuple(labels.shape) != tuple(images.shape[:-2]) or images.ndim != 4:
        raise ValueError(f"images [R, m, H, W] and labels [R, m] must agree, got {tuple(images.shape)} and "
                         f"{tuple(labels.shape)}")
    lo = logits(params, images)
    return torch.nn.functional.cross_entropy(lo.reshape(-1, 10), labels.reshape(-1), reduction="none").reshape(
        labels.shape).mean(-1)


def test_error(params: dict[str, Tensor], images: Tensor, labels: Tensor, chunk: int | None = None) -> Tensor:
    """0-1 test error per run ``[R]`` on a test set shared by all runs (``images [N, H, W]``, ``labels [N]``).
    Evaluated in chunks of images (default: at most ~5e7 feature-map entries at a time)."""
    _check_params(params)
    R, C, _ = params["conv"].shape
    _check_images(images, R)
    if images.ndim != 3:
        raise ValueError(f"images must be a test set [N, H, W] shared by all runs, got {tuple(images.shape)}")
    V.tensor("labels", labels, shape=(images.shape[0],), kind="int")
    V.index_in_range("labels", labels, 10)
    if images.shape[0] == 0:
        raise ValueError("images must hold at least one test image")
    if chunk is not None:
        V.integer("chunk", chunk, 1)
    if chunk is None:
        per_image = R * C * (images.shape[-2] - 2) * (images.shape[-1] - 2)
        chunk = max(1, min(1000, int(5e7 // per_image)))
    wrong = torch.zeros(R, dtype=params["conv"].dtype, device=params["conv"].device)
    images, labels = images.to(params["conv"]), labels.to(params["conv"].device)
    with torch.no_grad():
        for s in range(0, len(labels), chunk):
            pred = logits(params, images[s : s + chunk]).argmax(-1)
            wrong += (pred != labels[s : s + chunk][None]).sum(-1).to(wrong.dtype)
    return (wrong / len(labels)).cpu()


def to_device(params: dict[str, Tensor], device: torch.device | str, dtype: torch.dtype) -> dict[str, Tensor]:
    """Move a parameter dict to ``device`` / ``dtype``."""
    _check_params(params)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    return {k: v.to(device, dtype) for k, v in params.items()}


def compressed_params(centres: Tensor, H: int, W: int, gens: list[torch.Generator]) -> dict[str, Tensor]:
    """A 4-channel (``centres.shape[1]``-channel) network whose filters are the cluster centres and whose fully
    connected layer is freshly initialized from each run's generator (on the CPU, in float64)."""
    V.floating_tensor("centres", centres, 3)
    if centres.shape[-1] != 10:
        raise ValueError(f"centres must have shape [R, C, 10] (9 filter weights and a bias), got {tuple(centres.shape)}")
    V.generators("gens", gens, centres.shape[0])
    C = centres.shape[1]
    centres = centres.cpu().double()
    p = init_params(C, H, W, gens, centres.dtype)
    p["conv"] = centres[..., :9].clone()
    p["bias"] = centres[..., 9].clone()
    return p
