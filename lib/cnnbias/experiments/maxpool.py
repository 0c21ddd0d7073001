"""Experiments of the max-pooling paper :cite:`maxpool_orthogonal`: LW_CNN (Algorithm 1, Theorem 5.1) and
the model comparison of Sec. 7.

## LW_CNN

LW_CNN: layerwise gradient descent for the max-pooling CNN (Algorithm 1 of :cite:`maxpool_orthogonal`)
and the quantities of the proof of Theorem 5.1.

Algorithm 1.  Split ``S`` into ``S1`` (the first ``ceil(m/2)`` points) and ``S2`` (the rest).
Initialize every filter ``w_i^(0)`` uniformly on the sphere of radius ``r`` in R^d and every
``a_i^(0)`` uniformly in {-1, +1}, independently.  Phase 1: ``T1`` steps of GD with step ``eta1``
on the logistic loss ``L1(W, a^(0))`` over ``S1`` (``a`` frozen).  Phase 2: ``T2`` steps of GD with
step ``eta2`` on ``L2(W^(T1), a)`` over ``S2`` (``W`` frozen).  Both phases are batched over runs by
:func:`cnnbias.engine.train`.

Coordinates.  The data are orthonormal patterns ``o_1..o_l``; here ``l = d`` and we work in the
pattern basis (one-hot patterns): the sphere initialization is rotation invariant and GD is
equivariant under rotations, so the trajectory of ``(o_j . w_i^(t))_j`` is the same for every
orthonormal basis.  Then ``o_j . w_i = W[i, j]`` and the network is a gather
(:func:`cnnbias.models.maxpool.forward`).

Proof quantities (0-based pattern indices: 0 = ``o_1``, 1 = ``o_2``):

- lucky filters (Eq. 6): ``W_0^+ ∩ A^+`` = {i : argmax over patterns except 1 of ``W[i, :]`` is 0,
  ``W[i, 0] > 0``, ``a_i = +1``}; ``W_0^- ∩ A^-`` symmetric.  Lemma 5.2 (App. B):
  ``P(i lucky+) = (1 - 2^{-d+1}) / (2(d-1))``, and ``k/(4d) <= |lucky+| <= k/d`` w.p. ``>= 1 - 2e^{-d}``
  per set, via Hoeffding: ``P(| |lucky+|/k - p | > 1/(4d)) <= 2 exp(-2k/(16 d^2))`` (Eq. 13).
- Lemma 5.3 / Cor. 5.4: for lucky+ filters ``o_1 . w_i^(t) >= t eta1 / 9`` and ``o_j . w_i^(t) <= r``
  for ``j != 1`` (lucky-: same with ``o_2``).  Lemma 5.5: ``o_j . w_i^(t) <= 2 eta1 t`` for all i, j,
  ``t >= 1``.
- Part 3 (App. E): ``z(x)_i = max_j relu(w_i^(T1) . x[j])``; ``v*_i = +-80 d / (k eta1 T1)`` on the
  lucky sets separates ``D_z`` with margin 1; ``||v*||^2 <= 2 80^2 d / (k eta1^2 T1^2)``,
  ``||z(x)||^2 <= 4 k eta1^2 T1^2``.


## ConvPool vs MLP vs SVM

ConvPool vs MLP vs hard-margin linear SVM on pattern detection (Sec. 7 of :cite:`maxpool_orthogonal`).

All repetitions and training-set sizes of a figure train as ONE batched program per model
(:func:`cnnbias.engine.train`): the runs are (repetition, sample size) pairs; run ``r`` holds the
first ``m_r`` examples of its own training pool, padded to the largest size, and its loss is the
mean logistic loss over its ``m_r`` real examples (a 0/1 mask removes the padding), so every run
is exactly a full-batch Adam run on its own training set.

- ConvPool: Eq. 1 (conv with non-overlapping filters, ReLU, max-pool, trained readout ``a``),
  PyTorch-default initialization, trained with Adam (the paper: "standard training with Adam").
- MLP: one hidden layer with as many parameters as ConvPool (:mod:`cnnbias.models.mlp`).
- SVM: hard-margin linear SVM on the flattened input (scikit-learn's ``SVC(kernel="linear")``
  with a large ``C``, with intercept).  On non-separable (noisy) data it returns the soft-margin
  solution for that ``C``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from cnnbias import config, engine
from cnnbias import validate as V
from cnnbias.data import patterns as P
from cnnbias.data.digit_patterns import sample_digit_patterns, split_pools
from cnnbias.data.digits import load_digits
from cnnbias.data.noisy_patterns import noisy_embed
from cnnbias.models import init, maxpool, mlp
from cnnbias.stats import error_rate, margin_errors, mean_se
from cnnbias.theory import min_norm as mn

__all__ = ["compare_models", "conv_forward", "conv_init", "svm_fit_predict", "train_masked", 
    "LWResult",
    "default_hparams",
    "dynamics_checks",
    "eq14_holds",
    "hoeffding_bound",
    "lucky_masks",
    "lucky_probability",
    "lw_cnn",
    "exact_error",
    "max_margin_readout",
    "sample_complexity",
    "VC_CONFIGS",
    "dvc_claims",
    "dvc_sgd_vs_shattering",
    "vc_dvc_cell",
    "SC_SCALES",
    "sc_cell",
    "sc_cells",
    "sc_claims",
    "sc_slope",
    "representation",
    "sphere_init",
    "split",
    "theorem_conditions",
    "v_star",
]


def sphere_init(k: int, d: int, r: float, gens: Sequence[torch.Generator], dtype=torch.float64):
    """``W [R, k, d]`` uniform on the sphere of radius ``r``, ``a [R, k]`` uniform in {-1, +1}, each run
    from its own generator (W and a independent)."""
    V.integer("k", k, 1)
    V.integer("d", d, 2)
    V.positive("r", r)
    V.generators("gens", gens)
    Ws, As = [], []
    for g in gens:
        w = init.normal([g], (k, d))[0]
        Ws.append(r * w / w.norm(dim=1, keepdim=True))
        As.append(torch.where(torch.rand(k, generator=g) < 0.5, 1.0, -1.0).to(torch.float64))
    return torch.stack(Ws).to(dtype), torch.stack(As).to(dtype)


def lucky_masks(W: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean ``[R, k]`` masks of ``W_t^+ ∩ A^+`` and ``W_t^- ∩ A^-`` (Eq. 6), ``W`` in the pattern basis."""
    V.floating_tensor("W", W, 3)
    if W.shape[2] < 2:
        raise ValueError(f"W must have shape [R, k, d] with d >= 2 patterns, got {tuple(W.shape)}")
    V.tensor("a", a, shape=(W.shape[0], W.shape[1]))
    plus_scores = W.clone()
    plus_scores[..., 1] = -math.inf
    minus_scores = W.clone()
    minus_scores[..., 0] = -math.inf
    wplus = (plus_scores.argmax(-1) == 0) & (W[..., 0] > 0)
    wminus = (minus_scores.argmax(-1) == 1) & (W[..., 1] > 0)
    return wplus & (a > 0), wminus & (a < 0)


def lucky_probability(d: int) -> float:
    """``P(i in W_0^+ ∩ A^+) = (1 - 2^{-d+1}) / (2(d-1))`` (Lemma 5.2 / App. B), for ``l = d`` patterns."""
    V.integer("d", d, 3)
    return (1 - 2.0 ** (-d + 1)) / (2 * (d - 1))


def hoeffding_bound(k: int, d: int) -> float:
    """Eq. 13: ``P(| |W_0^+ ∩ A^+|/k - p | > 1/(4d)) <= 2 exp(-2 k (1/(4d))^2)``."""
    V.integer("k", k, 1)
    V.integer("d", d, 1)
    return 2 * math.exp(-2 * k / (4 * d) ** 2)


def theorem_conditions(k: int, d: int, T1: int, eta1: float, eta2: float, r: float) -> dict[str, bool]:
    """The assumptions of Theorem 5.1."""
    V.integer("k", k, 1)
    V.integer("d", d, 1)
    V.integer("T1", T1)
    for nm, v in (("eta1", eta1), ("eta2", eta2), ("r", r)):
        V.finite(nm, v)
    return {
        "T1 > 0": T1 > 0,
        "eta1 <= 1/(4k(T1+1))": eta1 <= 1 / (4 * k * (T1 + 1)) * (1 + 1e-12),
        "eta2 < 8k": eta2 < 8 * k,
        "r <= eta1/200": r <= eta1 / 200 * (1 + 1e-12),
        "k > 8 d^3": k > 8 * d**3,
    }


def default_hparams(d: int, T1: int, eta2_fraction: float = 0.5) -> dict[str, float]:
    """The largest settings the theorem allows: ``k = 8 d^3 + 1``, ``eta1 = 1/(4k(T1+1))``,
    ``r = eta1/200``, ``eta2 = eta2_fraction * 8k``."""
    V.integer("d", d, 1)
    V.integer("T1", T1, 1)
    V.positive("eta2_fraction", eta2_fraction)
    k = 8 * d**3 + 1
    eta1 = 1 / (4 * k * (T1 + 1))
    return {"k": k, "eta1": eta1, "r": eta1 / 200, "eta2": eta2_fraction * 8 * k, "T1": T1}


def split(m: int) -> int:
    """``m1 = ceil(m / 2)``: ``S1`` is the first ``m1`` points."""
    V.integer("m", m, 1)
    return (int(m) + 1) // 2


def eq14_holds(y: torch.Tensor, mask1: torch.Tensor) -> torch.Tensor:
    """Eq. 14 (the event the proof of Lemma C.3 conditions on; read as ``|S1^+|, |S1^-| >= m1/3``)."""
    V.labels_pm1("y", y)
    V.tensor("mask1", mask1, shape=tuple(y.shape))
    m1 = mask1.sum(-1)
    return (((y > 0) * mask1).sum(-1) >= m1 / 3) & (((y < 0) * mask1).sum(-1) >= m1 / 3)


@dataclass
class LWResult:
    W0: torch.Tensor
    a0: torch.Tensor
    W: torch.Tensor  # W^(T1)
    a: torch.Tensor  # a^(T2)
    W_history: torch.Tensor  # [T1+1, R, k, d] (every record_every steps)
    W_epochs: list[int]
    mask1: torch.Tensor  # [R, M] 1 on S1
    mask2: torch.Tensor  # [R, M] 1 on S2
    loss2_history: torch.Tensor  # [T, R]
    loss2_epochs: list[int]
    loss1_final: torch.Tensor
    loss2_final: torch.Tensor
    hp: dict = field(default_factory=dict)


def lw_cnn(idx: torch.Tensor, y: torch.Tensor, *, k: int, d: int, T1: int, T2: int, eta1: float, eta2: float,
           r: float, gens: Sequence[torch.Generator], sizes: Sequence[int] | None = None,
           record_W_every: int = 1, record_loss_every: int = 10, record_W: bool = True) -> LWResult:
    """Run Algorithm 1 for R runs at once.  ``idx [R, M, n]`` pattern indices (``d`` one-hot patterns),
    ``y [R, M]``; ``gens[r]`` draws run r's initialization.  ``sizes[r] <= M`` (default ``M``): run r
    uses only its first ``sizes[r]`` points (``S1`` = the first ``ceil(sizes[r]/2)``, ``S2`` the rest),
    so runs with different training-set sizes train in one batch (0/1 masks, per-run mean losses)."""
    if idx.dim() != 3 or y.shape != idx.shape[:2]:
        raise ValueError(f"idx must be [R, m, n] and y [R, m]; got {tuple(idx.shape)}, {tuple(y.shape)}")
    V.tensor("idx", idx, kind="int")
    V.labels_pm1("y", y)
    V.integer("d", d, 2)
    V.index_in_range("idx", idx, d)
    V.integer("k", k, 1)
    V.integer("T1", T1, 1)
    V.integer("T2", T2, 1)
    for nm, v in (("eta1", eta1), ("eta2", eta2), ("r", r)):
        V.positive(nm, v)
    V.integer("record_W_every", record_W_every, 1)
    V.integer("record_loss_every", record_loss_every, 1)
    V.generators("gens", gens)
    R, m, _ = idx.shape
    if len(gens) != R:
        raise ValueError(f"gens must hold one generator per run ({R}), got {len(gens)}")
    if m < 2 or T1 < 1 or T2 < 1:
        raise ValueError(f"need m >= 2, T1 >= 1, T2 >= 1; got m={m}, T1={T1}, T2={T2}")
    if k < 1 or not (eta1 > 0 and eta2 > 0 and r > 0):
        raise ValueError(f"need k >= 1 and positive eta1, eta2, r; got k={k}, eta1={eta1}, eta2={eta2}, r={r}")
    sz = torch.full((R,), m, dtype=torch.int64) if sizes is None else torch.as_tensor(sizes, dtype=torch.int64)
    if sz.shape != (R,) or bool((sz < 2).any()) or bool((sz > m).any()):
        raise ValueError(f"sizes must hold one size in [2, {m}] per run, got {sizes!r}")
    m1 = (sz + 1) // 2
    pos = torch.arange(m).unsqueeze(0)
    mask1 = (pos < m1.unsqueeze(1)).to(torch.float64)
    mask2 = ((pos >= m1.unsqueeze(1)) & (pos < sz.unsqueeze(1))).to(torch.float64)
    W0, a0 = sphere_init(k, d, r, gens)
    # float64 always (the proof's quantities are ~1e-5 with slacks ~1e-11); on the configured device
    dev = config.device()
    W0d, a0d = W0.to(dev), a0.to(dev)
    idx, y = idx.to(dev), y.to(device=dev, dtype=torch.float64)
    mask1d, mask2d = mask1.to(dev), mask2.to(dev)

    def masked_mean(v, msk):
        return (v * msk).sum(-1) / msk.sum(-1)

    def loss1(p, batch):
        out = maxpool.forward(p["W"], p["a"], idx=batch.take(idx))
        return masked_mean(engine.logistic(batch.take(y) * out), batch.take(mask1d))

    res1 = engine.train(loss1, {"W": W0d, "a": a0d}, trainable=("W",), optimizer="gd", lr=eta1,
                        stop=engine.StopRule(max_epochs=int(T1)),
                        record=(lambda p, runs: {"W": p["W"]}) if record_W else None, record_every=record_W_every)
    W1 = res1.params["W"]
    Z = maxpool.responses(W1, idx=idx)  # [R, M, k], the fixed features z(x) of phase 2

    def loss2(p, batch):
        out = torch.einsum("rmk,rk->rm", batch.take(Z), p["a"])
        return masked_mean(engine.logistic(batch.take(y) * out), batch.take(mask2d))

    res2 = engine.train(loss2, {"a": a0d.clone()}, optimizer="gd", lr=eta2,
                        stop=engine.StopRule(max_epochs=int(T2), check_every=max(1, int(T2) // 10)),
                        record=lambda p, runs: {"loss": loss2(p, engine.Batch(runs, None, R))},
                        record_every=record_loss_every)
    W1 = W1.cpu()
    return LWResult(W0=W0, a0=a0, W=W1, a=res2.params["a"].cpu(),
                    W_history=res1.history["W"] if record_W else W1.unsqueeze(0),
                    W_epochs=list(res1.history_epochs) if record_W else [int(T1)],
                    mask1=mask1, mask2=mask2, loss2_history=res2.history["loss"],
                    loss2_epochs=list(res2.history_epochs), loss1_final=res1.final_loss,
                    loss2_final=res2.final_loss,
                    hp={"k": k, "d": d, "T1": T1, "T2": T2, "eta1": eta1, "eta2": eta2, "r": r})


def dynamics_checks(res: LWResult) -> dict[str, torch.Tensor]:
    """Per-run slacks of Lemma 5.3 / Cor. 5.4 / Lemma 5.5 over the recorded steps (>= 0 means it holds):

    - ``lemma53_growth``: ``min_{t, lucky+ i} (o_1 . w_i^(t) - t eta1/9)`` (and the same for lucky- with o_2);
    - ``lemma53_others``: ``min_{t, lucky i, j != own} (r - o_j . w_i^(t))``;
    - ``lemma55``: ``min_{t >= 1, i, j} (2 eta1 t - o_j . w_i^(t))``.

    Also ``n_plus``, ``n_minus``: sizes of the lucky sets at initialization.
    """
    hp = res.hp
    eta1, r = hp["eta1"], hp["r"]
    lp, lm = lucky_masks(res.W0, res.a0)  # [R, k]
    H = res.W_history  # [T, R, k, d]
    t = torch.tensor(res.W_epochs, dtype=H.dtype).view(-1, 1, 1)
    inf = torch.tensor(math.inf, dtype=H.dtype)
    g_plus = torch.where(lp.unsqueeze(0), H[..., 0] - t * eta1 / 9, inf)
    g_minus = torch.where(lm.unsqueeze(0), H[..., 1] - t * eta1 / 9, inf)
    growth = torch.minimum(g_plus.amin((0, 2)), g_minus.amin((0, 2)))
    others_p = H.clone()
    others_p[..., 0] = -inf
    others_m = H.clone()
    others_m[..., 1] = -inf
    o_p = torch.where(lp.unsqueeze(0), r - others_p.amax(-1), inf).amin((0, 2))
    o_m = torch.where(lm.unsqueeze(0), r - others_m.amax(-1), inf).amin((0, 2))
    tt = t.view(-1, 1, 1, 1)
    keep = (tt >= 1).expand_as(H)
    l55 = torch.where(keep, 2 * eta1 * tt - H, inf).amin((0, 2, 3))
    return {"lemma53_growth": growth, "lemma53_others": torch.minimum(o_p, o_m), "lemma55": l55,
            "n_plus": lp.sum(-1), "n_minus": lm.sum(-1)}


def representation(W: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``z(x)_i = max_j relu(w_i . x[j])``: ``[R, m, k]`` (App. E)."""
    V.floating_tensor("W", W, 3)
    V.tensor("idx", idx, 3, kind="int")
    V.index_in_range("idx", idx, W.shape[2])
    return maxpool.responses(W, idx=idx)


def v_star(res: LWResult) -> torch.Tensor:
    """The separator of the proof (App. E): ``+-80 d / (k eta1 T1)`` on the lucky sets, 0 elsewhere: ``[R, k]``."""
    if not isinstance(res, LWResult):
        raise TypeError(f"res must be an LWResult (see lw_cnn), got {type(res).__name__}")
    hp = res.hp
    lp, lm = lucky_masks(res.W0, res.a0)
    c = 80 * hp["d"] / (hp["k"] * hp["eta1"] * hp["T1"])
    return c * (lp.to(res.W.dtype) - lm.to(res.W.dtype))


# ----------------------------------------------------------------------------------------------------
# ConvPool vs MLP vs SVM (Sec. 7)
# ----------------------------------------------------------------------------------------------------



def conv_forward(params: dict[str, torch.Tensor], X=None, idx=None, patterns=None) -> torch.Tensor:
    """``N_CNN(x) = sum_c a_c max_j relu(w_c . x[j])`` ``[R, m]`` (:func:`cnnbias.models.maxpool.forward`;
    ``patterns [l, d]`` or ``[R, l, d]`` with ``idx`` gathers from ``W P^T``)."""
    return maxpool.forward(params["W"], params["a"], X=X, idx=idx, patterns=patterns)


def conv_init(C: int, d: int, gens: Sequence[torch.Generator], dtype=torch.float64) -> dict[str, torch.Tensor]:
    """PyTorch-default init: ``W`` uniform in ``+-1/sqrt(d)``, ``a`` uniform in ``+-1/sqrt(C)``."""
    V.integer("C", C, 1)
    V.integer("d", d, 1)
    V.generators("gens", gens)
    W = torch.stack([(2 * torch.rand(C, d, generator=g, dtype=torch.float64) - 1) / math.sqrt(d) for g in gens])
    a = torch.stack([(2 * torch.rand(C, generator=g, dtype=torch.float64) - 1) / math.sqrt(C) for g in gens])
    return {"W": W.to(dtype), "a": a.to(dtype)}


def train_masked(forward, params: dict[str, torch.Tensor], data: dict[str, torch.Tensor], y: torch.Tensor,
                 mask: torch.Tensor, *, lr: float, epochs: int, loss_below: float | None = None,
                 check_every: int = 10, trainable: Sequence[str] | None = None) -> engine.TrainResult:
    """Full-batch Adam on the masked mean logistic loss of every run.

    ``forward(params, **batch_data) -> [R', m]`` where ``batch_data`` holds ``batch.take`` of each
    tensor in ``data`` (leading run axis).  ``mask [R, m]`` is 1 for a run's real examples.
    ``trainable``: the parameters Adam updates (default all; the others stay fixed).
    """
    counts = mask.sum(1)
    if bool((counts < 1).any()):
        raise ValueError("mask must select at least one example per run")

    def loss_fn(p, batch):
        out = forward(p, **{k: batch.take(v) for k, v in data.items()})
        msk = batch.take(mask)
        return (msk * engine.logistic(batch.take(y) * out)).sum(1) / msk.sum(1)

    return engine.train(loss_fn, params, optimizer="adam", lr=lr, trainable=trainable,
                        stop=engine.StopRule(max_epochs=int(epochs), loss_below=loss_below, check_every=check_every))


def svm_fit_predict(Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, C: float = 1e6,
                    max_iter: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """Hard-margin (large ``C``) linear SVM: returns ``(train scores, test scores)``."""
    from sklearn.svm import SVC

    V.positive("C", C)
    V.integer("max_iter", max_iter, 1)
    try:  # checked on float copies; the arrays themselves go to scikit-learn unchanged
        xa, ya, ta = np.asarray(Xtr, dtype=float), np.asarray(ytr, dtype=float), np.asarray(Xte, dtype=float)
    except (TypeError, ValueError):
        raise TypeError("Xtr, ytr and Xte must be numeric arrays") from None
    if xa.ndim != 2 or ta.ndim != 2 or ya.shape != (xa.shape[0],) or ta.shape[1] != xa.shape[1] or not len(ya):
        raise ValueError(f"need Xtr [m, D] (m >= 1), ytr [m] and Xte [m', D]; got {xa.shape}, {ya.shape}, {ta.shape}")
    if not np.all((ya == 1) | (ya == -1)):
        raise ValueError("ytr must hold only labels -1 and +1")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ta))):
        raise ValueError("Xtr and Xte must hold only finite values")
    if len(np.unique(ytr)) < 2:  # one class only: predict it everywhere
        s = float(ytr[0])
        return np.full(len(ytr), s), np.full(len(Xte), s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = SVC(kernel="linear", C=C, tol=1e-4, max_iter=max_iter).fit(Xtr, ytr)
    return clf.decision_function(Xtr), clf.decision_function(Xte)


def _pad(train: Sequence[tuple[torch.Tensor, torch.Tensor]]):
    m_max = max(int(y.shape[0]) for _, y in train)
    R = len(train)
    X0 = train[0][0]
    X = torch.zeros((R, m_max) + tuple(X0.shape[1:]), dtype=X0.dtype)
    y = torch.ones(R, m_max, dtype=torch.float64)
    mask = torch.zeros(R, m_max, dtype=torch.float64)
    for r, (Xr, yr) in enumerate(train):
        k = yr.shape[0]
        X[r, :k], y[r, :k], mask[r, :k] = Xr, yr, 1.0
    return X, y, mask


def compare_models(train: Sequence[tuple[torch.Tensor, torch.Tensor]], test: Sequence[tuple[torch.Tensor, torch.Tensor]],
                   *, channels: int, gens: Sequence[torch.Generator], lr_conv: float = 0.01, lr_mlp: float = 0.01,
                   epochs: int = 300, loss_below: float | None = 1e-3, patterns: torch.Tensor | None = None,
                   models: Sequence[str] = ("convpool", "mlp", "svm"), svm_C: float = 1e6) -> dict[str, dict[str, torch.Tensor]]:
    """Train every model on every run's training set; return per-model ``{"train_err", "test_err"}`` ``[R]``.

    Models: ``"convpool"`` (Eq. 1, Adam on all parameters), ``"layerwise"`` (the same network, same
    initialization, trained layer by layer as in Algorithm 1 but with Adam and on the whole training set:
    first ``W`` with ``a`` fixed, then ``a`` with ``W`` fixed, each phase up to ``epochs // 2`` epochs or
    until the loss is below ``loss_below``), ``"mlp"`` and ``"svm"``.

    ``train[r] = (X [m_r, n, d] float, y [m_r])`` with dense patches, or ``(idx [m_r, n] int64, y)``
    with pattern indices and ``patterns [l, d]`` or ``[R, l, d]`` (orthonormal; used by ConvPool as a gather and
    embedded for MLP / SVM).  ``test[r]`` likewise.  ``gens[r]`` initializes run ``r``'s networks.
    """
    if len(train) != len(test) or len(train) != len(gens):
        raise ValueError("train, test and gens must have one entry per run")
    unknown = set(models) - {"convpool", "layerwise", "mlp", "svm"}
    if unknown:
        raise ValueError(f"models may contain 'convpool', 'layerwise', 'mlp', 'svm'; got {sorted(unknown)}")
    indexed = train[0][0].dtype == torch.int64
    if indexed and patterns is None:
        raise ValueError("patterns are needed when the data are pattern indices")

    def dense(Z):
        if not indexed:
            return Z
        if patterns.dim() == 2:
            return patterns[Z]
        return torch.stack([patterns[r][Z[r]] for r in range(Z.shape[0])])

    Xp, yp, mask = _pad(train)
    Xte = torch.stack([t[0] for t in test])
    yte = torch.stack([t[1] for t in test]).to(torch.float64)
    d = patterns.shape[-1] if indexed else Xp.shape[-1]
    n = Xp.shape[2]
    out: dict[str, dict[str, torch.Tensor]] = {}
    cpu_gens = list(gens)
    init_states = [g.get_state() for g in cpu_gens]  # "layerwise" starts where "convpool" starts
    if "convpool" in models or "layerwise" in models:
        if indexed:
            Pr = patterns if patterns.dim() == 3 else patterns.expand(len(train), *patterns.shape)
            fwd = lambda p, idx, P: conv_forward(p, idx=idx, patterns=P)
            data_tr, data_te = {"idx": Xp, "P": Pr}, {"idx": Xte, "P": Pr}
        else:
            fwd = lambda p, X: conv_forward(p, X=X)
            data_tr, data_te = {"X": Xp}, {"X": Xte}
    if "convpool" in models:
        params = conv_init(channels, d, cpu_gens)
        t0 = time.perf_counter()
        res = train_masked(fwd, params, data_tr, yp, mask, lr=lr_conv, epochs=epochs, loss_below=loss_below)
        with torch.no_grad():
            s_tr = fwd(res.params, **data_tr)
            s_te = fwd(res.params, **data_te)
        out["convpool"] = {"train_err": error_rate(s_tr, yp, mask=mask), "test_err": error_rate(s_te, yte),
                           "epochs": res.epochs, "seconds": time.perf_counter() - t0}
    if "layerwise" in models:
        fresh = []
        for st in init_states:
            g = torch.Generator()
            g.set_state(st)
            fresh.append(g)
        params = conv_init(channels, d, fresh)  # the same initialization as "convpool"
        t0 = time.perf_counter()
        half = max(1, int(epochs) // 2)
        res1 = train_masked(fwd, params, data_tr, yp, mask, lr=lr_conv, epochs=half, loss_below=loss_below,
                            trainable=("W",))
        res = train_masked(fwd, res1.params, data_tr, yp, mask, lr=lr_conv, epochs=half, loss_below=loss_below,
                           trainable=("a",))
        with torch.no_grad():
            s_tr = fwd(res.params, **data_tr)
            s_te = fwd(res.params, **data_te)
        out["layerwise"] = {"train_err": error_rate(s_tr, yp, mask=mask), "test_err": error_rate(s_te, yte),
                            "epochs": res1.epochs + res.epochs, "seconds": time.perf_counter() - t0}
    if "mlp" in models or "svm" in models:
        Fp = dense(Xp).reshape(Xp.shape[0], Xp.shape[1], -1)
        Fte = dense(Xte).reshape(Xte.shape[0], Xte.shape[1], -1)
    if "mlp" in models:
        hidden = mlp.hidden_for_params(channels * d + channels, n * d)
        params = mlp.init(hidden, n * d, cpu_gens)
        t0 = time.perf_counter()
        res = train_masked(lambda p, F: mlp.forward(p, F), params, {"F": Fp}, yp, mask, lr=lr_mlp,
                           epochs=epochs, loss_below=loss_below)
        with torch.no_grad():
            s_tr, s_te = mlp.forward(res.params, Fp), mlp.forward(res.params, Fte)
        out["mlp"] = {"train_err": error_rate(s_tr, yp, mask=mask), "test_err": error_rate(s_te, yte),
                      "epochs": res.epochs, "hidden": hidden, "seconds": time.perf_counter() - t0}
    if "svm" in models:
        tr_err, te_err = [], []
        t0 = time.perf_counter()
        for r in range(len(train)):
            k = int(mask[r].sum())
            a, b = svm_fit_predict(Fp[r, :k].numpy(), yp[r, :k].numpy(), Fte[r].numpy(), C=svm_C)
            tr_err.append(float(error_rate(torch.as_tensor(a), yp[r, :k])))
            te_err.append(float(error_rate(torch.as_tensor(b), yte[r])))
        out["svm"] = {"train_err": torch.tensor(tr_err), "test_err": torch.tensor(te_err),
                      "seconds": time.perf_counter() - t0}
    return out


def pattern_runs(sizes: Sequence[int], reps: int, *, n: int, d: int, l: int | None = None, noise: float = 0.0,
                 m_test: int = 1000, gens: Sequence[torch.Generator]):
    """Datasets of Fig. 3a/3b/4: run ``r = rep * len(sizes) + s`` has its own random orthogonal patterns
    (``l`` rows of a Haar orthogonal matrix in R^d, default ``l = d``), ``sizes[s]`` training points of
    ``D`` and ``m_test`` test points, from ``gens[r]``.  Clean data are returned as pattern indices
    (with ``patterns [R, l, d]``), noisy data as dense patches (``patterns`` None).
    Returns ``(train, test, patterns)`` for :func:`compare_models`."""

    _check_sizes_reps(sizes, reps)
    V.integer("n", n, 1)
    V.integer("d", d, 1)
    V.nonnegative("noise", noise)
    V.integer("m_test", m_test, 1)
    V.generators("gens", gens)
    l = d if l is None else l
    if len(gens) != reps * len(sizes):
        raise ValueError(f"need one generator per run ({reps * len(sizes)}), got {len(gens)}")
    train, test, pats = [], [], []
    for r, g in enumerate(gens):
        m = int(sizes[r % len(sizes)])
        O = P.orthogonal_patterns(l, d, g)
        idx, y = P.sample_D(m, n, l, g)
        it, yt = P.sample_D(m_test, n, l, g)
        if noise == 0:
            train.append((idx, y))
            test.append((it, yt))
        else:
            train.append((noisy_embed(idx, O, noise, g), y))
            test.append((noisy_embed(it, O, noise, g), yt))
        pats.append(O)
    return train, test, (torch.stack(pats) if noise == 0 else None)


def _check_sizes_reps(sizes: Sequence[int], reps: int) -> None:
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) == 0:
        raise ValueError(f"sizes must be a non-empty list of training-set sizes (integers >= 1), got {sizes!r}")
    for s_ in sizes:
        V.integer("sizes[i]", s_, 1)
    V.integer("reps", reps, 1)


def digit_runs(sizes: Sequence[int], reps: int, *, n: int = 4, m_test: int = 1000,
               gens: Sequence[torch.Generator], pos: int = 3, neg: int = 5, root=None):
    """Datasets of Fig. 3c: images of ``n`` digits (:mod:`cnnbias.data.digit_patterns`); each run splits
    the digit images into train / test pools with its own generator.  Returns ``(train, test, source)``."""

    _check_sizes_reps(sizes, reps)
    V.integer("n", n, 1)
    V.integer("m_test", m_test, 1)
    V.generators("gens", gens, reps * len(sizes))
    images, labels, source = load_digits(root)
    images, labels = torch.as_tensor(images), torch.as_tensor(labels)
    train, test = [], []
    for r, g in enumerate(gens):
        tr_pool, te_pool = split_pools(images, labels, pos=pos, neg=neg, generator=g)
        train.append(sample_digit_patterns(int(sizes[r % len(sizes)]), tr_pool, n=n, generator=g))
        test.append(sample_digit_patterns(m_test, te_pool, n=n, generator=g))
    return train, test, source


def by_size(values: torch.Tensor, reps: int, n_sizes: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over repetitions of per-run values ordered ``rep * n_sizes + s``."""
    V.integer("reps", reps, 1)
    V.integer("n_sizes", n_sizes, 1)
    v = torch.as_tensor(values, dtype=torch.float64)
    if v.numel() != reps * n_sizes:
        raise ValueError(f"values must hold reps * n_sizes = {reps * n_sizes} per-run values, got {v.numel()}")
    v = v.reshape(reps, n_sizes)
    sd = v.std(0) if reps > 1 else torch.zeros(n_sizes, dtype=torch.float64)
    return v.mean(0).numpy(), sd.numpy()


def run_figure(name: str, cfg: dict, sizes: Sequence[int], make, **kw):
    """One panel of Figs. 3-4: ``cfg["reps"]`` repetitions per training-set size, data from
    ``make(sizes, reps, gens=...)`` (:func:`pattern_runs` or :func:`digit_runs`), every model trained by
    :func:`compare_models` with ``cfg["C"]`` channels for ``cfg["epochs"]`` epochs.  Runs are ordered
    ``rep * len(sizes) + s``.  Returns ``(per-model results, extra)`` (``extra``: the patterns, or the
    digits' source)."""
    for key in ("reps", "C", "epochs"):
        if key not in cfg:
            raise ValueError(f"cfg lacks {key!r}")
    gens = config.generators(name, cfg, cfg["reps"] * len(sizes))
    train, test, extra = make(sizes, cfg["reps"], gens=gens)
    out = compare_models(train, test, channels=cfg["C"], gens=config.generators(name + "_init", cfg, len(gens)),
                         epochs=cfg["epochs"], patterns=extra if torch.is_tensor(extra) else None, **kw)
    return out, extra


def convpool_advantage(out: dict, reps: int, n_sizes: int, at: str = "all") -> tuple[float, float]:
    """``min(MLP, SVM) - ConvPool`` test error per repetition, averaged over sizes (``at="all"``) or at
    the largest size (``at="last"``): its mean and standard error over repetitions."""
    V.choice("at", at, ("all", "last"))
    cp = out["convpool"]["test_err"].reshape(reps, n_sizes)
    other = torch.minimum(out["mlp"]["test_err"].reshape(reps, n_sizes),
                          out["svm"]["test_err"].reshape(reps, n_sizes).to(cp))
    diff = (other - cp).mean(1) if at == "all" else (other - cp)[:, -1]
    mu, se = mean_se(diff)
    return float(mu), float(se)


# ----------------------------------------------------------------------------------------------------
# Theorem 5.1 (2): sample complexity of LW_CNN against d and n
# ----------------------------------------------------------------------------------------------------


def exact_error(W: torch.Tensor, a: torch.Tensor, n: int, l: int) -> torch.Tensor:
    """Test error on ``D`` (one-hot patterns, ``l = d``) of networks ``(W [R, k, l], a [R, k])``, exactly:
    the weighted error over the support of ``D`` up to patch order (:func:`cnnbias.theory.min_norm.support_D_sets`),
    ties counted 1/2.  Returns ``[R]``."""
    V.floating_tensor("W", W, 3)
    V.tensor("a", a, shape=(W.shape[0], W.shape[1]))
    if W.shape[2] != l:
        raise ValueError(f"W must have l = {l} pattern coordinates, got shape {tuple(W.shape)}")
    if not (bool(torch.isfinite(W).all()) and bool(torch.isfinite(a).all())):
        raise ValueError("W and a must hold only finite values")
    idx, y, prob = mn.support_D_sets(n, l)
    R = W.shape[0]
    out = maxpool.forward(W, a.to(W), idx=idx.unsqueeze(0).expand(R, *idx.shape))
    return (margin_errors(y.to(out) * out, dim=-1) * prob.to(out)).sum(-1)


def max_margin_readout(Z: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, tol: float = 1e-10
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The limit direction of phase 2 (Theorem 5.1 (1)-(2)): for each run the hard-margin separator
    ``v = argmin ||v||^2 s.t. y_i v . z_i >= 1`` over the run's ``S2`` (``mask [R, M]``), the direction
    to which gradient descent on the logistic loss converges on separable data (Soudry et al. 2018,
    Thm. 3).  Solved in the dual, ``min_{alpha >= 0} 1/2 ||A^T alpha||^2 - 1^T alpha`` with rows
    ``A_i = y_i z_i``: when ``A b = 1`` has a solution (then ``S2`` is separable) this is the NNLS problem
    ``min_{alpha >= 0} ||A^T alpha - b||`` (Lawson-Hanson, exact active set); otherwise L-BFGS-B on the
    dual.  Features are rescaled to unit largest norm, which leaves the direction unchanged.  ``v = A^T
    alpha``.  Returns ``(v [R, k], separable [R])``; ``separable`` is False when no ``v`` with all
    margins ``>= 1 - 1e-6`` was found (``S2`` not linearly separable): then ``v`` is NaN.
    """
    from scipy.optimize import minimize, nnls

    V.floating_tensor("Z", Z, 3)
    V.labels_pm1("y", y)
    V.tensor("mask", mask, shape=tuple(Z.shape[:2]))
    if tuple(y.shape) != tuple(Z.shape[:2]):
        raise ValueError(f"y must be [R, M] = {tuple(Z.shape[:2])}, got {tuple(y.shape)}")
    V.positive("tol", tol)
    if not bool(torch.isfinite(Z).all()):
        raise ValueError("Z must hold only finite values")
    R, _, k = Z.shape
    vs = torch.full((R, k), math.nan, dtype=torch.float64)
    sep = torch.zeros(R, dtype=torch.bool)
    for r in range(R):
        keep = mask[r] > 0
        A = (y[r, keep, None] * Z[r, keep]).double().numpy()
        scale = float(np.linalg.norm(A, axis=1).max())
        if not scale > 0:
            continue
        A = A / scale
        m2 = A.shape[0]
        b = np.linalg.lstsq(A, np.ones(m2), rcond=None)[0]
        if float(np.abs(A @ b - 1).max()) <= 1e-8:
            # A b = 1: then 1/2 ||A^T al - b||^2 = (the dual objective) + const, an NNLS problem
            al = nnls(A.T, b, maxiter=50 * m2)[0]
        else:  # rank-deficient constraints: the dual by L-BFGS-B
            Q = A @ A.T
            al = minimize(lambda x: 0.5 * x @ Q @ x - x.sum(), np.ones(m2), jac=lambda x: Q @ x - 1.0,  # noqa: B023 (called at once, in this iteration)
                          bounds=[(0.0, None)] * m2, method="L-BFGS-B",
                          options={"ftol": tol, "gtol": tol, "maxiter": 10_000}).x
        v = A.T @ al
        if not (np.all(np.isfinite(v)) and float((A @ v).min()) >= 1 - 1e-6):
            continue
        vs[r] = torch.as_tensor(v / scale)
        sep[r] = True
    return vs, sep


def sample_complexity(name: str, cfg: dict, *, d: int, n: int, sizes: Sequence[int], reps: int, T1: int,
                      eps: float, chunk_numbers: float = 2e7) -> dict[str, np.ndarray]:
    """The smallest training-set size from which ``LW_CNN`` reaches test error ``<= eps`` (Theorem 5.1 (2)).

    Repetition ``rep`` draws ONE pool of ``max(sizes)`` points of ``D`` (``l = d`` one-hot patterns, ``n``
    patches) and ONE initialization; for every ``m`` in ``sizes`` it runs Algorithm 1 on the pool's first
    ``m`` points (nested training sets, all runs batched by :func:`lw_cnn`) under the theorem's largest
    settings (:func:`default_hparams`), takes the limit ``T2 -> infinity`` of phase 2 as the max-margin
    readout of ``z(S2)`` (:func:`max_margin_readout`) and computes its test error exactly
    (:func:`exact_error`).  ``m*_rep`` is the smallest ``m`` of ``sizes`` such that the error is ``<= eps``
    at ``m`` and at every larger size; ``inf`` if it is above ``eps`` at the largest size (censored).
    Repetitions are independent (own pool, own initialization); they train in chunks whose features ``z``
    hold at most about ``chunk_numbers`` numbers (the chunking changes no result).  Returns ``{"err" [reps, S],
    "m_star" [reps], "separable" [reps, S]}``."""
    V.integer("d", d, 3)
    V.integer("n", n, 2)
    V.integer("reps", reps, 1)
    V.integer("T1", T1, 1)
    _check_sizes_reps(sizes, reps)
    if not (0 < eps < 0.5):
        raise ValueError(f"eps must lie in (0, 0.5), got {eps!r}")
    sizes = [int(s) for s in sizes]
    if sorted(set(sizes)) != sizes or sizes[0] < 2:
        raise ValueError(f"sizes must be strictly increasing integers >= 2, got {sizes}")
    hp = default_hparams(d, T1, eta2_fraction=0.99)
    key = {**cfg, "d": d, "n": n}
    pools = config.generators(name, key, reps)
    inits = config.generators(name + "_init", key, reps)
    draws = [P.sample_D(max(sizes), n, d, g) for g in pools]
    S = len(sizes)
    # repetitions in chunks whose features z stay under ~2e7 numbers (runs are independent: the chunking
    # changes no result, :mod:`cnnbias.engine` trains a run identically alone or batched)
    V.positive("chunk_numbers", chunk_numbers)
    chunk = max(1, int(chunk_numbers // (S * max(sizes) * hp["k"])))
    errs, seps = [], []
    for c0 in range(0, reps, chunk):
        rs = range(c0, min(reps, c0 + chunk))
        idx = torch.stack([draws[r][0] for r in rs for _ in range(S)])
        y = torch.stack([draws[r][1] for r in rs for _ in range(S)])
        gens = []
        for r in rs:
            for _ in range(S):
                c = torch.Generator()
                c.set_state(inits[r].get_state())
                gens.append(c)
        res = lw_cnn(idx, y, k=hp["k"], d=d, T1=T1, T2=1, eta1=hp["eta1"], eta2=hp["eta2"], r=hp["r"],
                     gens=gens, sizes=sizes * len(rs), record_W=False, record_loss_every=1)
        Z = maxpool.responses(res.W, idx=idx)
        v, sep = max_margin_readout(Z, y, res.mask2)
        err = torch.full((len(gens),), 0.5, dtype=torch.float64)
        if bool(sep.any()):
            err[sep] = exact_error(res.W[sep], v[sep], n, d)
        errs.append(err)
        seps.append(sep)
    err, sep = torch.cat(errs), torch.cat(seps)
    err = err.reshape(reps, S).numpy()
    ok = err <= eps
    m_star = np.full(reps, np.inf)
    for r in range(reps):
        for s in range(S):
            if ok[r, s:].all():
                m_star[r] = sizes[s]
                break
    return {"err": err, "m_star": m_star, "separable": sep.reshape(reps, S).numpy(), "k": hp["k"]}


# ----------------------------------------------------------------------------------------------------
# The VC chapter: SGD against the shattering networks on D_vc (PSI paper, Remark E.1)
# ----------------------------------------------------------------------------------------------------

#: Settings of the D_vc experiment of the VC chapter per scale; ``paper`` is App. E.3 of the PSI paper
#: (k = 1000, batch 100, step 0.001, sigma_g = 1e-6, up to 50,000 epochs) at its (n, d) = (10, 20).
VC_CONFIGS = {
    "smoke": {"ns": [2, 3, 4], "n_sgd": 10, "k": 50, "m": 40, "reps": 2, "lr": 0.01, "batch": 10,
              "sigma_g": 1e-3, "epochs": 100, "m_test": 500},
    "book": {"ns": [2, 3, 4, 5], "n_sgd": 12, "k": 100, "m": 40, "reps": 10, "lr": 0.01, "batch": 10,
             "sigma_g": 1e-3, "epochs": 300, "m_test": 1000},
    "paper": {"ns": [2, 3, 4, 5], "n_sgd": 10, "k": 1000, "m": 100, "reps": 10, "lr": 0.001, "batch": 100,
              "sigma_g": 1e-6, "epochs": 50000, "m_test": 1000},
}


def dvc_sgd_vs_shattering(cfg: dict) -> dict[str, list]:
    """``reps`` independent runs on ``D_vc`` (``n = n_sgd``, ``d = 2n``): each draws a training set of ``m``
    points, a test set of ``m_test`` points and an initialization (seeds ``config.generators("vc_dvc_sgd",
    cfg, reps)``), trains ``N_W`` by SGD on the hinge loss (``cnnbias.experiments.psi.train_nw_sgd``:
    ``2k`` channels, first layer only, ``sigma_g``, step ``lr``, batch ``batch``, up to ``epochs``) and fits
    the shattering network of the same training set (:func:`cnnbias.theory.vc.fit_by_shattering`).
    Per run: training and test errors of both, the least training error of any function of the
    configuration, the fraction of test points whose configuration was seen, ``c*`` (Eq. 10, b = 2) and the
    worst spurious detection ratio (Eq. 9) of the SGD network, ``M_w^+(1)``, ``M_u^-(2)``, SGD epochs."""
    from cnnbias.experiments import psi as PE
    from cnnbias.theory import psi as TP
    from cnnbias.theory import vc

    for key in ("n_sgd", "k", "m", "reps", "lr", "batch", "sigma_g", "epochs", "m_test"):
        if key not in cfg:
            raise ValueError(f"cfg lacks {key!r}")
    n_v, k_v, m_v, R_v = int(cfg["n_sgd"]), int(cfg["k"]), int(cfg["m"]), int(cfg["reps"])
    gens = config.generators("vc_dvc_sgd", cfg, R_v)
    idx_tr, y_tr = P.stack_runs(P.sample_Dvc, gens, m=m_v, n=n_v)
    idx_te, y_te = P.stack_runs(P.sample_Dvc, gens, m=cfg["m_test"], n=n_v)
    res = PE.train_nw_sgd(idx_tr, y_tr, k=k_v, d=2 * n_v, sigma_g=cfg["sigma_g"], lr=cfg["lr"],
                          batch_size=cfg["batch"], max_epochs=cfg["epochs"], gens=gens)
    W = res.params["W"]
    with torch.no_grad():
        sgd_train = error_rate(maxpool.forward_fixed(W, idx=idx_tr), y_tr)
        sgd_test = error_rate(maxpool.forward_fixed(W, idx=idx_te), y_te)
    q = vc.psi_quantities(W, P.one_hot_patterns(2 * n_v))
    cstar = TP.c_star(W, TP.pattern_statistics(idx_tr, y_tr, 2 * n_v), m_v, b=2.0)
    _, eq9_worst = TP.eq9_holds(W, 2 * n_v)
    N = 2 ** (n_v - 1)
    out = {k_: [] for k_ in ("sh_train", "sh_test", "best_config_only", "seen_frac")}
    for r in range(R_v):
        W_sh, _ = vc.fit_by_shattering(idx_tr[r], y_tr[r], n_v)
        out["sh_train"].append(float(error_rate(maxpool.forward_fixed(W_sh[None], idx=idx_tr[r:r + 1])[0], y_tr[r])))
        out["sh_test"].append(float(error_rate(maxpool.forward_fixed(W_sh[None], idx=idx_te[r:r + 1])[0], y_te[r])))
        I_tr = vc.config_index(idx_tr[r], n_v)
        npos = torch.zeros(N, dtype=torch.float64).index_add_(0, I_tr, (y_tr[r] > 0).double())
        nneg = torch.zeros(N, dtype=torch.float64).index_add_(0, I_tr, (y_tr[r] < 0).double())
        out["best_config_only"].append(float(torch.minimum(npos, nneg).sum()) / m_v)
        out["seen_frac"].append(float(torch.isin(vc.config_index(idx_te[r], n_v), I_tr).double().mean()))
    out.update({"sgd_train": sgd_train.tolist(), "sgd_test": sgd_test.tolist(), "cstar": cstar.tolist(),
                "eq9_worst": eq9_worst.tolist(), "Mw_plus_1": q["Mw_plus_1"].tolist(),
                "Mu_minus_2": q["Mu_minus_2"].tolist(), "epochs": [int(e) for e in res.epochs.tolist()]})
    return out


def dvc_claims(r: dict, claims) -> None:
    """The chapter's claims ``maxpool.dvc_sgd_generalizes`` and ``maxpool.dvc_sgd_cstar`` from the per-run
    values of :func:`dvc_sgd_vs_shattering` (runs independent: means with standard errors over runs).  Used by
    the chapter (book scale) and by the sweep's claims (paper scale)."""
    from cnnbias.claims import fmt_se

    sgd_test, sh_test = np.asarray(r["sgd_test"]), np.asarray(r["sh_test"])
    ms, ss = mean_se(sgd_test)
    ms2, ss2 = mean_se(sh_test)
    sgd_train_max = float(np.max(r["sgd_train"]))
    fits = bool(np.allclose(r["sh_train"], r["best_config_only"], rtol=0, atol=1e-12))
    claims.check(
        "maxpool.dvc_sgd_generalizes",
        "D_vc: SGD train error 0 and mean test error <= 0.05; shattering net fits every fittable "
        "configuration, test error >= 0.4 (means over independent runs)",
        sgd_train_max == 0 and float(ms) <= 0.05 and fits and float(ms2) >= 0.4,
        measured=f"SGD test {fmt_se(ms, ss)}, shattering test {fmt_se(ms2, ss2)}, SGD train {sgd_train_max:.4f}",
        paper="SGD: good generalization; shattering nets: arbitrarily high test error (Remark E.1)",
        tolerance="SGD <= 0.05, shattering >= 0.4",
        value={"sgd_test": float(ms), "shattering_test": float(ms2), "sgd_train_max": sgd_train_max},
    )
    cstar = np.asarray(r["cstar"])
    claims.check(
        "maxpool.dvc_sgd_cstar",
        "D_vc: the SGD networks satisfy PSI with b = 2 and c < 1, i.e. c* of Eq. 10 < 1 in every run "
        "(PSI paper Sec. 7: 'across all experiments, the value of c* is less than 1')",
        bool((cstar < 1).all()),
        measured=f"max c* over {len(cstar)} runs {float(cstar.max()):.3f}",
        paper="c* < 1 in all experiments (Fig. 1a, D_vc; Remark E.1: SGD satisfies PSI)",
        tolerance="every run c* < 1",
        value={"max_cstar": float(cstar.max())},
    )


def vc_dvc_cell(cfg: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """The sweep cell ``maxpool.vc_dvc``: :func:`dvc_sgd_vs_shattering` (CPU, float64: it trains on
    ``config.device()``, so the process must run with ``CNNBIAS_DEVICE=cpu``)."""
    if config.device().type != "cpu" or torch.device(device).type != "cpu":
        raise ValueError("maxpool.vc_dvc cells run on the CPU in float64: set CNNBIAS_DEVICE=cpu")
    return dvc_sgd_vs_shattering(cfg)


from cnnbias.sweeps.spec import ClaimSpec as _ClaimSpec  # noqa: E402  (the sweep declarations end the module)
from cnnbias.sweeps.spec import Sweep as _Sweep  # noqa: E402
from cnnbias.sweeps.spec import register as _register  # noqa: E402
from cnnbias.sweeps.spec import register_claim as _register_claim  # noqa: E402

SWEEP_VC_DVC = _register(_Sweep(
    "maxpool.vc_dvc", vc_dvc_cell, cells={s: [c] for s, c in VC_CONFIGS.items()},
    code=("cnnbias.config", "cnnbias.stats", "cnnbias.data.patterns", "cnnbias.engine", "cnnbias.models.init",
          "cnnbias.models.maxpool", "cnnbias.theory.vc", "cnnbias.theory.psi", "cnnbias.experiments.psi"),
    description="VC chapter (PSI Remark E.1): D_vc, SGD on N_W against the shattering networks; c* per run",
    label=lambda c: f"n={c['n_sgd']}/k={c['k']}/m={c['m']}",
    cpu_only=True,
))


def _claim_vc_dvc(cells, claims) -> None:
    dvc_claims(cells[0][1], claims)


_register_claim(_ClaimSpec("maxpool.dvc_sgd_generalizes", "maxpool.vc_dvc", _claim_vc_dvc))
_register_claim(_ClaimSpec("maxpool.dvc_sgd_cstar", "maxpool.vc_dvc", _claim_vc_dvc))


# ----------------------------------------------------------------------------------------------------
# Sweep behind the sample-complexity claims of Theorem 5.1 (2) (``python -m cnnbias sweep maxpool.lw_sc``)
# ----------------------------------------------------------------------------------------------------

#: For each scale the d-family (``ds`` at ``n = n0``), the n-family (``ns`` at ``d = d_n``), the size grid,
#: repetitions per (d, n), T1 and the error level eps of :func:`sample_complexity`.
SC_SCALES = {
    "smoke": {"ds": [3, 4], "n0": 3, "ns": [3, 6], "d_n": 3, "sizes": [4, 8, 16], "reps": 4, "T1": 5,
              "eps": 0.05},
    "book": {"ds": [3, 4, 5, 6], "n0": 3, "ns": [3, 6, 12], "d_n": 4, "sizes": [4, 6, 8, 12, 16, 24, 32],
             "reps": 20, "T1": 10, "eps": 0.05},
    "paper": {"ds": [3, 4, 5, 6, 7, 8], "n0": 3, "ns": [3, 6, 12, 24], "d_n": 4,
              "sizes": [4, 6, 8, 12, 16, 24, 32, 48, 64], "reps": 50, "T1": 20, "eps": 0.05},
}


def sc_cells(scale: str) -> list[dict]:
    """One cell per (d, n) of the scale's two families (the shared (d_n, n0) once)."""
    V.choice("scale", scale, tuple(SC_SCALES))
    s = SC_SCALES[scale]
    pairs = [(d_, s["n0"]) for d_ in s["ds"]]
    pairs += [(s["d_n"], n_) for n_ in s["ns"] if (s["d_n"], n_) not in pairs]
    common = {k: s[k] for k in ("n0", "d_n", "sizes", "reps", "T1", "eps")}
    return [dict(common, d=d_, n=n_) for d_, n_ in pairs]


def sc_cell(cfg: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """One (d, n) of :func:`sample_complexity` (seeds from the cell's config; CPU, float64).  ``m_star`` of a
    censored repetition is stored as ``2 * max(sizes)`` and counted in ``censored``."""
    if config.device().type != "cpu" or torch.device(device).type != "cpu":
        raise ValueError("maxpool.lw_sc cells run on the CPU in float64: set CNNBIAS_DEVICE=cpu")
    o = sample_complexity("maxpool.lw_sc", cfg, d=cfg["d"], n=cfg["n"], sizes=cfg["sizes"], reps=cfg["reps"],
                          T1=cfg["T1"], eps=cfg["eps"])
    cap = 2 * max(cfg["sizes"])
    return {"err": o["err"].tolist(), "m_star": [float(v) if math.isfinite(v) else float(cap) for v in o["m_star"]],
            "censored": int((~np.isfinite(o["m_star"])).sum()), "non_separable": int((~o["separable"]).sum()),
            "k": int(o["k"])}


def sc_slope(cells, family: str) -> tuple[float, float, list]:
    """OLS slope of ``log m*`` on ``log d`` (``family="d"``: cells with ``n = n0``) or on ``log n``
    (``family="n"``: cells with ``d = d_n``) over all repetitions (independent), its standard error, and the
    family's cells in order."""
    V.choice("family", family, ("d", "n"))
    if family == "d":
        fam = sorted([(c, r) for c, r in cells if c["n"] == c["n0"]], key=lambda cr: cr[0]["d"])
    else:
        fam = sorted([(c, r) for c, r in cells if c["d"] == c["d_n"]], key=lambda cr: cr[0]["n"])
    if len(fam) < 2:
        raise ValueError(f"the {family}-family needs at least 2 cells, got {len(fam)}")
    x = np.concatenate([np.full(len(r["m_star"]), math.log(c[family])) for c, r in fam])
    ys = np.concatenate([np.log(np.asarray(r["m_star"], dtype=float)) for _, r in fam])
    X = np.stack([np.ones_like(x), x], 1)
    coef = np.linalg.lstsq(X, ys, rcond=None)[0]
    resid = ys - X @ coef
    s2 = float(resid @ resid) / (len(ys) - 2)
    return float(coef[1]), math.sqrt(s2 * float(np.linalg.inv(X.T @ X)[1, 1])), fam


def sc_claims(cells, claims) -> None:
    """The claims ``maxpool.thm51_sample_complexity_d`` and ``_n`` (used by the chapter at book scale and by
    the sweep's claims at paper scale)."""
    from cnnbias.claims import fmt_se

    beta_d, se_d, fam_d = sc_slope(cells, "d")
    beta_n, se_n, fam_n = sc_slope(cells, "n")
    eps = fam_d[0][0]["eps"]
    ds = [c["d"] for c, _ in fam_d]
    ns = [c["n"] for c, _ in fam_n]
    claims.check(
        "maxpool.thm51_sample_complexity_d",
        f"LW_CNN under Thm. 5.1's conditions: the m needed for test error <= {eps} grows at most "
        "linearly in d: slope of log m* on log d (OLS over independent repetitions) + 2 SE < 1",
        beta_d + 2 * se_d < 1,
        measured=f"slope {fmt_se(beta_d, se_d)} (d = {ds})",
        paper="'the sample complexity is linear in d' (Thm. 5.1 (2), Sec. 5)",
        tolerance="slope + 2 SE < 1",
        value={"slope": beta_d},
        se=se_d,
    )
    claims.check(
        "maxpool.thm51_sample_complexity_n",
        f"the m needed for test error <= {eps} does not depend on n: |slope of log m* on log n| + 2 SE "
        "<= 0.5 at fixed d (the FC / SVM margin bound 2n^2 of Prop. 6.1 has slope 2)",
        abs(beta_n) + 2 * se_n <= 0.5,
        measured=f"slope {fmt_se(beta_n, se_n)} (n = {ns}, d = {fam_n[0][0]['d']})",
        paper="O(sqrt(d/m)) test error, no n (Thm. 5.1 (2))",
        tolerance="|slope| + 2 SE <= 0.5",
        value={"slope": beta_n},
        se=se_n,
    )


SWEEP_LW_SC = _register(_Sweep(
    "maxpool.lw_sc", sc_cell, cells={s: sc_cells(s) for s in SC_SCALES},
    code=("cnnbias.config", "cnnbias.stats", "cnnbias.data.patterns", "cnnbias.engine", "cnnbias.models.init",
          "cnnbias.models.maxpool", "cnnbias.theory.min_norm"),
    description="Thm. 5.1 (2): LW_CNN's sample complexity m* (exact test error <= eps) against d and n",
    label=lambda c: f"d={c['d']}/n={c['n']}",
    cpu_only=True,
))
_register_claim(_ClaimSpec("maxpool.thm51_sample_complexity_d", "maxpool.lw_sc", sc_claims))
_register_claim(_ClaimSpec("maxpool.thm51_sample_complexity_n", "maxpool.lw_sc", sc_claims))
