"""One-hidden-layer fully connected network, batched over runs (the MLP baseline of Sec. 7 of
:cite:`maxpool_orthogonal`).

``N_FC(x) = sum_i v_i relu(w_i . x + b_i) + c`` for the flattened input ``x in R^{nd}``.  The paper
uses "a number of hidden neurons that results in the same number of parameters as ConvPool";
:func:`hidden_for_params` picks that width.  (Sec. 6 analyses a leaky-ReLU FC net, Eq. 8, with the
same structure; ``slope`` > 0 gives it.)

Shapes: parameters carry a leading run axis ``R``; inputs ``X [R, m, D]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from cnnbias import validate as V

__all__ = ["forward", "hidden_for_params", "init", "n_params"]


def n_params(hidden: int, in_dim: int) -> int:
    """Number of parameters ``h (D + 1) + h + 1`` (hidden weights and biases, readout and bias)."""
    V.integer("hidden", hidden, 1)
    V.integer("in_dim", in_dim, 1)
    return int(hidden) * (int(in_dim) + 1) + int(hidden) + 1


def hidden_for_params(target: int, in_dim: int) -> int:
    """The width whose :func:`n_params` is closest to ``target`` (at least 1)."""
    V.integer("target", target)
    V.integer("in_dim", in_dim)
    if int(target) < 1 or int(in_dim) < 1:
        raise ValueError(f"target and in_dim must be >= 1, got {target}, {in_dim}")
    return max(1, round((int(target) - 1) / (int(in_dim) + 2)))


def init(hidden: int, in_dim: int, gens: Sequence[torch.Generator], dtype: torch.dtype = torch.float64,
         device=None) -> dict[str, torch.Tensor]:
    """PyTorch's default (``nn.Linear``) initialization, uniform in ``+-1/sqrt(fan_in)``, per run
    from its own generator.  Returns ``{"W1": [R, h, D], "b1": [R, h], "v": [R, h], "c": [R]}``."""
    V.generators("gens", gens)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    V.integer("hidden", hidden)
    V.integer("in_dim", in_dim)
    if int(hidden) < 1 or int(in_dim) < 1 or len(gens) == 0:
        raise ValueError(f"need hidden >= 1, in_dim >= 1 and at least one generator; got {hidden}, {in_dim}, {len(gens)}")
    out = {"W1": [], "b1": [], "v": [], "c": []}
    s1, s2 = 1 / math.sqrt(in_dim), 1 / math.sqrt(hidden)
    def u(g, *shape, s):
        return (2 * torch.rand(*shape, generator=g, dtype=torch.float64) - 1) * s

    for g in gens:
        out["W1"].append(u(g, hidden, in_dim, s=s1))
        out["b1"].append(u(g, hidden, s=s1))
        out["v"].append(u(g, hidden, s=s2))
        out["c"].append(u(g, 1, s=s2)[0])
    return {k: torch.stack(v).to(dtype=dtype, device=device) for k, v in out.items()}


def forward(params: dict[str, torch.Tensor], X: torch.Tensor, slope: float = 0.0) -> torch.Tensor:
    """Outputs ``[R, m]`` for inputs ``X [R, m, D]`` (patches are flattened by the caller)."""
    if not isinstance(params, dict) or any(n not in params for n in ("W1", "b1", "v", "c")):
        raise ValueError("params must be a dict with keys W1, b1, v, c (see init)")
    W1, b1, v, c = params["W1"], params["b1"], params["v"], params["c"]
    V.floating_tensor("X", X)
    V.finite("slope", slope)
    if X.dim() != 3 or X.shape[0] != W1.shape[0] or X.shape[-1] != W1.shape[-1]:
        raise ValueError(f"X must have shape [R={W1.shape[0]}, m, D={W1.shape[-1]}], got {tuple(X.shape)}")
    h = torch.baddbmm(b1.unsqueeze(1), X.to(W1.dtype), W1.transpose(1, 2))  # [R, m, h]
    h = torch.nn.functional.leaky_relu(h, slope) if slope else torch.relu(h)
    return torch.einsum("rmh,rh->rm", h, v) + c.unsqueeze(1)
