"""Exact Gibbs integrals for the flat-minima potentials of Sec. 5.2 / Figs. 7-10 of :cite:`theory_iii`.

Eq. 9 of the paper: the asymptotic law of the Langevin equation (GDL) and of SGDL is the Boltzmann
(Gibbs) distribution ``p(w) = exp(-U(w)/T) / Z``.  The paper does not print the potentials of its
Figs. 7-10; the two below take their shapes, centres, widths and periods from the authors' public
experiment code (GitHub ``brando90/basin_expts``; facts only, no code copied):

- :class:`GaussianWells` (``basin_GDL``, Fig. 7): on the torus ``[0, L)^D`` with ``L = 18``,
  ``U(w) = 1 - G_1(w) - G_2(w)``, ``G_k(w) = exp(-|w - mu_k 1|^2 / (2 s_k^2))``, ``mu = (4, 12)``,
  ``s = (1, 2)``: two minima of equal depth 0 on a plateau ``U = 1``; the second is "a factor 2
  larger in each of the dimensions".  Distances are periodic (basin_expts uses the plain difference
  inside ``[0, 18)``; the two differ by at most ``exp(-4.5)`` in ``U``, at the wrap).
- :class:`WedgeValley` (``wedges_GDL``, Figs. 8-10): on ``[0, L)^D`` with ``L = 12``,
  ``U(w) = 1 - P(w) - V(w_a)`` with an isolated pyramid ``P = (1 - |w - c 1|_inf)_+`` (``c = 3``,
  an L-infinity pyramid of depth 1 on the cube ``[2, 4]^D``) and a degenerate valley
  ``V = (1 - |w_a - v|)_+`` (``v = 9``) that depends on one coordinate ``a`` only (``W_2``), so that
  it is flat in the other ``D - 1`` directions.  Both minima have depth 0.

Exact integrals.  Write ``exp(-U/T) = e^{-1/T} exp(G_1/T) exp(G_2/T)``.  For the Gaussian wells the
double series ``exp(G_1/T) exp(G_2/T) = sum_{n,m} G_1^n G_2^m / (T^{n+m} n! m!)`` has terms that
are products over coordinates, so the Gibbs mass of any box ``I^D`` is
``e^{-1/T} sum_{n,m} c_nm(I)^D / (T^{n+m} n! m!)`` with one-dimensional integrals
``c_nm(I) = int_I phi_1^n phi_2^m`` (Gauss-Legendre quadrature).  All terms are positive (no
cancellation); the sum is taken in log space.  The "excess mass" of well ``k`` over the plateau,
``M_k = int (exp(-(1 - G_k)/T) - e^{-1/T}) dw = e^{-1/T} sum_{n>=1} (s_k sqrt(2 pi/n))^D / (T^n n!)``
(untruncated wells), scales as ``s_k^D``, so ``M_2 / M_1 = 2^D`` at every temperature: the
volume factor behind eq. 9's preference for the wider minimum.

For the wedge the supports are disjoint and everything is closed form:
``Z_iso = int_{cube} e^{-U/T} = D! (2T)^D P(D, 1/T)`` (``P`` the regularized lower incomplete gamma
function; L-infinity shells have volume ``D 2^D r^{D-1} dr``), ``Z_valley = 2T(1 - e^{-1/T}) L^{D-1}``,
``Z_plateau = e^{-1/T} (L^D - 2^D - 2 L^{D-1})``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import gammainc, gammaln, logsumexp

__all__ = ["GaussianWells", "WedgeValley", "periodic_diff", "n_series_terms"]


def _check_T(T) -> float:
    try:
        T = float(T)
    except (TypeError, ValueError):
        raise ValueError(f"temperature T must be a positive finite number, got {T!r}") from None
    if not (T > 0) or not math.isfinite(T):
        raise ValueError(f"temperature T must be a positive finite number, got {T}")
    return T


def _check_D(D, low: int = 1) -> int:
    if isinstance(D, bool) or not isinstance(D, (int, np.integer)) or int(D) < low:
        raise ValueError(f"dimension D must be an integer >= {low}, got {D!r}")
    return int(D)


def periodic_diff(x: torch.Tensor, center: float, period: float) -> torch.Tensor:
    """``x - center`` wrapped to ``[-period/2, period/2)`` (the signed torus difference)."""
    return torch.remainder(x - center + period / 2, period) - period / 2


def n_series_terms(T: float) -> int:
    """Terms kept in each index of the double series: ``3/T + 60`` (the terms ``a^n / n!`` with
    ``a <= L/T`` peak at ``n ~ a`` and are below ``1e-16`` of the peak beyond ``n = 3/T + 60``
    for the masses used here, whose 1-D factors ``c_nm <= 1`` for ``n + m >= 1``)."""
    return int(3.0 / _check_T(T)) + 60


def _gauss_legendre(a: float, b: float, panels: int, order: int = 16):
    x, w = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(a, b, panels + 1)
    mid, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
    nodes = (mid[:, None] + half[:, None] * x[None, :]).ravel()
    weights = (half[:, None] * w[None, :]).ravel()
    return nodes, weights


@dataclass(frozen=True)
class GaussianWells:
    """Two Gaussian wells of equal depth on a torus (Fig. 7 of :cite:`theory_iii`; see module doc)."""

    centers: tuple[float, float] = (4.0, 12.0)
    widths: tuple[float, float] = (1.0, 2.0)
    period: float = 18.0
    #: half-widths of the basin boxes, in units of each well's width (boxes ``mu_k +- h s_k``).
    box_halfwidth: float = 2.5

    def __post_init__(self):
        if len(self.centers) != 2 or len(self.widths) != 2 or not all(s > 0 for s in self.widths):
            raise ValueError(f"need two centers and two positive widths, got {self.centers}, {self.widths}")
        if not self.period > 0:
            raise ValueError(f"period must be positive, got {self.period}")
        lo = [c - self.box_halfwidth * s for c, s in zip(self.centers, self.widths)]
        hi = [c + self.box_halfwidth * s for c, s in zip(self.centers, self.widths)]
        if min(lo) < 0 or max(hi) > self.period or hi[0] > lo[1]:
            raise ValueError("the basin boxes must be disjoint and inside [0, period)")

    # -- potential (torch, batched over leading axes; the last axis is the coordinate) -----------
    def _phis(self, x: torch.Tensor, mask: torch.Tensor | None):
        out = []
        for mu, s in zip(self.centers, self.widths):
            d = periodic_diff(x, mu, self.period)
            q = d * d if mask is None else d * d * mask
            out.append((d, torch.exp(-q.sum(-1) / (2 * s * s))))
        return out

    def potential(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``U(x)`` for ``x [..., D]``; ``mask`` (0/1, broadcast to ``x``) switches coordinates off."""
        (_, g1), (_, g2) = self._phis(x, mask)
        return 1.0 - g1 - g2

    def grad(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``grad U(x) = sum_k G_k(x) d_k / s_k^2`` (``d_k`` the periodic difference to ``mu_k``)."""
        g = torch.zeros_like(x)
        for (d, gk), s in zip(self._phis(x, mask), self.widths):
            g = g + gk.unsqueeze(-1) * d / (s * s)
        return g if mask is None else g * mask

    def basin(self, x: torch.Tensor, mask: torch.Tensor | None = None, tol: float = 1e-9) -> torch.Tensor:
        """Basin label per point: 1 or 2 inside box ``k`` (every active coordinate within
        ``h s_k - tol`` of ``mu_k``), 0 outside both boxes by more than ``tol``, -1 undecided (within
        ``tol`` of a box face; callers count it 1/2, so no label depends on the last bit)."""
        lab = torch.zeros(x.shape[:-1], dtype=torch.int64)
        und = torch.zeros(x.shape[:-1], dtype=torch.bool)
        for k, (mu, s) in enumerate(zip(self.centers, self.widths), start=1):
            a = periodic_diff(x, mu, self.period).abs() - self.box_halfwidth * s
            if mask is not None:
                a = torch.where(mask > 0, a, torch.full_like(a, -1.0))
            inside = (a < -tol).all(-1)
            edge = ~inside & (a <= tol).all(-1)
            lab = torch.where(inside, torch.full_like(lab, k), lab)
            und = und | edge
        return torch.where(und, torch.full_like(lab, -1), lab)

    # -- exact integrals (numpy float64) ---------------------------------------------------------
    def phi(self, k: int, x: np.ndarray) -> np.ndarray:
        """1-D factor ``phi_k(x) = exp(-d(x, mu_k)^2 / (2 s_k^2))`` with the periodic distance."""
        L = self.period
        d = np.remainder(np.asarray(x, dtype=np.float64) - self.centers[k] + L / 2, L) - L / 2
        return np.exp(-d * d / (2 * self.widths[k] ** 2))

    @functools.lru_cache(maxsize=64)  # noqa: B019 (frozen dataclass: hashable, few instances)
    def _log_c(self, a: float, b: float, N: int) -> np.ndarray:
        """``log c_nm = log int_a^b phi_1^n phi_2^m dx`` for ``n, m < N`` (``[N, N]``)."""
        if not 0 <= a < b <= self.period:
            raise ValueError(f"interval [{a}, {b}] must lie in [0, {self.period}]")
        x, w = _gauss_legendre(a, b, panels=max(8, math.ceil(5 * (b - a))))
        n = np.arange(N, dtype=np.float64)
        p1 = self.phi(0, x)[:, None] ** n[None, :]  # [nodes, N]; underflow to 0 only where negligible
        p2 = self.phi(1, x)[:, None] ** n[None, :]
        c = p1.T @ (w[:, None] * p2)
        with np.errstate(divide="ignore"):
            return np.log(c)

    def _log_weights(self, T: float, N: int) -> np.ndarray:
        n = np.arange(N, dtype=np.float64)
        lw = -n * math.log(T) - gammaln(n + 1)
        return lw[:, None] + lw[None, :]

    def box(self, k: int) -> tuple[float, float]:
        """The basin box ``[mu_k - h s_k, mu_k + h s_k]`` of well ``k`` (0 or 1), per coordinate."""
        if k not in (0, 1):
            raise ValueError(f"well index k must be 0 or 1, got {k!r}")
        return (self.centers[k] - self.box_halfwidth * self.widths[k],
                self.centers[k] + self.box_halfwidth * self.widths[k])

    def log_mass(self, T: float, D: int, interval: tuple[float, float] | None = None) -> float:
        """``log int_{I^D} exp(-(U - 1)/T) dw`` (the Gibbs mass times ``e^{1/T}``) of the box
        ``I^D``; ``interval=None`` is the whole torus."""
        T, D = _check_T(T), _check_D(D)
        a, b = interval if interval is not None else (0.0, self.period)
        N = n_series_terms(T)
        return float(logsumexp(D * self._log_c(a, b, N) + self._log_weights(T, N)))

    def basin_probabilities(self, T: float, D: int) -> np.ndarray:
        """Exact Gibbs probabilities ``[P(box 1), P(box 2), P(rest)]`` on the torus ``[0, L)^D``."""
        lz = self.log_mass(T, D)
        p = np.array([math.exp(self.log_mass(T, D, self.box(k)) - lz) for k in (0, 1)])
        return np.append(p, 1.0 - p.sum())

    def log_excess_mass(self, T: float, D: int, k: int) -> float:
        """``log (M_k e^{1/T})``, ``M_k = int (exp(-(1-G_k)/T) - e^{-1/T}) dw`` over ``R^D`` for the
        untruncated well ``k``: ``log sum_{n>=1} (s_k sqrt(2 pi / n))^D / (T^n n!)`` (closed form)."""
        T, D = _check_T(T), _check_D(D)
        if k not in (0, 1):
            raise ValueError(f"well index k must be 0 or 1, got {k!r}")
        n = np.arange(1, n_series_terms(T) + 1, dtype=np.float64)
        terms = D * (math.log(self.widths[k]) + 0.5 * np.log(2 * np.pi / n)) - n * math.log(T) - gammaln(n + 1)
        return float(logsumexp(terms))

    def slice_density(self, T: float, D: int, x: np.ndarray) -> np.ndarray:
        """Exact marginal density of one coordinate ``w_1`` at points ``x`` (Figs. 7, 9 histograms):
        ``p(x) = sum_nm phi_1(x)^n phi_2(x)^m c_nm^{D-1} / (T^{n+m} n! m!) / sum_nm c_nm^D (...)``."""
        T, D = _check_T(T), _check_D(D)
        N = n_series_terms(T)
        lc, lw = self._log_c(0.0, self.period, N), self._log_weights(T, N)
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(divide="ignore"):
            l1, l2 = np.log(self.phi(0, x)), np.log(self.phi(1, x))
        n = np.arange(N, dtype=np.float64)
        base = ((D - 1) * lc if D > 1 else np.zeros_like(lc)) + lw
        expo = base[None] + n[None, :, None] * l1.ravel()[:, None, None] + n[None, None, :] * l2.ravel()[:, None, None]
        lp = logsumexp(expo.reshape(expo.shape[0], -1), axis=1) - logsumexp(D * lc + lw)
        return np.exp(lp).reshape(x.shape)


@dataclass(frozen=True)
class WedgeValley:
    """Isolated L-infinity pyramid plus a degenerate one-coordinate valley on a torus (Figs. 8-10)."""

    iso_center: float = 3.0
    valley_center: float = 9.0
    valley_axis: int = 1
    period: float = 12.0

    def __post_init__(self):
        if not self.period > 0 or self.valley_axis < 0:
            raise ValueError(f"period must be positive and valley_axis >= 0, got {self.period}, {self.valley_axis}")
        d = abs(self.valley_center - self.iso_center)
        if min(d, self.period - d) < 2:
            raise ValueError("the pyramid [c-1, c+1] and the valley [v-1, v+1] must not overlap")

    def _check_x(self, x: torch.Tensor):
        if x.shape[-1] <= self.valley_axis:
            raise ValueError(f"x needs at least {self.valley_axis + 1} coordinates, got shape {tuple(x.shape)}")

    def potential(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``U = 1 - (1 - |x - c|_inf)_+ - (1 - |x_a - v|)_+`` (inactive coordinates masked out)."""
        self._check_x(x)
        d = periodic_diff(x, self.iso_center, self.period).abs()
        if mask is not None:
            d = d * mask
        p = torch.clamp(1 - d.amax(-1), min=0)
        v = torch.clamp(1 - periodic_diff(x[..., self.valley_axis], self.valley_center, self.period).abs(), min=0)
        return 1.0 - p - v

    def grad(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """A.e. gradient: ``sign(d_j)`` on the arg-max coordinate ``j`` inside the pyramid's cube
        (ties at a face: the first arg-max), ``sign(x_a - v)`` on the valley's slopes, 0 on the plateau."""
        self._check_x(x)
        dd = periodic_diff(x, self.iso_center, self.period)
        ad = dd.abs() if mask is None else dd.abs() * mask
        m, j = ad.max(-1)
        inside = (m < 1).to(x.dtype)
        g = torch.zeros_like(x).scatter(-1, j.unsqueeze(-1),
                                        (torch.sign(dd.gather(-1, j.unsqueeze(-1))) * inside.unsqueeze(-1)))
        dv = periodic_diff(x[..., self.valley_axis], self.valley_center, self.period)
        gv = torch.sign(dv) * (dv.abs() < 1).to(x.dtype)
        g[..., self.valley_axis] = g[..., self.valley_axis] + gv
        return g if mask is None else g * mask

    def basin(self, x: torch.Tensor, mask: torch.Tensor | None = None, tol: float = 1e-9) -> torch.Tensor:
        """1: inside the pyramid's cube ``|x - c|_inf < 1`` (isolated minimum); 2: in the valley's
        slab ``|x_a - v| < 1``; 0: plateau; -1: within ``tol`` of a boundary (counted 1/2)."""
        self._check_x(x)
        d = periodic_diff(x, self.iso_center, self.period).abs()
        if mask is not None:
            d = d * mask
        m = d.amax(-1)
        dv = periodic_diff(x[..., self.valley_axis], self.valley_center, self.period).abs()
        lab = torch.zeros(x.shape[:-1], dtype=torch.int64)
        lab = torch.where(m < 1 - tol, torch.full_like(lab, 1), lab)
        lab = torch.where(dv < 1 - tol, torch.full_like(lab, 2), lab)
        und = ((m - 1).abs() <= tol) | ((dv - 1).abs() <= tol)
        return torch.where(und, torch.full_like(lab, -1), lab)

    def masses(self, T: float, D: int) -> dict[str, float]:
        """Exact Gibbs masses ``e^{1/T} int exp(-U/T)`` over the three regions.

        Closed form (D >= 2)::

            iso     = D! (2T)^D P(D, 1/T) e^{1/T}                  (the cube |w - c|_inf < 1)
            valley  = 2T (e^{1/T} - 1) L^{D-1}                     (the slab |w_a - v| < 1)
            plateau = L^D - 2^D - 2 L^{D-1}
        """
        T, D = _check_T(T), _check_D(D, low=self.valley_axis + 1)
        L = self.period
        iso = math.exp(gammaln(D + 1) + D * math.log(2 * T) + 1 / T) * float(gammainc(D, 1 / T))
        valley = 2 * T * math.expm1(1 / T) * L ** (D - 1)
        plateau = L**D - 2**D - 2 * L ** (D - 1)
        return {"iso": iso, "valley": valley, "plateau": plateau}

    def basin_probabilities(self, T: float, D: int) -> np.ndarray:
        """Exact Gibbs probabilities ``[P(isolated cube), P(valley slab), P(plateau)]``."""
        m = self.masses(T, D)
        z = m["iso"] + m["valley"] + m["plateau"]
        return np.array([m["iso"], m["valley"], m["plateau"]]) / z
