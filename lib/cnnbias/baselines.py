"""ConvPool vs MLP vs hard-margin linear SVM on pattern detection (Sec. 7 of :cite:`maxpool_orthogonal`).

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

import numpy as np
import torch

from cnnbias import engine
from cnnbias.models import maxpool, mlp
from cnnbias.stats import error_rate

__all__ = ["compare_models", "conv_forward", "conv_init", "svm_fit_predict", "train_masked"]


def conv_forward(params: dict[str, torch.Tensor], X=None, idx=None, patterns=None) -> torch.Tensor:
    """``N_CNN(x) = sum_c a_c max_j relu(w_c . x[j])`` ``[R, m]`` (:func:`cnnbias.models.maxpool.forward`;
    ``patterns [l, d]`` or ``[R, l, d]`` with ``idx`` gathers from ``W P^T``)."""
    return maxpool.forward(params["W"], params["a"], X=X, idx=idx, patterns=patterns)


def conv_init(C: int, d: int, gens: Sequence[torch.Generator], dtype=torch.float64) -> dict[str, torch.Tensor]:
    """PyTorch-default init: ``W`` uniform in ``+-1/sqrt(d)``, ``a`` uniform in ``+-1/sqrt(C)``."""
    W = torch.stack([(2 * torch.rand(C, d, generator=g, dtype=torch.float64) - 1) / math.sqrt(d) for g in gens])
    a = torch.stack([(2 * torch.rand(C, generator=g, dtype=torch.float64) - 1) / math.sqrt(C) for g in gens])
    return {"W": W.to(dtype), "a": a.to(dtype)}


def train_masked(forward, params: dict[str, torch.Tensor], data: dict[str, torch.Tensor], y: torch.Tensor,
                 mask: torch.Tensor, *, lr: float, epochs: int, loss_below: float | None = None,
                 check_every: int = 10) -> engine.TrainResult:
    """Full-batch Adam on the masked mean logistic loss of every run.

    ``forward(params, **batch_data) -> [R', m]`` where ``batch_data`` holds ``batch.take`` of each
    tensor in ``data`` (leading run axis).  ``mask [R, m]`` is 1 for a run's real examples.
    """
    counts = mask.sum(1)
    if bool((counts < 1).any()):
        raise ValueError("mask must select at least one example per run")

    def loss_fn(p, batch):
        out = forward(p, **{k: batch.take(v) for k, v in data.items()})
        msk = batch.take(mask)
        return (msk * engine.logistic(batch.take(y) * out)).sum(1) / msk.sum(1)

    return engine.train(loss_fn, params, optimizer="adam", lr=lr,
                        stop=engine.StopRule(max_epochs=int(epochs), loss_below=loss_below, check_every=check_every))


def svm_fit_predict(Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, C: float = 1e6,
                    max_iter: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """Hard-margin (large ``C``) linear SVM: returns ``(train scores, test scores)``."""
    from sklearn.svm import SVC

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

    ``train[r] = (X [m_r, n, d] float, y [m_r])`` with dense patches, or ``(idx [m_r, n] int64, y)``
    with pattern indices and ``patterns [l, d]`` or ``[R, l, d]`` (orthonormal; used by ConvPool as a gather and
    embedded for MLP / SVM).  ``test[r]`` likewise.  ``gens[r]`` initializes run ``r``'s networks.
    """
    if len(train) != len(test) or len(train) != len(gens):
        raise ValueError("train, test and gens must have one entry per run")
    unknown = set(models) - {"convpool", "mlp", "svm"}
    if unknown:
        raise ValueError(f"models may contain 'convpool', 'mlp', 'svm'; got {sorted(unknown)}")
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
    if "convpool" in models:
        params = conv_init(channels, d, cpu_gens)
        if indexed:
            Pr = patterns if patterns.dim() == 3 else patterns.expand(len(train), *patterns.shape)
            fwd = lambda p, idx, P: conv_forward(p, idx=idx, patterns=P)
            data_tr, data_te = {"idx": Xp, "P": Pr}, {"idx": Xte, "P": Pr}
        else:
            fwd = lambda p, X: conv_forward(p, X=X)
            data_tr, data_te = {"X": Xp}, {"X": Xte}
        t0 = time.perf_counter()
        res = train_masked(fwd, params, data_tr, yp, mask, lr=lr_conv, epochs=epochs, loss_below=loss_below)
        with torch.no_grad():
            s_tr = fwd(res.params, **data_tr)
            s_te = fwd(res.params, **data_te)
        out["convpool"] = {"train_err": _masked_err(s_tr, yp, mask), "test_err": error_rate(s_te, yte),
                           "epochs": res.epochs, "seconds": time.perf_counter() - t0}
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
        out["mlp"] = {"train_err": _masked_err(s_tr, yp, mask), "test_err": error_rate(s_te, yte),
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


def _masked_err(scores: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    e = (y * scores < 0).to(torch.float64) + 0.5 * (scores == 0).to(torch.float64)
    return (e * mask).sum(1) / mask.sum(1)


def pattern_runs(sizes: Sequence[int], reps: int, *, n: int, d: int, l: int | None = None, noise: float = 0.0,
                 m_test: int = 1000, gens: Sequence[torch.Generator]):
    """Datasets of Fig. 3a/3b/4: run ``r = rep * len(sizes) + s`` has its own random orthogonal patterns
    (``l`` rows of a Haar orthogonal matrix in R^d, default ``l = d``), ``sizes[s]`` training points of
    ``D`` and ``m_test`` test points, from ``gens[r]``.  Clean data are returned as pattern indices
    (with ``patterns [R, l, d]``), noisy data as dense patches (``patterns`` None).
    Returns ``(train, test, patterns)`` for :func:`compare_models`."""
    from cnnbias.data import patterns as P
    from cnnbias.data.noisy_patterns import noisy_embed

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


def digit_runs(sizes: Sequence[int], reps: int, *, n: int = 4, m_test: int = 1000,
               gens: Sequence[torch.Generator], pos: int = 3, neg: int = 5, root=None):
    """Datasets of Fig. 3c: images of ``n`` digits (:mod:`cnnbias.data.digit_patterns`); each run splits
    the digit images into train / test pools with its own generator.  Returns ``(train, test, source)``."""
    from cnnbias.data.digit_patterns import sample_digit_patterns, split_pools
    from cnnbias.data.digits import load_digits

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
    v = torch.as_tensor(values, dtype=torch.float64).reshape(reps, n_sizes)
    sd = v.std(0) if reps > 1 else torch.zeros(n_sizes, dtype=torch.float64)
    return v.mean(0).numpy(), sd.numpy()
