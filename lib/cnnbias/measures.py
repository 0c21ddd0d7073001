"""Measurements of trained networks for Theory of Deep Learning III (:cite:`theory_iii`, Sec. 6.1,
App. 9.2 and 9.5): error, loss, norms, normalized margins, the flatness radius of Eq. 16, the
three-point interpolation of Eq. 15 (Figs. 11-12) and the perturbation robustness of Eq. 47
(Fig. 20).  No training here: every function takes trained parameters with a leading run axis
``[R, ...]`` and a forward pass ``forward(params, X) -> scores [R, m, C]``.

Tie handling.  :func:`multiclass_error` counts an example whose true class ties with ``k - 1``
others for the top score as ``1 - 1/k`` wrong, so an exact tie (e.g. all scores 0) never turns on
the last bit of a score.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

__all__ = [
    "multiclass_error",
    "chance_error",
    "cross_entropy",
    "margins",
    "param_norm",
    "normalized_margin",
    "random_directions",
    "flatness_radius",
    "simplex_grid",
    "three_point_params",
    "input_perturbation_error",
]

Forward = Callable[[Mapping[str, Tensor], Tensor], Tensor]


def _check_scores(scores: Tensor, labels: Tensor) -> None:
    if not isinstance(scores, Tensor) or scores.dim() != 3:
        raise ValueError(f"scores must be a tensor [R, m, C], got {getattr(scores, 'shape', type(scores))}")
    if labels.shape not in (scores.shape[:2], scores.shape[1:2]):
        raise ValueError(f"labels must have shape [R, m] or [m] matching scores {tuple(scores.shape)}, "
                         f"got {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= scores.shape[2]):
        raise ValueError(f"labels must lie in 0..{scores.shape[2] - 1}")


def _labels(scores: Tensor, labels: Tensor) -> Tensor:
    return labels.to(scores.device).expand(scores.shape[:2]).long()


def _weighted_mean(v: Tensor, weights: Tensor | None) -> Tensor:
    if weights is None:
        return v.mean(-1)
    if weights.shape != v.shape:
        raise ValueError(f"weights must have shape {tuple(v.shape)}, got {tuple(weights.shape)}")
    return (v * weights).sum(-1) / weights.sum(-1)


def multiclass_error(scores: Tensor, labels: Tensor, weights: Tensor | None = None) -> Tensor:
    """0-1 error per run ``[R]``: ``mean_i [1 - 1{s_{i,y_i} = max_j s_ij} / #{j: s_ij = max}]``.

    ``weights [R, m]`` (optional, e.g. 0/1 for a run's used examples) make it a weighted mean."""
    _check_scores(scores, labels)
    y = _labels(scores, labels)
    top = scores.max(-1, keepdim=True).values
    at_top = scores == top
    right = at_top.gather(-1, y[..., None])[..., 0].to(scores.dtype) / at_top.sum(-1).to(scores.dtype)
    return _weighted_mean(1.0 - right, weights)


def chance_error(scores: Tensor, labels: Tensor) -> Tensor:
    """The error per run ``[R]`` of a classifier whose predictions are independent of the true labels
    but have this run's prediction frequencies: ``1 - sum_c q_c p_c`` with ``q_c`` the fraction of
    examples predicted ``c`` (ties split evenly) and ``p_c`` the fraction labelled ``c``.  It is
    ``1 - 1/C`` when either frequency is uniform."""
    _check_scores(scores, labels)
    y = _labels(scores, labels)
    C = scores.shape[2]
    at_top = (scores == scores.max(-1, keepdim=True).values).to(scores.dtype)
    q = (at_top / at_top.sum(-1, keepdim=True)).mean(1)  # [R, C]
    p = torch.nn.functional.one_hot(y, C).to(scores.dtype).mean(1)  # [R, C]
    return 1.0 - (q * p).sum(-1)


def cross_entropy(scores: Tensor, labels: Tensor, weights: Tensor | None = None) -> Tensor:
    """Mean cross-entropy per run ``[R]`` (``weights`` as in :func:`multiclass_error`)."""
    _check_scores(scores, labels)
    y = _labels(scores, labels)
    ce = torch.logsumexp(scores, -1) - scores.gather(-1, y[..., None])[..., 0]
    return _weighted_mean(ce, weights)


def margins(scores: Tensor, labels: Tensor) -> Tensor:
    """Functional multiclass margins ``s_{i,y_i} - max_{j != y_i} s_ij``, ``[R, m]`` (App. 9.2, Fig. 17)."""
    _check_scores(scores, labels)
    if scores.shape[2] < 2:
        raise ValueError("margins need at least two classes")
    y = _labels(scores, labels)
    own = scores.gather(-1, y[..., None])[..., 0]
    other = scores.scatter(-1, y[..., None], float("-inf")).max(-1).values
    return own - other


def param_norm(params: Mapping[str, Tensor], names: Sequence[str]) -> Tensor:
    """Euclidean norm per run ``[R]`` of the parameters ``names`` taken together."""
    if not names:
        raise ValueError("names must list at least one parameter")
    for n in names:
        if n not in params:
            raise ValueError(f"names has {n!r}, which is not a parameter (have: {', '.join(params)})")
    return torch.sqrt(sum(params[n].flatten(1).pow(2).sum(1) for n in names))


def normalized_margin(scores: Tensor, labels: Tensor, params: Mapping[str, Tensor],
                      layers: Sequence[str], q: float = 0.5, weights: Tensor | None = None) -> Tensor:
    """The ``q``-quantile over training points of ``margin_i / prod_l ||W_l||_F`` per run ``[R]``.

    For a bias-free ReLU network ``f`` is positively homogeneous of degree ``L`` in its ``L`` weight
    matrices, so this ratio is invariant to rescaling any layer: it is the margin of the network
    with unit-norm layers (the normalization of App. 9.2).  With ``weights`` (0/1 per example) only
    the used examples count."""
    if not 0 <= q <= 1:
        raise ValueError(f"q must lie in [0, 1], got {q!r}")
    m = margins(scores, labels)
    prod = torch.ones(m.shape[0], dtype=m.dtype, device=m.device)
    for n in layers:
        prod = prod * param_norm(params, [n])
    m = m / prod[:, None]
    if weights is None:
        return torch.quantile(m, q, dim=1)
    if weights.shape != m.shape:
        raise ValueError(f"weights must have shape {tuple(m.shape)}, got {tuple(weights.shape)}")
    out = []
    for r in range(m.shape[0]):  # per-run subsets of different size: a tiny loop over R numbers
        out.append(torch.quantile(m[r][weights[r] > 0], q))
    return torch.stack(out)


def random_directions(params: Mapping[str, Tensor], names: Sequence[str], T: int, gen: torch.Generator,
                      support: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
    """``T`` isotropic random unit directions per run over the parameters ``names``: Gaussian entries
    (times the 0/1 ``support[name]`` broadcast to the parameter, e.g. a width mask), normalized to
    ``||delta w|| = 1`` over all ``names`` together.  Returns ``{name: [R, T, ...]}``."""
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be an integer >= 1, got {T!r}")
    param_norm(params, names)
    d = {}
    for n in names:
        p = params[n]
        z = torch.randn((p.shape[0], T) + tuple(p.shape[1:]), generator=gen, dtype=torch.float64)
        z = z.to(dtype=p.dtype, device=p.device)
        if support is not None and n in support:
            z = z * support[n].to(p)[:, None]
        d[n] = z
    norm = torch.sqrt(sum(v.flatten(2).pow(2).sum(2) for v in d.values()))
    if not bool((norm > 0).all()):
        raise ValueError("a direction has zero norm: the support selects no parameter")
    return {n: v / norm.reshape(norm.shape + (1,) * (v.dim() - 2)) for n, v in d.items()}


def _shifted(params: Mapping[str, Tensor], dirs: Mapping[str, Tensor], r: Tensor) -> dict[str, Tensor]:
    """Params of the ``R*T`` nets ``w + r delta w`` (run-major), ``r [R, T]``."""
    R, T = r.shape
    out = {}
    for n, p in params.items():
        rep = p[:, None].expand((R, T) + tuple(p.shape[1:]))
        if n in dirs:
            rep = rep + r.reshape((R, T) + (1,) * (p.dim() - 1)) * dirs[n]
        out[n] = rep.reshape((R * T,) + tuple(p.shape[1:]))
    return out


def flatness_radius(loss: Callable[[Mapping[str, Tensor]], Tensor], params: Mapping[str, Tensor],
                    dirs: Mapping[str, Tensor], eps: float, r0: float = 1e-3, r_max: float = 1e3,
                    bisections: int = 20) -> Tensor:
    """The flatness radius of Eq. 16 along each direction, ``[R, T]``::

        r(w, dw, eps) = sup{ r : |I(w) - I(w + r dw)| <= eps },

    read as the first crossing of ``|I(w + r dw) - I(w)| = eps`` on the geometric grid
    ``r0 * 2^k`` (up to ``r_max``; a direction that never crosses gets ``r_max``), refined by
    ``bisections`` bisection steps.  ``loss(params)`` must return one training loss per run for
    params with a leading axis of any size ``R * T`` (run-major: row ``i`` is run ``i // T``)."""
    if not eps > 0 or not r0 > 0 or not r_max > r0:
        raise ValueError(f"need eps > 0 and 0 < r0 < r_max, got eps={eps!r}, r0={r0!r}, r_max={r_max!r}")
    if not isinstance(bisections, int) or bisections < 0:
        raise ValueError(f"bisections must be an integer >= 0, got {bisections!r}")
    names = list(dirs)
    R, T = dirs[names[0]].shape[:2]
    with torch.no_grad():
        base = loss(params)
        if base.shape != (R,):
            raise ValueError(f"loss must return one value per run, shape ({R},); got {tuple(base.shape)}")
        base = base[:, None].expand(R, T)

        def over(r: Tensor) -> Tensor:
            v = loss(_shifted(params, dirs, r)).reshape(R, T)
            return ~((v - base).abs() <= eps)  # NaN counts as over

        like = dirs[names[0]]
        lo = torch.zeros(R, T, dtype=like.dtype, device=like.device)
        hi = torch.full((R, T), float(r_max), dtype=like.dtype, device=like.device)
        found = torch.zeros(R, T, dtype=torch.bool, device=like.device)
        r = float(r0)
        while r <= r_max:
            rt = torch.full((R, T), r, dtype=like.dtype, device=like.device)
            hit = over(rt) & ~found
            hi = torch.where(hit, rt, hi)
            lo = torch.where(~found & ~hit, rt, lo)
            found |= hit
            if bool(found.all()):
                break
            r *= 2
        lo = torch.where(found, lo, hi)
        for _ in range(bisections):
            mid = 0.5 * (lo + hi)
            o = over(mid) & found
            hi = torch.where(o, mid, hi)
            lo = torch.where(found & ~o, mid, lo)
        return torch.where(found, 0.5 * (lo + hi), hi)


def simplex_grid(steps: int, extend: int = 0, dtype: torch.dtype = torch.float64) -> Tensor:
    """Barycentric coordinates ``[G, 3]`` of a triangular lattice: ``lambda = (i, j, k) / steps`` with
    integers ``i, j, k >= -extend`` and ``i + j + k = steps`` (``extend > 0`` reaches outside the
    simplex of Eq. 15, as the paper's plots do)."""
    if not isinstance(steps, int) or steps < 1 or not isinstance(extend, int) or extend < 0:
        raise ValueError(f"steps must be an integer >= 1 and extend an integer >= 0, got {steps!r}, {extend!r}")
    pts = [(i, j, steps - i - j) for i in range(-extend, steps + 2 * extend + 1)
           for j in range(-extend, steps + 2 * extend + 1) if steps - i - j >= -extend]
    return torch.tensor(pts, dtype=dtype) / steps


def three_point_params(params: Mapping[str, Tensor], lam: Tensor) -> dict[str, Tensor]:
    """Eq. 15, ``w_lambda = lambda_1 w_1 + lambda_2 w_2 + lambda_3 w_3``, for triples of runs.

    ``params`` has ``R = 3 P`` runs, triple ``p`` being runs ``3p, 3p+1, 3p+2``; ``lam [G, 3]``.
    Returns params with ``P * G`` runs (triple-major)."""
    if lam.dim() != 2 or lam.shape[1] != 3:
        raise ValueError(f"lam must have shape [G, 3], got {tuple(lam.shape)}")
    out = {}
    for n, p in params.items():
        if p.shape[0] % 3:
            raise ValueError(f"params must hold triples of runs (R divisible by 3), got R={p.shape[0]}")
        P = p.shape[0] // 3
        trip = p.reshape((P, 3) + tuple(p.shape[1:])).flatten(2)  # [P, 3, K]
        mix = torch.einsum("gt,ptk->pgk", lam.to(trip), trip)
        out[n] = mix.reshape((P * lam.shape[0],) + tuple(p.shape[1:]))
    return out


def input_perturbation_error(forward: Forward, params: Mapping[str, Tensor], X: Tensor, labels: Tensor,
                             gammas: Sequence[float], gen: torch.Generator, draws: int = 1,
                             weights: Tensor | None = None) -> Tensor:
    """Eq. 47, the perturbation robustness ``E(f, S_n, gamma) = (1/n) sum_i 1[f(x_i + gamma eps_i) != y_i]``
    with i.i.d. standard Gaussian ``eps_i`` (``draws`` independent draws averaged), on the training set
    ``X [R, m, ...]``, ``labels [R, m]``.  Returns ``[len(gammas), R]``."""
    gammas = [float(g) for g in gammas]
    if not gammas or not all(g >= 0 for g in gammas):
        raise ValueError(f"gammas must be a non-empty list of numbers >= 0, got {gammas!r}")
    if not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be an integer >= 1, got {draws!r}")
    out = []
    with torch.no_grad():
        noise = [torch.randn(X.shape, generator=gen, dtype=torch.float64).to(X) for _ in range(draws)]
        for g in gammas:
            errs = [multiclass_error(forward(params, X + g * z), labels, weights) for z in noise]
            out.append(torch.stack(errs).mean(0))
    return torch.stack(out)

