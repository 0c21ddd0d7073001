"""Batched Langevin (GDL) chains on a potential: many chains as one tensor program.

The discretized Langevin equation (GDL; Sec. 5.1 of :cite:`theory_iii`, eq. 8 with Gaussian noise)::

    x_{t+1} = x_t - eta grad U(x_t) + sqrt(2 eta T) N(0, I)

has, as ``eta -> 0``, the Gibbs law ``exp(-U/T) / Z`` (eq. 9) as its stationary distribution.  This
is the convention of the whole module: ``temperature`` is ``T`` in ``exp(-U/T)``.  A code that
writes the update as ``x - eta grad U + A N(0, I)`` (as the authors' ``basin_expts`` does) runs at
``T = A^2 / (2 eta)``; :func:`temperature_from_noise` converts.  At finite ``eta`` the chain is
biased: on a quadratic well of curvature ``k`` its stationary variance is ``(T/k) * 2/(2 - eta k)``
(:func:`discrete_ou_variance`), exact for the linear recursion.

Chains: ``x0 [..., D]``; ``step`` and ``temperature`` broadcast against ``x0.shape[:-1]`` (one value
per chain or per group of chains), so a sweep over step sizes and temperatures is one program.
``mask`` (0/1, broadcast to ``x0``) freezes coordinates (several dimensions ``D`` padded to one
``D_max``).  ``period`` wraps states onto the torus ``[0, period)``.  Noise comes from one explicit
CPU ``torch.Generator``: the draws are the same on every CPU.  A chain whose state becomes
non-finite raises :class:`LangevinDiverged` naming the step and the chains.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["LangevinDiverged", "LangevinResult", "run_chains", "temperature_from_noise",
           "discrete_ou_variance"]


class LangevinDiverged(FloatingPointError):
    """Raised when a chain's state or gradient becomes NaN or infinite."""


@dataclass
class LangevinResult:
    """Final states ``x [..., D]`` and the states recorded at the steps in ``record_at``
    (``snapshots [len(record_at), ..., D]``)."""

    x: torch.Tensor
    snapshots: torch.Tensor
    record_at: tuple[int, ...]
    n_steps: int


def temperature_from_noise(noise_std: float, step: float) -> float:
    """``T = A^2 / (2 eta)`` for an update ``x - eta grad U + A N(0, 1)``."""
    a, e = float(noise_std), float(step)
    if not (a >= 0) or not math.isfinite(a) or not (e > 0) or not math.isfinite(e):
        raise ValueError(f"need noise_std >= 0 and step > 0 (finite), got {noise_std}, {step}")
    return a * a / (2 * e)


def discrete_ou_variance(T: float, curvature: float, step: float) -> float:
    """Stationary variance of ``x <- x - eta k x + sqrt(2 eta T) N(0,1)``: ``2 eta T / (1 - (1 - eta k)^2)``
    ``= (T / k) * 2 / (2 - eta k)`` (finite only for ``0 < eta k < 2``)."""
    T, k, e = float(T), float(curvature), float(step)
    if not (T > 0) or not (k > 0) or not (e > 0) or not (e * k < 2):
        raise ValueError(f"need T > 0, curvature > 0, step > 0 and step*curvature < 2; got {T}, {k}, {e}")
    return (T / k) * 2 / (2 - e * k)


def _positive(name: str, v, shape, dtype) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=dtype)
    if t.numel() == 0 or not bool(torch.all(t > 0)) or not bool(torch.all(torch.isfinite(t))):
        raise ValueError(f"{name} must be positive and finite (every entry), got {v!r}")
    try:
        t = torch.broadcast_to(t, shape)
    except RuntimeError:
        raise ValueError(f"{name} with shape {tuple(t.shape)} does not broadcast to the chains' shape "
                         f"{tuple(shape)}") from None
    return t


def run_chains(grad: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, step, temperature,
               n_steps: int, generator: torch.Generator, *, mask: torch.Tensor | None = None,
               period: float | None = None, record_at: tuple[int, ...] = (), check_every: int = 100,
               noise: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None) -> LangevinResult:
    """Run ``n_steps`` of GDL for all chains at once (module doc).

    ``grad(x)`` returns ``grad U`` with ``x``'s shape.  ``noise(x, generator)``, when given, replaces
    the Gaussian term ``sqrt(2 eta T) N(0, I)`` (e.g. SGD's minibatch noise); ``temperature`` is then
    only validated.  ``record_at``: step counts (1..n_steps) at which to store a copy of the states.
    """
    if not isinstance(x0, torch.Tensor) or x0.dim() < 1 or not x0.is_floating_point():
        raise ValueError("x0 must be a floating tensor [..., D]")
    if not bool(torch.all(torch.isfinite(x0))):
        raise ValueError("x0 must be finite")
    if isinstance(n_steps, bool) or int(n_steps) != n_steps or int(n_steps) < 0:
        raise ValueError(f"n_steps must be a non-negative integer, got {n_steps!r}")
    if not isinstance(generator, torch.Generator):
        raise ValueError("generator must be a torch.Generator (randomness is passed explicitly)")
    if period is not None and (not (float(period) > 0) or not math.isfinite(float(period))):
        raise ValueError(f"period must be None or positive and finite, got {period!r}")
    if int(check_every) < 1:
        raise ValueError(f"check_every must be >= 1, got {check_every}")
    record_at = tuple(int(r) for r in record_at)
    if any(r < 1 or r > n_steps for r in record_at):
        raise ValueError(f"record_at entries must lie in 1..n_steps={n_steps}, got {record_at}")
    chains = x0.shape[:-1]
    eta = _positive("step", step, chains, x0.dtype).unsqueeze(-1)
    T = _positive("temperature", temperature, chains, x0.dtype).unsqueeze(-1)
    scale = torch.sqrt(2 * eta * T)
    m = None if mask is None else torch.broadcast_to(mask.to(x0.dtype), x0.shape)
    x = x0.clone()
    snaps = []
    for t in range(1, int(n_steps) + 1):
        g = grad(x)
        if noise is None:
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            dx = scale * z
        else:
            dx = noise(x, generator)
        upd = eta * g - dx
        if m is not None:
            upd = upd * m
        x = x - upd
        if period is not None:
            x = torch.remainder(x, period)
        if t % check_every == 0 or t == n_steps:
            bad = ~torch.isfinite(x).all(-1)
            if bool(bad.any()):
                idx = bad.nonzero()[:5].tolist()
                raise LangevinDiverged(
                    f"Langevin chains diverged (non-finite state) by step {t}: {int(bad.sum())} chain(s), "
                    f"first indices {idx}; lower the step size (step*curvature must stay below 2)")
        if t in record_at:
            snaps.append(x.clone())
    snapshots = torch.stack(snaps) if snaps else x.new_zeros((0, *x.shape))
    return LangevinResult(x=x, snapshots=snapshots, record_at=record_at, n_steps=int(n_steps))
