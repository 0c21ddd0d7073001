"""The asymptotic error of Conv-k averaged over the initialization (Eq. 3 with Lemma 1), :cite:`gd_conv_linear`.

Lemma 1 (w2^0 = 0): w_inf = (V_{:m} V_{:m}^T w1^0, U_{:m} V_{:m}^T w1^0), so with z = V_{:m}^T w1^0 the
asymptotic margin of a test point is F_inf(x, y) = z^T Q_x z, Q_x = V_{:m}^T M_{x,y}^T U_{:m} (an m x m
matrix, m the multiplicity of sigma_1).  For w1^0 ~ N(0, b^2 I_k), z ~ N(0, b^2 I_m), so per training set
the expected error over initializations is::

    E_{w1^0} Ē(F_inf) = E_{(x,y)} Pr_{z ~ N(0, I_m)}( sum_i lambda_i(x) z_i^2 < 0 )

with lambda_i(x) the eigenvalues of sym(Q_x) (z is isotropic, so only the spectrum matters).  This is the
quantity Eq. 3 averages; Theorem 2's min over UV_1 (= lambda_min) only bounds it when m > 1.

Per test point: all lambda = 0 -> 1/2 (a tie); none negative -> 0; none positive -> 1; one positive and one
negative non-zero eigenvalue (always the case for m = 2 with mixed signs) -> ``(2/pi) arctan sqrt(|lambda_-|
/ lambda_+)``, exactly (z_1^2 / z_2^2 has the law of tan^2 of a uniform angle); more non-zero eigenvalues of both
signs (m >= 3) -> Monte Carlo over ``draws`` Gaussian z from an explicit generator.  Eigenvalues with
``|lambda| <= tie_tol * max |lambda|`` over the run's test points count as 0 (rounding of an SVD never
produces exact zeros; the same convention as ``cnnbias.theory.convlinear.TIE_TOL``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cnnbias import validate as chk
from cnnbias.data.positions import PositionTask
from cnnbias.models.linear import conv_effective_weight
from cnnbias.theory.convlinear import TIE_TOL, svd, thm2_error


def sym_q_eigenvalues(M: Tensor, task: PositionTask, m: int) -> Tensor:
    """Eigenvalues [R, N, m] (ascending) of sym(V_{:m}^T M_{x,y}^T U_{:m}) for every test point, for training
    sets M [R, d, k] whose top singular value has multiplicity m (U_{:m} = M V_{:m} / sigma_1)."""
    chk.floating_tensor("M", M, 3)
    chk.integer("m", m, 1, M.shape[2])
    if M.shape[1] != task.d:
        raise ValueError(f"M must have shape [R, d, k] with d = task.d = {task.d}, got {tuple(M.shape)}")
    _U, S, V = svd(M)
    R, d, k = M.shape
    Vm = V[:, :, :m]
    Um = torch.einsum("rdk,rkj->rdj", M, Vm) / S[:, :1, None]
    w1 = Vm.permute(0, 2, 1)[:, :, None, :].expand(R, m, m, k).reshape(-1, k)
    w2 = Um.permute(0, 2, 1)[:, None, :, :].expand(R, m, m, d).reshape(-1, d)
    w = conv_effective_weight(w1, w2).reshape(R, m * m, d)
    q = (w[:, :, task.pos] * task.val).sum(-1) * task.y  # [R, m*m, N]
    Q = q.reshape(R, m, m, task.N).permute(0, 3, 1, 2)
    return torch.linalg.eigvalsh(0.5 * (Q + Q.transpose(-1, -2)))


def expected_error_from_spectra(
    lam: Tensor, draws: int, generator: torch.Generator, tie_tol: float = TIE_TOL
) -> tuple[Tensor, Tensor]:
    """Per run, E_{(x,y)} Pr_z(sum_i lam_i z_i^2 < 0) (+1/2 Pr(= 0)) from the spectra lam [R, N, m].

    Returns (error [R], Monte Carlo standard error [R]); the SE is 0 for the runs computed exactly (no test
    point with three or more non-zero eigenvalues of mixed signs)."""
    chk.floating_tensor("lam", lam, 3)
    chk.integer("draws", draws, 2)
    chk.generator("generator", generator)
    chk.nonnegative("tie_tol", tie_tol)
    R, N, m = lam.shape
    scale = lam.abs().amax(dim=(1, 2), keepdim=True)
    lam = torch.where(lam.abs() <= tie_tol * scale, torch.zeros_like(lam), lam)
    pos = (lam > 0).sum(-1)
    neg = (lam < 0).sum(-1)
    err = torch.where(pos == 0, torch.where(neg == 0, 0.5, 1.0), 0.0).to(lam.dtype)  # [R, N]
    two = (pos == 1) & (neg == 1)
    lp = torch.where(lam > 0, lam, torch.zeros_like(lam)).sum(-1)
    ln = torch.where(lam < 0, -lam, torch.zeros_like(lam)).sum(-1)
    ratio = torch.where(two, ln / torch.where(two, lp, torch.ones_like(lp)), torch.zeros_like(lp))
    err = torch.where(two, (2.0 / math.pi) * torch.atan(torch.sqrt(ratio)), err)
    mc = (pos > 0) & (neg > 0) & ~two
    se = torch.zeros(R, dtype=lam.dtype, device=lam.device)
    out = err.mean(-1)
    rows = mc.any(-1).nonzero().flatten().tolist()
    for r in rows:
        z2 = torch.randn(draws, m, generator=generator, dtype=lam.dtype).to(lam.device) ** 2
        f = z2 @ lam[r].T  # [draws, N]
        e = (f < 0).to(lam.dtype) + 0.5 * (f == 0).to(lam.dtype)
        per_draw = torch.where(mc[r][None, :], e, err[r][None, :]).mean(-1)  # [draws]
        out[r] = per_draw.mean()
        se[r] = per_draw.std(unbiased=True) / math.sqrt(draws)
    return out, se


def lemma1_expected_error(
    M: Tensor,
    task: PositionTask,
    generator: torch.Generator,
    draws: int = 4000,
    rtol: float = 1e-9,
    tie_tol: float = TIE_TOL,
) -> tuple[Tensor, Tensor, Tensor]:
    """E_{w1^0 ~ N(0, I)} E(w_inf; D) per training set (Eq. 3 before the average over D_tr), w2^0 = 0.

    Returns (error [R], Monte Carlo SE [R] (0 where exact), m [R]).  For m = 1 this is Theorem 2's value
    (:func:`cnnbias.theory.convlinear.thm2_error`, exact); for m > 1 it is computed from the spectra of
    sym(Q_x) (module docstring), exactly unless a test point has >= 3 non-zero eigenvalues of mixed signs.
    """
    chk.floating_tensor("M", M, 3)
    base, m = thm2_error(M, task, rtol, tie_tol)
    out = base.clone()
    se = torch.zeros_like(base)
    for mm in torch.unique(m).tolist():
        if mm == 1:
            continue
        rr = (m == mm).nonzero().flatten()
        lam = sym_q_eigenvalues(M[rr], task, mm)
        e, s = expected_error_from_spectra(lam, draws, generator, tie_tol)
        out[rr], se[rr] = e, s
    return out, se, m


__all__ = ["expected_error_from_spectra", "lemma1_expected_error", "sym_q_eigenvalues"]
