"""Training N_W as in Section 3 / App. E.3 of the PSI paper (book key ``psi_orthogonal``).

N_W(x) = sum_i [max_j relu(w(i).x[j]) - max_j relu(u(i).x[j])] (Eq. 1, :func:`cnnbias.models.maxpool.forward_fixed`),
readout fixed to +1/-1, only the first layer ``W [R, 2k, d]`` trained; hinge loss (1/m) sum max{0, 1 - y N_W(x)};
SGD with a constant learning rate; W_0 i.i.d. N(0, sigma_g^2); stop after ``max_epochs`` epochs or once the full
training loss is below ``loss_below`` (1e-5 in App. E.3).  Built on :func:`cnnbias.engine.train` (R runs batched).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from cnnbias import engine
from cnnbias.models.maxpool import forward_fixed

__all__ = ["init_W", "train_psi", "network_outputs", "forward_fixed_onehot"]


class _MaxGather(torch.autograd.Function):
    """Channel responses max_j relu(W[r, c, idx[r, i, j]]) [R, C, m] with a sparse backward.

    Same values and (sub)gradients as :func:`cnnbias.models.maxpool.responses` with ``idx`` (tested), but the
    backward scatters one entry per (run, channel, point), the argmax pattern, instead of differentiating the
    full [R, C, m, n] gather; about 2x faster on CPU for the PSI experiments.
    """

    @staticmethod
    def forward(ctx, W: Tensor, idx: Tensor) -> Tensor:  # type: ignore[override]
        R, C, d = W.shape
        m, n = idx.shape[1], idx.shape[2]
        z = torch.gather(W, 2, idx.reshape(R, 1, m * n).expand(R, C, m * n)).reshape(R, C, m, n)
        v, a = z.max(-1)
        am = torch.gather(idx[:, None].expand(R, C, m, n), 3, a[..., None])[..., 0]
        ctx.save_for_backward(am, v)
        ctx.wshape = W.shape
        return v.clamp(min=0)

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        am, v = ctx.saved_tensors
        g = torch.where(v > 0, g, torch.zeros_like(g))
        gW = torch.zeros(ctx.wshape, dtype=g.dtype, device=g.device)
        gW.scatter_add_(2, am, g)
        return gW, None


def forward_fixed_onehot(W: Tensor, idx: Tensor) -> Tensor:
    """N_W (Eq. 1) for one-hot patterns given as indices idx [R, m, n]: [R, m] (fast sparse-gradient path)."""
    if W.dim() != 3 or W.shape[1] % 2:
        raise ValueError(f"W must be [R, 2k, d]; got {tuple(W.shape)}")
    if idx.dim() != 3 or idx.shape[0] != W.shape[0] or idx.dtype != torch.int64:
        raise ValueError(f"idx must be int64 [R={W.shape[0]}, m, n]; got {tuple(idx.shape)} {idx.dtype}")
    r = _MaxGather.apply(W, idx)
    k = W.shape[1] // 2
    return r[:, :k].sum(1) - r[:, k:].sum(1)


def init_W(k: int, d: int, sigma_g: float, gens: Sequence[torch.Generator],
           dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Tensor:
    """W_0 [R, 2k, d] with i.i.d. N(0, sigma_g^2) entries, run r drawn (on CPU) from ``gens[r]``."""
    if int(k) < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    if int(d) < 1:
        raise ValueError(f"d must be >= 1; got {d}")
    if not sigma_g > 0:
        raise ValueError(f"sigma_g must be > 0; got {sigma_g}")
    if len(gens) == 0:
        raise ValueError("gens must hold one generator per run")
    W = torch.stack([sigma_g * torch.randn(2 * int(k), int(d), generator=g, dtype=torch.float64) for g in gens])
    return W.to(device=device, dtype=dtype)


def train_psi(
    W0: Tensor,
    y: Tensor,
    *,
    idx: Tensor | None = None,
    X: Tensor | None = None,
    lr: float,
    batch_size: int,
    max_epochs: int,
    shuffle_seeds: Sequence[int] | None,
    loss_below: float = 1e-5,
    check_every: int = 1,
) -> engine.TrainResult:
    """SGD on the first layer of N_W with the hinge loss, R runs at once.

    Args:
        W0: initial weights [R, 2k, d] (see :func:`init_W`).
        y: labels [R, m] in {+1, -1}.
        idx: one-hot pattern indices [R, m, n] (gather path), or X: dense patches [R, m, n, d].
        lr: constant learning rate; batch_size: SGD batch (== m gives full-batch GD);
        max_epochs: epoch budget; loss_below: stop once the full training loss is below this.
        shuffle_seeds: one int per run (required when batch_size < m).
    Returns the :class:`cnnbias.engine.TrainResult` (``params["W"]`` are the trained weights).
    """
    if (idx is None) == (X is None):
        raise ValueError("pass exactly one of idx (one-hot indices [R, m, n]) or X (dense [R, m, n, d])")
    data = idx if idx is not None else X
    if data.shape[:2] != y.shape:
        raise ValueError(f"data [R, m, ...] and y [R, m] disagree: {tuple(data.shape)} vs {tuple(y.shape)}")
    if W0.shape[0] != y.shape[0]:
        raise ValueError(f"W0 has R={W0.shape[0]} runs but y has {y.shape[0]}")
    m = y.shape[1]
    yW = y.to(W0)
    Xd = X.to(W0) if X is not None else None

    def loss_fn(params: dict[str, Tensor], batch: engine.Batch) -> Tensor:
        yb = batch.take(yW)
        if idx is not None:
            out = forward_fixed_onehot(params["W"], batch.take(idx))
        else:
            out = forward_fixed(params["W"], X=batch.take(Xd))
        return engine.hinge(yb * out).mean(-1)

    bs = int(batch_size)
    opt = "gd" if bs >= m else "sgd"
    return engine.train(
        loss_fn,
        {"W": W0.clone()},
        trainable=("W",),
        optimizer=opt,
        lr=lr,
        stop=engine.StopRule(max_epochs=int(max_epochs), loss_below=loss_below, check_every=check_every),
        n_train=m if opt == "sgd" else None,
        batch_size=bs if opt == "sgd" else None,
        shuffle_seeds=shuffle_seeds if opt == "sgd" else None,
    )


@torch.no_grad()
def network_outputs(W: Tensor, idx: Tensor | None = None, X: Tensor | None = None, chunk: int = 2000) -> Tensor:
    """N_W on test points [R, m_test] (chunked over points to bound memory)."""
    data = idx if idx is not None else X
    if data is None:
        raise ValueError("pass idx or X")
    outs = []
    for a in range(0, data.shape[1], chunk):
        part = data[:, a:a + chunk]
        outs.append(forward_fixed_onehot(W, part) if idx is not None else forward_fixed(W, X=part.to(W)))
    return torch.cat(outs, dim=1)
