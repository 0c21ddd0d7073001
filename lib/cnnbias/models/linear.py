"""Linear classifiers of :cite:`gd_conv_linear` (Section 2.1, Fig. 1), batched over runs.

All parameters carry a leading run axis R.

* Model-1-Layer:  f_w(x) = w^T x,  w in R^d.
* Model-Conv-k:   f_w(x) = sum_{i=1}^d w2_i sum_{j=1}^k w1_j x_{i+j-1}   (one size-k filter, stride 1,
  zero padding: out-of-range terms are 0),  w1 in R^k, w2 in R^d.  Equivalently f = w1^T A_x^T w2
  (Section 2.2) and f = w_eff^T x with the *effective weight*
  ``w_eff[p] = sum_{j=0}^{k-1} w1[j] * w2[p-j]`` (0-based, terms with p-j < 0 dropped), i.e. the first d
  entries of the full discrete convolution w1 * w2.
* FC-2:           f(x) = w2^T W1 x,  W1 in R^{h x d} (h = d in the paper), w2 in R^h;  w_eff = W1^T w2.

Map between 1-Layer and Conv-k (same function class): Conv-k -> 1-Layer is w = w_eff(w1, w2);
1-Layer -> Conv-k takes any filter w1 with w1[0] != 0 (the paper's choice is w1 = e_1) and solves the
lower-triangular Toeplitz system w_eff(w1, w2) = w for w2 by forward substitution.

Initialisation follows the PyTorch defaults for ``nn.Conv1d``/``nn.Linear`` without bias:
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = k for the filter and d (or h) for the dense layers; the
paper (Fig. 6) says only "w0 uniformly sampled from [-b, b]^{d+k}".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from cnnbias import validate as V
from cnnbias.data.positions import PositionTask, check_task, check_training_set
from cnnbias.stats import margin_errors

MODELS = ("1layer", "conv", "fc2")


# ----------------------------------------------------------------------------------------------------------------
# effective weights and forward passes
# ----------------------------------------------------------------------------------------------------------------
def conv_effective_weight(w1: Tensor, w2: Tensor) -> Tensor:
    """w_eff [R, d] of Model-Conv-k: w_eff[p] = sum_j w1[j] w2[p-j]  (w1 [R, k], w2 [R, d], k <= d)."""
    V.floating_tensor("w1", w1)
    V.floating_tensor("w2", w2)
    if w1.ndim != 2 or w2.ndim != 2 or w1.shape[0] != w2.shape[0]:
        raise ValueError(
            f"w1 must be [R, k] and w2 [R, d] with the same R, got {tuple(w1.shape)}, {tuple(w2.shape)}"
        )
    k, d = w1.shape[1], w2.shape[1]
    if k > d:
        raise ValueError(f"filter size k={k} must be <= d={d}")
    w2p = torch.nn.functional.pad(w2, (k - 1, 0))  # [R, d+k-1], w2p[q] = w2[q-(k-1)]
    win = w2p.unfold(-1, k, 1)  # [R, d, k], win[p, i] = w2[p + i - (k-1)]
    return (win * w1.flip(-1)[:, None, :]).sum(-1)  # j = k-1-i


def fc2_effective_weight(W1: Tensor, w2: Tensor) -> Tensor:
    """w_eff [R, d] = W1^T w2 of the fully connected two-layer linear model (W1 [R, h, d], w2 [R, h])."""
    V.floating_tensor("W1", W1, 3)
    V.floating_tensor("w2", w2, shape=(W1.shape[0], W1.shape[1]))
    return torch.einsum("rhd,rh->rd", W1, w2)


def effective_weight(model: str, params: dict[str, Tensor]) -> Tensor:
    """The 1-Layer weight [R, d] that computes the same function as ``model`` with ``params``."""
    V.choice("model", model, MODELS)
    need = {"1layer": ("w",), "conv": ("w1", "w2"), "fc2": ("W1", "w2")}[model]
    if not isinstance(params, dict) or any(n not in params for n in need):
        have = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"params of model {model!r} must be a dict with keys {need}, got {have}")
    if model == "1layer":
        return params["w"]
    if model == "conv":
        return conv_effective_weight(params["w1"], params["w2"])
    if model == "fc2":
        return fc2_effective_weight(params["W1"], params["w2"])
    raise ValueError(f"model must be one of {MODELS}, got {model!r}")


def conv_forward_dense(w1: Tensor, w2: Tensor, X: Tensor) -> Tensor:
    """f(x) = sum_i w2_i sum_j w1_j x_{i+j-1} computed literally (windows of x), X [R, m, d] -> [R, m]."""
    V.floating_tensor("w1", w1, 2)
    V.floating_tensor("w2", w2, 2)
    V.floating_tensor("X", X, 3)
    R, m, d = X.shape
    if w2.shape != (R, d) or w1.shape[0] != R or not 1 <= w1.shape[1] <= d:
        raise ValueError(f"need X [R, m, d], w1 [R, k] (1 <= k <= d) and w2 [R, d]; got X {tuple(X.shape)}, "
                         f"w1 {tuple(w1.shape)}, w2 {tuple(w2.shape)}")
    k = w1.shape[1]
    Xp = torch.nn.functional.pad(X, (0, k - 1))  # zero padding on the right
    win = Xp.unfold(-1, k, 1)  # [R, m, d, k]: win[i, j] = x[i+j]
    return torch.einsum("rmij,rj,ri->rm", win, w1, w2)


def linear_to_conv(w: Tensor, k: int, w1: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """A Conv-k parameter pair (w1, w2) computing the same function as the 1-Layer weight w [R, d].

    With ``w1=None`` the paper's construction w1 = e_1, w2 = w (Section 1).  Otherwise any filter w1 [R, k]
    with w1[:, 0] != 0: w2 solves w_eff(w1, w2) = w by forward substitution,
    w2[p] = (w[p] - sum_{j=1}^{min(p,k-1)} w1[j] w2[p-j]) / w1[0].
    """
    V.floating_tensor("w", w, 2)
    R, d = w.shape
    V.integer("k", k, 1)
    if not 1 <= k <= d:
        raise ValueError(f"k must satisfy 1 <= k <= d={d}, got {k}")
    if w1 is not None:
        V.floating_tensor("w1", w1)
    if w1 is None:
        w1 = torch.zeros(R, k, dtype=w.dtype, device=w.device)
        w1[:, 0] = 1.0
        return w1, w.clone()
    if w1.shape != (R, k):
        raise ValueError(f"w1 must have shape {(R, k)}, got {tuple(w1.shape)}")
    if bool((w1[:, 0] == 0).any()):
        raise ValueError("w1[:, 0] must be non-zero for the forward substitution")
    w2 = torch.zeros_like(w)
    for p in range(d):
        acc = w[:, p].clone()
        for j in range(1, min(p, k - 1) + 1):
            acc = acc - w1[:, j] * w2[:, p - j]
        w2[:, p] = acc / w1[:, 0]
    return w1.clone(), w2


# ----------------------------------------------------------------------------------------------------------------
# scores on the sparse position datasets
# ----------------------------------------------------------------------------------------------------------------
def scores(w_eff: Tensor, task: PositionTask, idx: Tensor | None = None) -> Tensor:
    """f(x) = w_eff^T x as a gather.  idx [R, m] -> [R, m] (training inputs); idx None -> [R, N] (whole set)."""
    _check_w_eff(w_eff, task)
    if idx is not None:
        V.tensor("idx", idx, shape=(w_eff.shape[0], None))
        V.index_in_range("idx", idx, task.N)
    return _scores(w_eff, task, idx)


def _check_w_eff(w_eff: Tensor, task: PositionTask) -> None:
    check_task(task)
    V.floating_tensor("w_eff", w_eff, 2)
    if w_eff.shape[1] != task.d:
        raise ValueError(f"w_eff must have shape [R, d] with d = task.d = {task.d}, got {tuple(w_eff.shape)}")


def _scores(w_eff: Tensor, task: PositionTask, idx: Tensor | None = None) -> Tensor:
    """:func:`scores` without the argument checks (the training loss calls it every step)."""
    R = w_eff.shape[0]
    if idx is None:
        g = w_eff[:, task.pos]  # [R, N, 2]
        return (g * task.val).sum(-1)
    pos = task.pos[idx]  # [R, m, 2]
    g = torch.gather(w_eff, 1, pos.reshape(R, -1)).reshape(pos.shape)
    return (g * task.val[idx]).sum(-1)


def ebar(margins: Tensor, tie_tol: float | None = None) -> Tensor:
    """Ē(y f) of Eq. (1): 1 if < 0, 1/2 if = 0, 0 if > 0, per example; a margin with
    ``|margin| <= tie_tol * max_run |margin|`` is a tie (:func:`cnnbias.stats.margin_errors`;
    ``tie_tol`` defaults to :data:`cnnbias.stats.TIE_RTOL`)."""
    if tie_tol is not None:
        V.nonnegative("tie_tol", tie_tol)
    V.floating_tensor("margins", margins)
    if margins.dim() == 0:
        raise ValueError("margins must have shape [..., N] (at least one dimension), got a 0-d tensor")
    return margin_errors(margins, -1, tie_tol).to(margins.dtype)


def test_error(w_eff: Tensor, task: PositionTask, tie_tol: float | None = None) -> Tensor:
    """Generalisation error E(w; D) (Eq. 1) of each run on the whole dataset: [R]."""
    _check_w_eff(w_eff, task)
    return ebar(task.y * scores(w_eff, task), tie_tol).mean(-1)


# ----------------------------------------------------------------------------------------------------------------
# initialisation
# ----------------------------------------------------------------------------------------------------------------
def _uniform(
    shape: Sequence[int], bound: float, gens: Sequence[torch.Generator], dtype: torch.dtype
) -> Tensor:
    return torch.stack(
        [(2 * torch.rand(*shape, generator=g, dtype=torch.float64) - 1) * bound for g in gens]
    ).to(dtype)


def init_params(
    model: str,
    d: int,
    gens: Sequence[torch.Generator],
    k: int = 5,
    width: int | None = None,
    scale: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> dict[str, Tensor]:
    """Initial parameters with a leading run axis, run r drawn from gens[r] (PyTorch default bounds x scale)."""
    V.choice("model", model, MODELS)
    V.integer("d", d, 1)
    V.generators("gens", gens)
    V.integer("k", k, 1)
    if width is not None:
        V.integer("width", width, 1)
    V.positive("scale", scale)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    if model == "1layer":
        return {"w": _uniform((d,), scale / math.sqrt(d), gens, dtype)}
    if model == "conv":
        if not 1 <= k <= d:
            raise ValueError(f"k must satisfy 1 <= k <= d={d}, got {k}")
        # one generator per run: draw the filter first, then the output layer
        w1, w2 = [], []
        for g in gens:
            w1.append(
                (2 * torch.rand(k, generator=g, dtype=torch.float64) - 1) * scale / math.sqrt(k)
            )
            w2.append(
                (2 * torch.rand(d, generator=g, dtype=torch.float64) - 1) * scale / math.sqrt(d)
            )
        return {"w1": torch.stack(w1).to(dtype), "w2": torch.stack(w2).to(dtype)}
    if model == "fc2":
        h = width or d
        W1, w2 = [], []
        for g in gens:
            W1.append(
                (2 * torch.rand(h, d, generator=g, dtype=torch.float64) - 1) * scale / math.sqrt(d)
            )
            w2.append(
                (2 * torch.rand(h, generator=g, dtype=torch.float64) - 1) * scale / math.sqrt(h)
            )
        return {"W1": torch.stack(W1).to(dtype), "w2": torch.stack(w2).to(dtype)}
    raise ValueError(f"model must be one of {MODELS}, got {model!r}")


# ----------------------------------------------------------------------------------------------------------------
# losses for the batched engine
# ----------------------------------------------------------------------------------------------------------------
def make_loss(
    model: str, task: PositionTask, idx: Tensor, mask: Tensor, loss: str = "hinge"
) -> Callable[[dict[str, Tensor], object], Tensor]:
    """Per-run MEAN training loss over each run's own examples (mask), for ``cnnbias.engine.train``.

    loss = "hinge": (1 - y f(x))_+ ;  loss = "xhinge": -y f(x) (the extreme hinge loss of Section 3.1).
    """
    V.choice("model", model, MODELS)
    if loss not in ("hinge", "xhinge"):
        raise ValueError(f"loss must be 'hinge' or 'xhinge', got {loss!r}")
    if mask is None:
        raise ValueError("mask must be a [R, n] tensor of 0/1 (1 for a real example), got None")
    check_training_set(task, idx, mask)
    y_tr = task.y[idx]  # [R, n]
    count = mask.sum(-1)

    def loss_fn(params: dict[str, Tensor], batch) -> Tensor:
        runs = getattr(batch, "runs", None)
        ii, mm, yy, cc = idx, mask, y_tr, count
        if runs is not None and len(runs) != idx.shape[0]:
            ii, mm, yy, cc = idx[runs], mask[runs], y_tr[runs], count[runs]
        z = yy * _scores(effective_weight(model, params), task, ii)
        per = torch.relu(1.0 - z) if loss == "hinge" else -z
        return (per * mm).sum(-1) / cc

    return loss_fn
