"""Closed forms for two-layer convolutional linear classifiers :cite:`gd_conv_linear` (Sections 2.2, 3.1-3.2, App. A-B).

Notation (paper, Section 2.2): for x in R^d, A_x = [x, x^{<-1}, ..., x^{<-(k-1)}] in R^{d x k} with
(A_x)_{i,j} = x_{i+j-1} (zero when out of range); f_w(x) = w1^T A_x^T w2; M_{x,y} = y A_x;
M_tr = (1/n) sum_{(x,y) in D_tr} M_{x,y} = A_{xbar} with xbar = mean of y x (A is linear in x).

X-hinge loss (Section 3.1): l(w; x, y) = -y f_w(x), so L = -w1^T M_tr^T w2 and full-batch GD is the LINEAR map
w1 <- w1 + alpha M_tr^T w2,  w2 <- w2 + alpha M_tr w1.

Lemma 7 (App. A): with the thin SVD M_tr = U Sigma V^T (U [d, k], V [k, k])::

    w1^t = 1/2 V (Lam+ V^T w1^0 + Lam- U^T w2^0),
    w2^t = 1/2 U (Lam- V^T w1^0 + Lam+ U^T w2^0) - U U^T w2^0 + w2^0,
    Lam+- = (I + alpha Sigma)^t +- (I - alpha Sigma)^t.

The iterates grow like (1 + alpha sigma_1)^t; ``lemma7(..., scaled=True)`` returns them divided by
(1 + alpha sigma_1)^t, computed from the ratios ((1 +- alpha sigma_i)/(1 + alpha sigma_1))^t, all in [-1, 1],
so nothing overflows for any t.  (The GD map is linear, so the direction of the iterate is unchanged by
rescaling; ``xhinge_gd(..., normalize=True)`` rescales every step and accumulates log-norms.)

Lemma 1: lim 2 w1^t / (1 + alpha sigma_1)^t = V_{:m} V_{:m}^T w1^0 and
         lim 2 w2^t / (1 + alpha sigma_1)^t = U_{:m} V_{:m}^T w1^0  (w2^0 = 0), m = multiplicity of sigma_1.
         (For w2^0 != 0 Lemma 7 gives V_{:m} c and U_{:m} c with c = V_{:m}^T w1^0 + U_{:m}^T w2^0.)

Theorem 2: E_inf <= E_{D_tr,(x,y)} Ē( min_{(u,v) in UV_1(M_tr)} v^T M_{x,y}^T u ), with equality when m = 1.
The pairs with singular value sigma_1 are (U_{:m} z, V_{:m} z), ||z|| = 1, so the minimum equals the smallest
eigenvalue of the symmetric part of Q_x = V_{:m}^T M_{x,y}^T U_{:m} (an m x m matrix).
"""

from __future__ import annotations

import torch
from torch import Tensor

from cnnbias import validate as chk
from cnnbias.data.positions import PositionTask, check_task, check_training_set, mean_yx
from cnnbias.models.linear import conv_effective_weight, ebar, scores


# ----------------------------------------------------------------------------------------------------------------
# A_x, M_{x,y}, M_tr
# ----------------------------------------------------------------------------------------------------------------
def shift_matrix(x: Tensor, k: int) -> Tensor:
    """A_x [..., d, k] with A_x[..., i, j] = x[..., i + j] (0-based; zero padding), Fig. 3 of the paper."""
    chk.floating_tensor("x", x)
    if x.dim() == 0:
        raise ValueError("x must have shape [..., d] (at least one dimension), got a 0-d tensor")
    d = x.shape[-1]
    chk.integer("k", k, 1)
    if not 1 <= k <= d:
        raise ValueError(f"k must satisfy 1 <= k <= d={d}, got {k}")
    xp = torch.nn.functional.pad(x, (0, k - 1))
    return xp.unfold(-1, k, 1)


def m_xy(x: Tensor, y: Tensor, k: int) -> Tensor:
    """M_{x,y} = y A_x  ([..., d] and [...] -> [..., d, k])."""
    chk.tensor("y", y)
    chk.tensor("x", x)
    if x.dim() == 0 or tuple(y.shape) != tuple(x.shape[:-1]):
        raise ValueError(f"x [..., d] and y [...] must agree, got {tuple(x.shape)} and {tuple(y.shape)}")
    return y[..., None, None] * shift_matrix(x, k)


def m_train(task: PositionTask, idx: Tensor, k: int, mask: Tensor | None = None) -> Tensor:
    """M_tr [R, d, k] = (1/n) sum M_{x,y} over each run's training set = A_{mean(y x)}."""
    check_training_set(task, idx, mask)
    return shift_matrix(mean_yx(task, idx, mask), k)


# ----------------------------------------------------------------------------------------------------------------
# X-hinge dynamics
# ----------------------------------------------------------------------------------------------------------------
def xhinge_step(M: Tensor, w1: Tensor, w2: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """One full-batch GD step on the X-hinge loss: (w1 + alpha M^T w2, w2 + alpha M w1)  (batched: M [R, d, k])."""
    _check_Mw(M, w1, w2)
    chk.positive("alpha", alpha)
    return (
        w1 + alpha * torch.einsum("rdk,rd->rk", M, w2),
        w2 + alpha * torch.einsum("rdk,rk->rd", M, w1),
    )


def xhinge_gd(
    M: Tensor,
    w1: Tensor,
    w2: Tensor,
    alpha: float,
    steps: int,
    normalize: bool = False,
    renorm_every: int = 20,
) -> tuple[Tensor, Tensor, Tensor]:
    """Run ``steps`` X-hinge GD steps.  Returns (w1, w2, log_scale) with true iterate = exp(log_scale) * (w1, w2).

    With ``normalize`` the pair is divided by its norm every ``renorm_every`` steps and after the last one (the map
    is linear, so directions are exact; between renormalizations the norm grows at most by
    (1 + alpha sigma_1)^renorm_every) and the log of the factors is accumulated in log_scale [R]; otherwise
    log_scale = 0.
    """
    _check_Mw(M, w1, w2)
    chk.positive("alpha", alpha)
    chk.integer("steps", steps, 0)
    chk.integer("renorm_every", renorm_every, 1)
    log_scale = torch.zeros(M.shape[0], dtype=M.dtype, device=M.device)
    aM = alpha * M  # [R, d, k]
    aMt = aM.transpose(-1, -2).contiguous()  # [R, k, d]
    a1, a2 = w1[..., None], w2[..., None]
    for s in range(1, steps + 1):
        a1, a2 = a1 + torch.bmm(aMt, a2), a2 + torch.bmm(aM, a1)
        if normalize and (s % renorm_every == 0 or s == steps):
            nrm = torch.sqrt((a1 * a1).sum((-1, -2)) + (a2 * a2).sum((-1, -2)))
            a1, a2 = a1 / nrm[:, None, None], a2 / nrm[:, None, None]
            log_scale = log_scale + torch.log(nrm)
    return a1[..., 0], a2[..., 0], log_scale


def _check_M(M: Tensor) -> None:
    chk.floating_tensor("M", M, 3)
    if M.shape[0] == 0 or M.shape[2] == 0 or M.shape[1] < M.shape[2]:
        raise ValueError(f"M must have shape [R, d, k] with R >= 1 and 1 <= k <= d, got {tuple(M.shape)}")
    chk.finite_tensor("M", M)


def _check_Mw(M: Tensor, w1: Tensor | None, w2: Tensor | None, w1_name: str = "w1", w2_name: str = "w2") -> None:
    _check_M(M)
    R, d, k = M.shape
    if w1 is not None:
        chk.floating_tensor(w1_name, w1, shape=(R, k))
    if w2 is not None:
        chk.floating_tensor(w2_name, w2, shape=(R, d))


def svd(M: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Thin SVD M = U diag(S) V^T: U [R, d, k], S [R, k] (descending), V [R, k, k]."""
    _check_M(M)
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    return U, S, Vh.transpose(-1, -2)


def lemma7(
    M: Tensor, w1_0: Tensor, w2_0: Tensor, alpha: float, t: int, scaled: bool = True
) -> tuple[Tensor, Tensor]:
    """Closed form of the X-hinge GD iterate (w1^t, w2^t) (Lemma 7, Eq. 4).

    ``scaled=True`` returns (w1^t, w2^t) / (1 + alpha sigma_1)^t, overflow-free for any t: every factor is a
    ratio ((1 +- alpha sigma_i)/(1 + alpha sigma_1))^t of modulus <= 1 (since 0 <= sigma_i <= sigma_1 gives
    ``|1 - alpha sigma_i| <= 1 + alpha sigma_1``).  The out-of-range part (I - U U^T) w2^0 is divided as well.
    """
    _check_Mw(M, w1_0, w2_0, "w1_0", "w2_0")
    chk.positive("alpha", alpha)
    chk.integer("t", t, 0)
    U, S, V = svd(M)
    a = 1.0 + alpha * S
    b = 1.0 - alpha * S
    if scaled:
        top = a[:, :1]
        pa, pb = (a / top) ** t, (b / top) ** t
        rest = (1.0 / top[:, 0]) ** t  # factor for the constant part (I - U U^T) w2^0
    else:
        pa, pb = a**t, b**t
        rest = torch.ones(M.shape[0], dtype=M.dtype, device=M.device)
    lp, lm = pa + pb, pa - pb  # diagonals of Lam+ and Lam-
    c1 = torch.einsum("rkj,rk->rj", V, w1_0)  # V^T w1
    c2 = torch.einsum("rdj,rd->rj", U, w2_0)  # U^T w2
    w1 = 0.5 * torch.einsum("rkj,rj->rk", V, lp * c1 + lm * c2)
    w2 = 0.5 * torch.einsum("rdj,rj->rd", U, lm * c1 + lp * c2)
    w2 = w2 + rest[:, None] * (w2_0 - torch.einsum("rdj,rj->rd", U, c2))
    return w1, w2


def top_multiplicity(S: Tensor, rtol: float = 1e-9) -> Tensor:
    """m [R]: the number of singular values equal to sigma_1 up to a relative tolerance rtol."""
    chk.floating_tensor("S", S, 2)
    if S.shape[1] == 0:
        raise ValueError("S must have shape [R, k] with k >= 1, got k = 0")
    chk.real("rtol", rtol, 0, 1, hi_open=True)
    return (S >= S[:, :1] * (1.0 - rtol)).sum(-1)


def lemma1_limit(
    M: Tensor, w1_0: Tensor, w2_0: Tensor | None = None, rtol: float = 1e-9
) -> tuple[Tensor, Tensor, Tensor]:
    """Lemma 1's limits (w1_inf, w2_inf, m) of 2 w^t / (1 + alpha sigma_1)^t (Eq. 2; general w2^0 via Lemma 7)."""
    _check_Mw(M, w1_0, w2_0, "w1_0", "w2_0")
    U, S, V = svd(M)
    m = top_multiplicity(S, rtol)
    sel = (torch.arange(S.shape[1], device=S.device)[None, :] < m[:, None]).to(M.dtype)  # [R, k]
    c = torch.einsum("rkj,rk->rj", V, w1_0)
    if w2_0 is not None:
        c = c + torch.einsum("rdj,rd->rj", U, w2_0)
    c = c * sel
    return torch.einsum("rkj,rj->rk", V, c), torch.einsum("rdj,rj->rd", U, c), m


# ----------------------------------------------------------------------------------------------------------------
# Theorem 2: asymptotic error from the SVD of M_tr
# ----------------------------------------------------------------------------------------------------------------
TIE_TOL = 1e-9  # |margin| <= TIE_TOL * max |margin| of the run counts as a tie (Ē = 1/2); see chapter text


def asymptotic_margins(M: Tensor, w1_0: Tensor, task: PositionTask, rtol: float = 1e-9) -> Tensor:
    """F_inf(x, y, w1^0, D_tr) = y f_{w_inf}(x) on the whole dataset [R, N] (Eq. 3, w2^0 = 0)."""
    _check_M_task(M, task)
    w1, w2, _ = lemma1_limit(M, w1_0, None, rtol)
    return task.y * scores(conv_effective_weight(w1, w2), task)


def thm2_margins(M: Tensor, task: PositionTask, rtol: float = 1e-9) -> tuple[Tensor, Tensor]:
    """min_{(u,v) in UV_1(M_tr)} v^T M_{x,y}^T u for every (x, y) of the dataset: [R, N]; and m [R].

    For m = 1 this is v^T M_{x,y}^T u = y f_{(v,u)}(x) with u = M v / sigma_1 (exact zeros where rows of M vanish).
    For m > 1 it is lambda_min of sym(V_{:m}^T M_{x,y}^T U_{:m}) (proof of Theorem 2).
    """
    _check_M_task(M, task)
    _U, S, V = svd(M)
    m = top_multiplicity(S, rtol)
    R, d, k = M.shape
    out = torch.empty(R, task.N, dtype=M.dtype, device=M.device)
    for mm in torch.unique(m).tolist():
        rr = (m == mm).nonzero().flatten()
        Vm = V[rr, :, :mm]  # [R', k, mm]
        Um = (
            torch.einsum("rdk,rkj->rdj", M[rr], Vm) / S[rr, :1, None]
        )  # U_{:m} = M V_{:m} / sigma_1
        if mm == 1:
            w = conv_effective_weight(Vm[..., 0], Um[..., 0])
            out[rr] = task.y * scores(w, task)
            continue
        Rp = rr.numel()
        # Q[a, b] = y f_{(V_a, U_b)}(x): effective weights of every pair (filter V_a, output U_b)
        w1 = Vm.permute(0, 2, 1)[:, :, None, :].expand(Rp, mm, mm, k).reshape(-1, k)
        w2 = Um.permute(0, 2, 1)[:, None, :, :].expand(Rp, mm, mm, d).reshape(-1, d)
        w = conv_effective_weight(w1, w2).reshape(Rp, mm * mm, d)
        q = (w[:, :, task.pos] * task.val).sum(-1) * task.y  # [R', mm*mm, N]
        Q = q.reshape(Rp, mm, mm, task.N).permute(0, 3, 1, 2)
        out[rr] = torch.linalg.eigvalsh(0.5 * (Q + Q.transpose(-1, -2)))[..., 0]
    return out, m


def _check_M_task(M: Tensor, task: PositionTask) -> None:
    _check_M(M)
    check_task(task)
    if M.shape[1] != task.d:
        raise ValueError(f"M must have shape [R, d, k] with d = task.d = {task.d}, got {tuple(M.shape)}")


def thm2_error(
    M: Tensor, task: PositionTask, rtol: float = 1e-9, tie_tol: float = TIE_TOL
) -> tuple[Tensor, Tensor]:
    """Per training set: E_{(x,y)} Ē(min_{(u,v)} v^T M_{x,y}^T u) [R] (Theorem 2's bound; = E_inf when m = 1), and m."""
    marg, m = thm2_margins(M, task, rtol)
    return ebar(marg, tie_tol).mean(-1), m


def asymptotic_error(
    M: Tensor, w1_0: Tensor, task: PositionTask, rtol: float = 1e-9, tie_tol: float = TIE_TOL
) -> Tensor:
    """E(w_inf; D) [R] for the given initial filters (the quantity averaged in Eq. 3)."""
    return ebar(asymptotic_margins(M, w1_0, task, rtol), tie_tol).mean(-1)


def one_layer_onehot_closed_form(
    task: PositionTask, idx: Tensor, mask: Tensor, w0: Tensor, lr: float
) -> tuple[Tensor, Tensor]:
    """Full-batch hinge GD of Model-1-Layer on a one-hot task (Task-Cls, Task-1stCtrl, even/odd), in closed form.

    Every training input at position l has the same y x = s_l e_l, so coordinates decouple: the margin
    z_l = s_l w_l grows by a_l = lr c_l / n per step (c_l = count of position l) while z_l < 1, i.e. for
    T_l = ceil((1 - z_l^0) / a_l) steps; untrained coordinates keep their initial value (Section 3.3.2).
    Returns (w_final [R, d], epochs [R] = max(1, max_l T_l), the step at which the training loss hits 0).
    """
    if task.name == "3rdctrl":
        raise ValueError(
            "task must be one-hot (cls, 1stctrl, evenodd); Task-3rdCtrl inputs have two entries"
        )
    check_task(task)
    chk.positive("lr", lr)
    check_training_set(task, idx, mask)
    chk.floating_tensor("w0", w0, shape=(idx.shape[0], task.d))
    g = mean_yx(task, idx, mask)  # [R, d] = s_l c_l / n
    a = lr * g.abs()
    s = torch.sign(g)
    z0 = s * w0
    active = (a > 0) & (z0 < 1)
    T = torch.where(
        active,
        torch.ceil((1 - z0) / torch.where(active, a, torch.ones_like(a))),
        torch.zeros_like(a),
    )
    w = w0 + s * T * a
    epochs = torch.clamp(T.amax(-1), min=1).long()
    return w, epochs
