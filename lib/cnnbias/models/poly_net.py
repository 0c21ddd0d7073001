"""ReLU and polynomial-activation networks of Theory of Deep Learning III (:cite:`theory_iii`,
Sec. 9.10, Figs. 21-24), batched over runs.  Forward passes only.

Polynomial activation.  The paper replaces every ReLU by "a univariate polynomial approximation of
the RELU function" of degree 10 (Fig. 21).  We use a closed form: on ``[-B, B]``,
``relu(x) = (x + |x|) / 2`` and ``|t|`` on ``[-1, 1]`` has the Chebyshev series::

    |t| = 2/pi + (4/pi) sum_{k>=1} (-1)^{k+1} T_{2k}(t) / (4 k^2 - 1),

so truncating at ``T_{degree}`` (``degree`` even) gives the polynomial::

    p(x) = B * ( t/2 + |t|_degree / 2 ),   t = x / B,

of degree ``degree``, whose error on ``[-B, B]`` is at most ``B / (pi (degree + 1))``: half of ``B``
times the tail ``(4/pi) sum_{k > degree/2} 1/(4k^2 - 1) = 2 / (pi (degree + 1))`` (attained at 0).  The coefficients are computed with Python floats from this formula,
identically on every machine.  Outside ``[-B, B]`` ``p`` is a polynomial and grows like ``x^degree``,
as in the paper.

Networks (parameters carry a leading run axis ``R``; no biases, so a ReLU net is positively
homogeneous in its weights and margins can be normalized by norms, Sec. 9.2):

- :func:`mlp_forward`: one hidden layer, ``f(x) = V act(W x)``, ``W [R, H, D]``, ``V [R, C, H]``.
  Runs of different widths share one tensor: run ``r`` uses the first ``h_r`` of ``H`` hidden units
  (``mask [R, H]``, 1 for a used unit, 0 otherwise; unused units are zero and stay zero under
  training, because the mask multiplies their activations).
- :func:`allconv_forward`: the paper's "5-layer all convolutional network (i.e., no pooling)" in 1-D
  (for mnist1d signals): ``layers - 1`` convolutions (kernel 3, stride 2, padding 1, ``channels``
  channels, activation) and a linear readout of the last feature map.  Runs of different channel
  counts share one tensor through a channel mask ``[R, Cmax]`` applied after every activation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "ACTIVATIONS",
    "abs_chebyshev_coefficients",
    "poly_relu",
    "poly_relu_error_bound",
    "activate",
    "mlp_n_params",
    "mlp_init",
    "mlp_forward",
    "allconv_lengths",
    "allconv_n_params",
    "allconv_init",
    "allconv_forward",
]

#: Activations understood by :func:`activate`.
ACTIVATIONS = ("relu", "poly")


def abs_chebyshev_coefficients(degree: int) -> list[float]:
    """Coefficients ``a_0, a_2, ..., a_degree`` of the truncated Chebyshev series of ``|t|`` on
    ``[-1, 1]``: ``a_0 = 2/pi``, ``a_{2k} = (4/pi) (-1)^{k+1} / (4k^2 - 1)``."""
    if not isinstance(degree, int) or degree < 2 or degree % 2:
        raise ValueError(f"degree must be an even integer >= 2, got {degree!r}")
    out = [2 / math.pi]
    for k in range(1, degree // 2 + 1):
        out.append(4 / math.pi * (-1) ** (k + 1) / (4 * k * k - 1))
    return out


def poly_relu_error_bound(degree: int, bound: float) -> float:
    """Upper bound on ``max_{|x| <= bound} |poly_relu(x) - relu(x)|``: half the tail of the
    alternating series of ``|t|``, ``(bound / 2) (4/pi) sum_{k > K} 1/(4k^2 - 1) = bound / (pi (degree + 1))``."""
    abs_chebyshev_coefficients(degree)
    if not bound > 0:
        raise ValueError(f"bound must be > 0, got {bound!r}")
    return float(bound) / (math.pi * (degree + 1))


def poly_relu(x: Tensor, degree: int = 10, bound: float | Tensor = 4.0) -> Tensor:
    """The degree-``degree`` polynomial approximation of ReLU on ``[-bound, bound]`` (module docstring),
    evaluated by the Chebyshev recurrence ``T_{n+1} = 2 t T_n - T_{n-1}``.  ``bound`` may be a tensor
    ``[R]`` with one interval per run (the leading axis of ``x``)."""
    coef = abs_chebyshev_coefficients(degree)
    if isinstance(bound, Tensor):
        if bound.dim() != 1 or bound.shape[0] != x.shape[0] or not bool((bound > 0).all()):
            raise ValueError(f"a tensor bound must be positive with shape [R={x.shape[0]}], got {tuple(bound.shape)}")
        bound = bound.to(x).reshape((-1,) + (1,) * (x.dim() - 1))
    elif not bound > 0:
        raise ValueError(f"bound must be > 0, got {bound!r}")
    t = x / bound
    t_prev, t_cur = torch.ones_like(t), t  # T_0, T_1
    absval = coef[0] * t_prev
    for n in range(2, degree + 1):
        t_prev, t_cur = t_cur, 2 * t * t_cur - t_prev
        if n % 2 == 0:
            absval = absval + coef[n // 2] * t_cur
    return bound * 0.5 * (t + absval)


def activate(z: Tensor, activation: str, degree: int = 10, bound: float | Tensor = 4.0) -> Tensor:
    """``relu(z)`` or :func:`poly_relu` of ``z``."""
    if activation == "relu":
        return torch.relu(z)
    if activation == "poly":
        return poly_relu(z, degree, bound)
    raise ValueError(f"activation={activation!r} is not supported; allowed values: {', '.join(ACTIVATIONS)}")


def _check_gens(gens: Sequence[torch.Generator], n: int, what: str) -> None:
    if len(gens) != n:
        raise ValueError(f"gens must have one generator per run: {n} {what}, got {len(gens)} generators")


def _check_sizes(sizes, what: str) -> list[int]:
    out = [int(s) for s in sizes]
    if not out or min(out) < 1:
        raise ValueError(f"{what} must be a non-empty list of integers >= 1, got {list(sizes)!r}")
    return out


# --- one-hidden-layer net --------------------------------------------------------------------------


def mlp_n_params(width: int, in_dim: int, out_dim: int) -> int:
    """Number of weights ``h (D + C)`` of :func:`mlp_forward` with ``h`` hidden units."""
    return int(width) * (int(in_dim) + int(out_dim))


def mlp_init(widths: Sequence[int], in_dim: int, out_dim: int, gens: Sequence[torch.Generator],
             init_scale: float | Sequence[float] = 1.0, dtype: torch.dtype = torch.float64,
             device=None) -> dict[str, Tensor]:
    """Gaussian initialization ``W_ij ~ N(0, s^2/D)``, ``V_ci ~ N(0, s^2/h_r)`` (He-like, times the run's
    ``init_scale`` ``s``), padded to ``H = max(widths)``.  Run ``r`` draws from ``gens[r]`` only, so a run
    does not depend on which widths share the batch.  Returns ``{"W": [R, H, D], "V": [R, C, H],
    "mask": [R, H]}`` (``mask`` is not trainable)."""
    widths = _check_sizes(widths, "widths")
    if int(in_dim) < 1 or int(out_dim) < 1:
        raise ValueError(f"in_dim and out_dim must be >= 1, got {in_dim}, {out_dim}")
    _check_gens(gens, len(widths), "widths")
    scales = [float(init_scale)] * len(widths) if isinstance(init_scale, (int, float)) else list(init_scale)
    if len(scales) != len(widths) or not all(s > 0 for s in scales):
        raise ValueError("init_scale must be a positive number or one positive number per run")
    R, H, D, C = len(widths), max(widths), int(in_dim), int(out_dim)
    W = torch.zeros(R, H, D, dtype=torch.float64)
    V = torch.zeros(R, C, H, dtype=torch.float64)
    mask = torch.zeros(R, H, dtype=torch.float64)
    for r, (h, g, s) in enumerate(zip(widths, gens, scales)):
        W[r, :h] = torch.randn(h, D, generator=g, dtype=torch.float64) * (s * math.sqrt(2.0 / D))
        V[r, :, :h] = torch.randn(C, h, generator=g, dtype=torch.float64) * (s / math.sqrt(h))
        mask[r, :h] = 1.0
    return {k: v.to(dtype=dtype, device=device) for k, v in (("W", W), ("V", V), ("mask", mask))}


def mlp_forward(params: dict[str, Tensor], X: Tensor, activation: str = "relu", degree: int = 10,
                bound: float | Tensor = 4.0) -> Tensor:
    """Scores ``[R, m, C]`` of ``f(x) = V (mask * act(W x))`` for inputs ``X [R, m, D]`` or a shared
    ``X [m, D]``.  A parameter ``params["bound"] [R]`` (not trained) overrides ``bound`` per run."""
    W, V = params["W"], params["V"]
    bound = params.get("bound", bound)
    mask = params.get("mask")
    if W.dim() != 3 or V.dim() != 3 or V.shape[0] != W.shape[0] or V.shape[2] != W.shape[1]:
        raise ValueError(f"params must have W [R, H, D] and V [R, C, H]; got {tuple(W.shape)}, {tuple(V.shape)}")
    R, _, D = W.shape
    if X.dim() == 2 and X.shape[1] == D:
        z = torch.einsum("md,rhd->rmh", X.to(W.dtype), W)
    elif X.dim() == 3 and X.shape[0] == R and X.shape[2] == D:
        z = torch.bmm(X.to(W.dtype), W.transpose(1, 2))
    else:
        raise ValueError(f"X must have shape [m, D={D}] or [R={R}, m, D={D}], got {tuple(X.shape)}")
    h = activate(z, activation, degree, bound)
    if mask is not None:
        h = h * mask[:, None, :]
    return torch.bmm(h, V.transpose(1, 2))


# --- all-convolutional 1-D net ---------------------------------------------------------------------


def allconv_lengths(in_len: int, layers: int) -> list[int]:
    """Feature-map lengths after each of the ``layers - 1`` stride-2 convolutions (kernel 3, padding 1):
    ``L -> ceil(L / 2)``."""
    if int(layers) < 2 or int(in_len) < 1:
        raise ValueError(f"layers must be >= 2 and in_len >= 1, got {layers}, {in_len}")
    out, L = [], int(in_len)
    for _ in range(int(layers) - 1):
        L = (L - 1) // 2 + 1
        out.append(L)
    return out


def allconv_n_params(channels: int, layers: int, in_len: int, out_dim: int, in_channels: int = 1) -> int:
    """Weights of :func:`allconv_forward`: ``3 c_in c + (layers - 2) 3 c^2 + c L_last C``."""
    c = int(channels)
    L = allconv_lengths(in_len, layers)[-1]
    return 3 * int(in_channels) * c + (int(layers) - 2) * 3 * c * c + c * L * int(out_dim)


def allconv_init(channels: Sequence[int], layers: int, in_len: int, out_dim: int,
                 gens: Sequence[torch.Generator], in_channels: int = 1, init_scale: float = 1.0,
                 dtype: torch.dtype = torch.float64, device=None) -> dict[str, Tensor]:
    """He-like Gaussian initialization of the all-convolutional net, padded to ``Cmax = max(channels)``:
    ``{"K0": [R, Cmax, c_in, 3], "K1".."K{layers-2}": [R, Cmax, Cmax, 3], "V": [R, C, Cmax * L_last],
    "mask": [R, Cmax]}``."""
    channels = _check_sizes(channels, "channels")
    _check_gens(gens, len(channels), "channel counts")
    if not init_scale > 0:
        raise ValueError(f"init_scale must be > 0, got {init_scale!r}")
    R, Cm, ci = len(channels), max(channels), int(in_channels)
    L = allconv_lengths(in_len, layers)[-1]
    out = {f"K{i}": torch.zeros(R, Cm, ci if i == 0 else Cm, 3, dtype=torch.float64) for i in range(layers - 1)}
    V = torch.zeros(R, int(out_dim), Cm, L, dtype=torch.float64)
    mask = torch.zeros(R, Cm, dtype=torch.float64)
    for r, (c, g) in enumerate(zip(channels, gens)):
        for i in range(layers - 1):
            fan = 3 * (ci if i == 0 else c)
            cin = ci if i == 0 else c
            out[f"K{i}"][r, :c, :cin] = torch.randn(c, cin, 3, generator=g, dtype=torch.float64) * (
                init_scale * math.sqrt(2.0 / fan))
        V[r, :, :c] = torch.randn(int(out_dim), c, L, generator=g, dtype=torch.float64) * (
            init_scale / math.sqrt(c * L))
        mask[r, :c] = 1.0
    out["V"] = V.reshape(R, int(out_dim), Cm * L)
    out["mask"] = mask
    return {k: v.to(dtype=dtype, device=device) for k, v in out.items()}


def allconv_forward(params: dict[str, Tensor], X: Tensor, activation: str = "relu", degree: int = 10,
                    bound: float | Tensor = 4.0) -> Tensor:
    """Scores ``[R, m, C]`` for signals ``X [m, L]`` (shared) or ``[R, m, L]`` (per run), one input
    channel.  The R runs' convolutions are one grouped ``conv1d`` (runs as groups).  A parameter
    ``params["bound"] [R]`` (not trained) overrides ``bound`` per run."""
    import torch.nn.functional as F

    bound = params.get("bound", bound)
    layers = sum(1 for k in params if k.startswith("K") and k[1:].isdigit()) + 1
    K0, V, mask = params["K0"], params["V"], params["mask"]
    R, Cm = K0.shape[0], K0.shape[1]
    if X.dim() == 2:
        m = X.shape[0]
        h = F.conv1d(X.to(K0.dtype)[:, None, :], K0.reshape(R * Cm, K0.shape[2], 3), stride=2, padding=1)
    elif X.dim() == 3 and X.shape[0] == R:
        m = X.shape[1]
        h = F.conv1d(X.to(K0.dtype).transpose(0, 1), K0.reshape(R * Cm, K0.shape[2], 3), stride=2,
                     padding=1, groups=R)
    else:
        raise ValueError(f"X must have shape [m, L] or [R={R}, m, L], got {tuple(X.shape)}")
    mk = mask.reshape(1, R * Cm, 1)
    if isinstance(bound, Tensor):  # one interval per run: the runs are the channel groups of axis 1
        if bound.dim() != 1 or bound.shape[0] != R or not bool((bound > 0).all()):
            raise ValueError(f"a tensor bound must be positive with shape [R={R}], got {tuple(bound.shape)}")
        bound = bound.to(h).repeat_interleave(Cm).reshape(1, R * Cm, 1)

    def act(z: Tensor) -> Tensor:
        if isinstance(bound, Tensor) and activation == "poly":  # poly_relu(z, B) = B poly_relu(z / B, 1)
            return bound * poly_relu(z / bound, degree, 1.0)
        return activate(z, activation, degree, bound)

    h = act(h) * mk
    for i in range(1, layers - 1):
        K = params[f"K{i}"]
        if K.dim() != 4:
            raise ValueError(f"K{i} must have shape [R, C, C, 3], got {tuple(K.shape)}")
        h = F.conv1d(h, K.reshape(R * Cm, Cm, 3), stride=2, padding=1, groups=R)
        h = act(h) * mk
    h = h.reshape(m, R, -1).transpose(0, 1)  # [R, m, Cm * L]
    if h.shape[2] != V.shape[2]:
        raise ValueError(f"input length gives {h.shape[2] // Cm} cells after the convolutions; V expects "
                         f"{V.shape[2] // Cm}")
    return torch.bmm(h, V.transpose(1, 2))
