"""The convolution + ReLU + max-pooling network, batched over runs.

Eq. (1) of the max-pooling paper: for non-overlapping filters ``w_c in R^d`` and readout ``a``,

    N_CNN(x) = sum_c a_c max_j sigma(w_c . x[j]),     sigma(z) = max(z, 0).

With the readout fixed to +1 on the first k channels ``w^(i)`` and -1 on the last k channels
``u^(i)`` (C = 2k), this is N_W of the PSI paper (its Eq. 1) and the XORD network (XORD paper,
Eq. 1):  ``N_W(x) = sum_i [max_j sigma(w^(i) . x[j]) - max_j sigma(u^(i) . x[j])]``.

Shapes: ``W: [R, C, d]`` (R runs), inputs either dense ``X: [R, m, n, d]`` or, for one-hot
patterns, pattern indices ``idx: [R, m, n]``; then ``w_c . x[j] = W[r, c, idx[r, i, j]]`` is a
gather, and no ``[.., d]``-sized input is ever formed.  For any other finite pattern set
``P: [l, d]`` (or one per run, ``[R, l, d]``: orthogonal patterns, XORD's {+-1}^2) pass
``patterns=P`` with ``idx``: the filter-pattern products ``G = W P^T`` (``[R, C, l]``) are formed
once and gathered, which equals the dense forward pass on ``P[idx]``.

Since ``max_j sigma(z_j) = sigma(max_j z_j)``, the responses are ``relu(max_j z_j)``; the gradient
goes to the maximizing patch, as the papers' updates do.  On the one-hot path a near-tie (within the
relative tolerance of :func:`cnnbias.stats.near_max_threshold`) goes to the *first* maximizing patch,
so which pattern receives the gradient does not depend on the last bit of the weights.

The one-hot path runs a compiled kernel (:mod:`cnnbias._ext`, one pass forward and one backward,
built once per machine) for float64 CPU tensors, and otherwise the pure-torch reference
``_OneHotMaxPool``; both give the same bits (``tests/test_maxpool_kernel.py``).
"""

from __future__ import annotations

import torch

from cnnbias import _ext
from cnnbias.stats import TIE_RTOL, near_max_threshold

__all__ = ["onehot_maxpool", "responses", "forward", "forward_fixed", "fixed_readout", "dot_products", "pattern_products"]


def _check_inputs(W: torch.Tensor, X: torch.Tensor | None, idx: torch.Tensor | None) -> None:
    """Shapes and dtypes of the filters and of exactly one of the two input forms."""
    if W.dim() != 3:
        raise ValueError(f"W must have shape [R, C, d], got {tuple(W.shape)}")
    if (X is None) == (idx is None):
        raise ValueError("pass exactly one of X (dense patches [R, m, n, d]) or idx (one-hot indices [R, m, n])")
    R, _, d = W.shape
    if X is not None:
        if X.dim() != 4 or X.shape[0] != R or X.shape[-1] != d:
            raise ValueError(f"X must have shape [R={R}, m, n, d={d}], got {tuple(X.shape)}")
        return
    if idx.dim() != 3 or idx.shape[0] != R:
        raise ValueError(f"idx must have shape [R={R}, m, n], got {tuple(idx.shape)}")
    if idx.dtype != torch.int64:
        raise ValueError("idx must be int64 pattern indices")
    if idx.numel() > 0:
        lo, hi = (int(v) for v in torch.aminmax(idx))
        if lo < 0 or hi >= d:
            raise ValueError(
                f"idx holds pattern indices in [{lo}, {hi}]; they must lie in [0, d) = [0, {d}) "
                "(d = W.shape[2], or the number of patterns l with patterns=)"
            )


def dot_products(W: torch.Tensor, X: torch.Tensor | None = None, idx: torch.Tensor | None = None) -> torch.Tensor:
    """All ``w_c . x[j]``: ``[R, m, n, C]`` for ``W [R, C, d]`` and ``X [R, m, n, d]`` or ``idx [R, m, n]``.

    Dense inputs use one batched matrix product ``[R, m n, d] @ [R, d, C]``; one-hot indices gather
    rows of ``W^T`` (``[R, d, C]``), so the cost is ``O(R m n C)`` whatever d is.
    """
    _check_inputs(W, X, idx)
    R, C, d = W.shape
    if X is not None:
        m, n = X.shape[1], X.shape[2]
        z = torch.bmm(X.reshape(R, m * n, d).to(W.dtype), W.transpose(1, 2))
        return z.reshape(R, m, n, C)
    m, n = idx.shape[1], idx.shape[2]
    flat = idx.reshape(R, m * n, 1).expand(R, m * n, C)
    z = torch.gather(W.transpose(1, 2), 1, flat)
    return z.reshape(R, m, n, C)


class _OneHotMaxPool(torch.autograd.Function):
    """Reference path: ``h[r, i, c] = relu(max_j W[r, c, idx[r, i, j]])`` with a sparse backward.

    The gradient of ``h[r, i, c]`` w.r.t. ``W`` is the indicator of the maximizing pattern
    ``P[r, i, c] = idx[r, i, j*]`` (times ``1{h > 0}``), ``j*`` the first patch within the near-tie
    threshold of the maximum (:func:`cnnbias.stats.near_max_threshold`), so the backward pass
    scatters ``[R, m, C]`` values instead of materializing a dense ``[R, m, n, C]`` gradient of the
    max.  The forward pass keeps a running maximum over the n patches, so memory is ``O(R m C)``
    whatever n is.  :class:`_OneHotMaxPoolKernel` computes the same in one compiled pass.
    """

    @staticmethod
    def forward(ctx, W: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        R, C, d = W.shape
        m, n = idx.shape[1], idx.shape[2]
        Wt = W.detach().transpose(1, 2).reshape(R * d, C)  # rows: (run, pattern)
        rows = (idx + (torch.arange(R, device=idx.device) * d)[:, None, None]).permute(2, 0, 1).reshape(n, R * m)

        def z(j: int) -> torch.Tensor:
            return Wt.index_select(0, rows[j]).reshape(R, m, C)

        # running max over the n patches: never forms the [R, m, n, C] products (O(R m C) memory)
        val = z(0)
        for j in range(1, n):
            val = torch.maximum(val, z(j))
        # the first patch within the near-tie threshold of the max wins
        thr = near_max_threshold(val, TIE_RTOL)
        pat = idx[:, :, :1].expand(R, m, C)
        for j in reversed(range(n)):
            pat = torch.where(z(j) >= thr, idx[:, :, j : j + 1], pat)
        h = torch.relu(val)
        ctx.save_for_backward(pat.contiguous(), h)
        ctx.shape = (R, C, d)
        return h

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        pat, h = ctx.saved_tensors
        R, C, d = ctx.shape
        vals = (g * (h > 0)).reshape(-1)
        r = torch.arange(R, device=pat.device)[:, None, None]
        c = torch.arange(C, device=pat.device)[None, None, :]
        lin = ((r * C + c) * d + pat).reshape(-1)  # flat index into W [R, C, d]
        grad = torch.zeros(R * C * d, dtype=g.dtype, device=g.device)
        grad.index_add_(0, lin, vals)
        return grad.reshape(R, C, d), None


class _OneHotMaxPoolKernel(torch.autograd.Function):
    """The same function as :class:`_OneHotMaxPool` through the compiled kernel
    (``cnnbias/_ext/maxpool_onehot.cpp``): one pass over ``[R, m, C]`` forward, one backward."""

    @staticmethod
    def forward(ctx, W: torch.Tensor, idx: torch.Tensor, mod) -> torch.Tensor:
        h, sel = mod.forward(W.detach(), idx, TIE_RTOL)
        ctx.save_for_backward(idx, sel, h)
        ctx.mod, ctx.d = mod, W.shape[2]
        return h

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        idx, sel, h = ctx.saved_tensors
        return ctx.mod.backward(g, idx, sel, h, ctx.d), None, None


def onehot_maxpool(W: torch.Tensor, idx: torch.Tensor, path: str = "auto") -> torch.Tensor:
    """``relu(max_j W[r, c, idx[r, i, j]])`` ``[R, m, C]`` (inputs checked by the caller).

    ``path``: ``"auto"`` (the compiled kernel for float64 CPU tensors when it is available, see
    :mod:`cnnbias._ext`), ``"ref"`` (the pure-torch reference), ``"kernel"`` (the compiled kernel or
    an error)."""
    if path not in ("auto", "ref", "kernel"):
        raise ValueError(f"path={path!r} is not supported; allowed values: auto, ref, kernel")
    usable = W.dtype == torch.float64 and W.device.type == "cpu" and idx.device.type == "cpu" and idx.shape[2] <= 255
    if path != "ref" and usable:
        mod = _ext.maxpool_onehot()
        if mod is not None:
            return _OneHotMaxPoolKernel.apply(W, idx, mod)
    if path == "kernel":
        raise RuntimeError(f"the compiled max-pool kernel is not available here: {_ext.status()}")
    return _OneHotMaxPool.apply(W, idx)


def pattern_products(W: torch.Tensor, patterns: torch.Tensor) -> torch.Tensor:
    """``G[r, c, i] = w_c . p_i`` for ``W [R, C, d]`` and ``patterns [l, d]`` or ``[R, l, d]``."""
    if W.dim() != 3:
        raise ValueError(f"W must have shape [R, C, d], got {tuple(W.shape)}")
    P = patterns.to(W.dtype)
    if P.dim() == 2 and P.shape[1] == W.shape[2]:
        return W @ P.T
    if P.dim() == 3 and P.shape[0] == W.shape[0] and P.shape[2] == W.shape[2]:
        return torch.bmm(W, P.transpose(1, 2))
    raise ValueError(f"patterns must have shape [l, d={W.shape[2]}] or [R={W.shape[0]}, l, d], got {tuple(P.shape)}")


def responses(
    W: torch.Tensor,
    X: torch.Tensor | None = None,
    idx: torch.Tensor | None = None,
    patterns: torch.Tensor | None = None,
) -> torch.Tensor:
    """Channel responses ``max_j sigma(w_c . x[j])``: ``[R, m, C]``.

    With one-hot indices this is :func:`onehot_maxpool` (gather forward, sparse backward); with
    ``patterns`` the same on ``W P^T``; with dense patches, ``relu`` of the max of :func:`dot_products`.
    """
    if patterns is not None:
        if idx is None or X is not None:
            raise ValueError("patterns goes with idx (pattern indices), not with dense X")
        W = pattern_products(W, patterns)
    _check_inputs(W, X, idx)
    if idx is not None:
        return onehot_maxpool(W, idx)
    return torch.relu(dot_products(W, X, idx).max(dim=2).values)


def forward(
    W: torch.Tensor,
    a: torch.Tensor,
    X: torch.Tensor | None = None,
    idx: torch.Tensor | None = None,
    patterns: torch.Tensor | None = None,
) -> torch.Tensor:
    """``N_CNN(x) = sum_c a_c max_j sigma(w_c . x[j])`` for every run and point: ``[R, m]``."""
    if a.dim() != 2 or a.shape[0] != W.shape[0] or a.shape[1] != W.shape[1]:
        raise ValueError(f"a must have shape [R, C] = {tuple(W.shape[:2])}, got {tuple(a.shape)}")
    # an elementwise product and a last-axis sum (not a bmm): the same arithmetic for every run,
    # however many runs are batched, so batched and one-by-one training agree bit for bit
    return (responses(W, X, idx, patterns) * a[:, None, :]).sum(-1)


def forward_fixed(
    W: torch.Tensor,
    X: torch.Tensor | None = None,
    idx: torch.Tensor | None = None,
    patterns: torch.Tensor | None = None,
) -> torch.Tensor:
    """``N_W(x)``: readout +1 on the first C/2 channels (w), -1 on the last C/2 (u).  ``[R, m]``."""
    C = W.shape[1] if W.dim() == 3 else 0
    if C % 2:
        raise ValueError(f"N_W needs an even number of channels C = 2k, got C={C}")
    h = responses(W, X, idx, patterns)
    k = C // 2
    return h[..., :k].sum(-1) - h[..., k:].sum(-1)


def fixed_readout(k: int, R: int, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """The readout ``a = (+1 x k, -1 x k)`` of N_W, repeated for R runs: ``[R, 2k]``."""
    if int(k) < 1 or int(R) < 1:
        raise ValueError(f"k and R must be >= 1, got k={k}, R={R}")
    a = torch.cat([torch.ones(int(k), dtype=dtype), -torch.ones(int(k), dtype=dtype)])
    return a.to(device).expand(int(R), 2 * int(k)).clone()
