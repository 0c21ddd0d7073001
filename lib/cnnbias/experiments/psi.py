"""Training N_W as in Section 3 / App. E.3 of the PSI paper (book key ``psi_orthogonal``).

N_W(x) = sum_i [max_j relu(w(i).x[j]) - max_j relu(u(i).x[j])] (Eq. 1, :func:`cnnbias.models.maxpool.forward_fixed`),
readout fixed to +1/-1, only the first layer ``W [R, 2k, d]`` trained; hinge loss (1/m) sum max{0, 1 - y N_W(x)};
SGD with a constant learning rate; W_0 i.i.d. N(0, sigma_g^2); stop after ``max_epochs`` epochs or once the full
training loss is below ``loss_below`` (1e-5 in App. E.3).  Built on :func:`cnnbias.engine.train` (R runs batched).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from cnnbias import config, engine, stats
from cnnbias import validate as V
from cnnbias.data import colored_digits as cd
from cnnbias.data import patterns as pat
from cnnbias.models import init
from cnnbias.models.maxpool import forward_fixed
from cnnbias.theory import psi

__all__ = [
    "binomial_excess_pvalue",
    "init_W",
    "network_outputs",
    "points_per_chunk",
    "rank_trend_power",
    "rank_trend_test",
    "run_cell",
    "run_digits",
    "sample_runs",
    "train_psi",
]


def init_W(k: int, d: int, sigma_g: float, gens: Sequence[torch.Generator],
           dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Tensor:
    """W_0 [R, 2k, d] with i.i.d. N(0, sigma_g^2) entries, run r drawn (on CPU) from ``gens[r]``."""
    V.integer("k", k, 1)
    V.integer("d", d, 1)
    V.positive("sigma_g", sigma_g)
    V.generators("gens", gens)
    W = init.normal(gens, (2 * int(k), int(d)), sigma_g)
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
    V.floating_tensor("W0", W0, 3)
    if W0.shape[1] == 0 or W0.shape[1] % 2:
        raise ValueError(f"W0 must have shape [R, 2k, d] with k >= 1, got {tuple(W0.shape)}")
    V.labels_pm1("y", y)
    if y.dim() != 2 or y.shape[1] == 0:
        raise ValueError(f"y must have shape [R, m] with m >= 1, got {tuple(y.shape)}")
    if idx is not None:
        V.tensor("idx", idx, 3, kind="int")
        V.index_in_range("idx", idx, W0.shape[2])
    else:
        V.floating_tensor("X", X, 4)
        if X.shape[-1] != W0.shape[2]:
            raise ValueError(f"X must have shape [R, m, n, d={W0.shape[2]}], got {tuple(X.shape)}")
    V.integer("batch_size", batch_size, 1)
    V.integer("max_epochs", max_epochs, 1)
    V.nonnegative("loss_below", loss_below)
    V.integer("check_every", check_every, 1)
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
            out = forward_fixed(params["W"], idx=batch.take(idx))
        else:
            out = forward_fixed(params["W"], X=batch.take(Xd))
        return engine.hinge(yb * out).mean(-1)

    def eval_fn(params: dict[str, Tensor], batch: engine.Batch) -> Tensor:
        # full training loss for the stop rule, in chunks of points so that the [R, 2k, chunk, n] gather fits
        Wc = params["W"]
        data = batch.take(idx if idx is not None else Xd)
        yb = batch.take(yW)
        step = points_per_chunk(Wc.shape[0], Wc.shape[1], data.shape[2])
        if step >= m:
            return loss_fn(params, batch)
        total = torch.zeros(Wc.shape[0], dtype=Wc.dtype, device=Wc.device)
        for a in range(0, m, step):
            part = data[:, a:a + step]
            out = forward_fixed(Wc, idx=part) if idx is not None else forward_fixed(Wc, X=part)
            total = total + engine.hinge(yb[:, a:a + step] * out).sum(-1)
        return total / m

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
        eval_fn=eval_fn if opt == "sgd" else None,
    )


def rank_trend_test(x, y, rho0: float = 0.3) -> tuple[float, float]:
    """Spearman rank correlation of independent pairs (x_j, y_j) and the one-sided p-value of
    H0: rho <= rho0 ("at most slightly correlated") against rho > rho0.

    Fisher's z with the Fieller-Hartley-Pearson (1957) standard error ``1.06 / sqrt(N - 3)`` for Spearman's rho:
    ``p = 1 - Phi((atanh(rho) - atanh(rho0)) sqrt(N - 3) / 1.06)``.  With N = 30 pairs and rho0 = 0.3 the test
    at level 0.05 rejects a true rho = 0.8 with probability 0.99 and rejects rho <= 0.3 at most 5% of the time.
    Returns (rho, p); a constant y gives rho = 0.
    """
    from cnnbias import stats as _st

    xa = torch.as_tensor(x, dtype=torch.float64).reshape(-1)
    ya = torch.as_tensor(y, dtype=torch.float64).reshape(-1)
    if xa.shape != ya.shape or xa.numel() < 4:
        raise ValueError(f"x and y must be two samples of equal length >= 4; got {xa.numel()} and {ya.numel()}")
    V.real("rho0", rho0)
    if not -1 < rho0 < 1:
        raise ValueError(f"rho0 must lie in (-1, 1), got {rho0}")
    rho = _st.spearman(xa, ya) if float(ya.std()) > 0 else 0.0
    z = (math.atanh(max(min(rho, 1 - 1e-12), -1 + 1e-12)) - math.atanh(rho0)) * math.sqrt(xa.numel() - 3) / 1.06
    return rho, 0.5 * math.erfc(z / math.sqrt(2))


def rank_trend_power(N: int, rho: float, rho0: float = 0.3, alpha: float = 0.05) -> float:
    """Power of :func:`rank_trend_test` at level ``alpha``: the probability that N independent pairs with true
    Spearman correlation ``rho`` reject H0: rho <= rho0 (same Fisher-z approximation)."""
    V.integer("N", N, 4)
    for nm, v in (("rho", rho), ("rho0", rho0)):
        V.real(nm, v)
        if not -1 < v < 1:
            raise ValueError(f"{nm} must lie in (-1, 1), got {v}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    from scipy.stats import norm

    shift = (math.atanh(rho) - math.atanh(rho0)) * math.sqrt(N - 3) / 1.06
    return float(norm.sf(norm.isf(alpha) - shift))


def binomial_excess_pvalue(failures: int, N: int, p0: float) -> float:
    """One-sided exact binomial p-value of H0: failure probability <= p0, given ``failures`` in ``N``
    independent trials: P[Bin(N, p0) >= failures] (1 when failures = 0)."""
    V.integer("N", N, 1)
    V.integer("failures", failures, 0)
    if failures > N:
        raise ValueError(f"failures must be <= N={N}, got {failures}")
    if not 0 <= p0 <= 1:
        raise ValueError(f"p0 must lie in [0, 1], got {p0}")
    if failures == 0:
        return 1.0
    from scipy.stats import binom

    return float(binom.sf(failures - 1, N, p0))


ELEMENT_BUDGET = 2e8  # largest [R, 2k, points, n] gather formed at once when evaluating many points


def points_per_chunk(R: int, C: int, n: int, budget: float | None = None) -> int:
    """How many points to evaluate at once so that an [R, C, points, n] tensor stays within ``budget``
    (default: the module's ``ELEMENT_BUDGET``)."""
    V.integer("R", R, 1)
    V.integer("C", C, 1)
    V.integer("n", n, 1)
    if budget is not None:
        V.positive("budget", budget)
    budget = ELEMENT_BUDGET if budget is None else budget
    return max(1, int(budget // max(1, R * C * n)))


@torch.no_grad()
def network_outputs(W: Tensor, idx: Tensor | None = None, X: Tensor | None = None, chunk: int = 2000) -> Tensor:
    """N_W on test points [R, m_test] (chunked over points to bound memory)."""
    if (idx is None) == (X is None):
        raise ValueError("pass exactly one of idx (one-hot indices [R, m, n]) or X (dense [R, m, n, d])")
    V.floating_tensor("W", W, 3)
    V.integer("chunk", chunk, 1)
    if idx is not None:
        V.tensor("idx", idx, 3, kind="int")
        V.index_in_range("idx", idx, W.shape[2])
    else:
        V.tensor("X", X, 4)
    data = idx if idx is not None else X
    if data.shape[0] != W.shape[0]:
        raise ValueError(f"data must have R={W.shape[0]} runs (one per network), got shape {tuple(data.shape)}")
    chunk = min(chunk, points_per_chunk(W.shape[0], W.shape[1], data.shape[2]))
    outs = []
    for a in range(0, data.shape[1], chunk):
        part = data[:, a:a + chunk]
        outs.append(forward_fixed(W, idx=part) if idx is not None else forward_fixed(W, X=part.to(W)))
    return torch.cat(outs, dim=1)


def sample_runs(dist: str, m: int, n: int, d: int, gens: Sequence[torch.Generator],
                p: float | Sequence[float] | None = None) -> tuple[Tensor, Tensor]:
    """Index datasets [R, m, n], y [R, m] from D_u ("u"), D_vc ("vc", needs d = 2n) or D_p ("p", needs p: one
    value for all runs or one per run, so that runs with different p train as one program)."""
    V.choice("dist", dist, ("u", "vc", "p"))
    V.generators("gens", gens)

    if dist == "u":
        return pat.stack_runs(pat.sample_Du, gens, m=m, n=n, d=d)
    if dist == "vc":
        if d != 2 * n:
            raise ValueError(f"D_vc needs d = 2n; got n={n}, d={d}")
        return pat.stack_runs(pat.sample_Dvc, gens, m=m, n=n)
    if dist == "p":
        if p is None:
            raise ValueError("D_p needs p")
        ps = list(p) if isinstance(p, (list, tuple)) else [p] * len(gens)
        if len(ps) != len(gens):
            raise ValueError(f"p must be one value or one per run ({len(gens)}); got {len(ps)}")
        draws = [pat.sample_Dp(m, n, d, float(pv), generator=g) for pv, g in zip(ps, gens)]
        return torch.stack([a for a, _ in draws]), torch.stack([b for _, b in draws])
    raise ValueError(f"dist must be one of 'u', 'vc', 'p'; got {dist!r}")


def run_cell(experiment: str, dist: str, n: int, d: int, k: int, m: int, R: int, *, lr: float,
             batch_size: int, max_epochs: int, sigma_g: float, m_test: int = 1000,
             p: float | Sequence[float] | None = None,
             b: float = 2.0, device: torch.device | str | None = None, dtype: torch.dtype = torch.float64,
             check_every: int = 1) -> dict[str, Tensor]:
    """Train R runs of one grid cell (Sec. 7 / App. E.3) and measure what the chapter needs.

    Run r draws its training set, test set (m_test points), initialization and SGD order from its own seed
    (``config.generators(experiment, cell, R)``).  The stop rule is checked every ``check_every`` epochs for
    minibatch SGD (every epoch for full-batch GD).  Returns per-run tensors: ``c_star`` (Eq. 10 with this b),
    ``test_err``, ``train_loss``, ``epochs``, ``converged``, ``s`` [R, d], ``ratio_pos`` / ``ratio_neg``
    [R, d] (detection ratios), ``eq3_pos`` / ``eq3_neg`` (Eq. 3 lower bounds), ``margin_pos`` / ``margin_neg``
    (smallest y N_W(x) over positive / negative test points), ``eq9`` (bool) and ``eq9_worst``.
    """

    V.choice("dist", dist, ("u", "vc", "p"))
    for nm, v in (("n", n), ("d", d), ("k", k), ("m", m), ("R", R), ("batch_size", batch_size),
                  ("max_epochs", max_epochs), ("m_test", m_test), ("check_every", check_every)):
        V.integer(nm, v, 1)
    V.positive("lr", lr)
    V.positive("sigma_g", sigma_g)
    V.positive("b", b)
    cell = {"dist": dist, "n": n, "d": d, "k": k, "m": m, "lr": lr, "batch_size": batch_size,
            "max_epochs": max_epochs, "sigma_g": sigma_g, "m_test": m_test,
            "p": list(p) if isinstance(p, (list, tuple)) else p}
    gens = config.generators(experiment, cell, R)
    seeds = [config.run_seed(experiment + ".shuffle", cell, r) for r in range(R)]
    idx, y = sample_runs(dist, m + m_test, n, d, gens, p)
    W0 = init_W(k, d, sigma_g, gens, dtype=dtype, device=device)
    itr, ytr = idx[:, :m].to(W0.device), y[:, :m].to(W0.device)
    ite, yte = idx[:, m:].to(W0.device), y[:, m:].to(W0.device)
    res = train_psi(W0, ytr, idx=itr, lr=lr, batch_size=min(batch_size, m), max_epochs=max_epochs,
                    shuffle_seeds=seeds, check_every=check_every if batch_size < m else 1)
    W = res.params["W"]
    s = psi.pattern_statistics(itr, ytr, d).to(W)
    det = psi.detection(W)
    out = network_outputs(W, idx=ite)
    marg = yte.to(W) * out
    inf = torch.tensor(float("inf"), dtype=W.dtype, device=W.device)
    lbp, lbn = psi.eq3_lower_bounds(W)
    eq9, worst = psi.eq9_holds(W, d)
    return {
        "c_star": psi.c_star(W, s, m, b=b).cpu(),
        "test_err": stats.error_rate(out, yte.to(W)).cpu(),
        "train_loss": res.final_loss.cpu(),
        "epochs": res.epochs.cpu(),
        "converged": res.converged.cpu(),
        "s": s.cpu(),
        "ratio_pos": psi.positive_ratios(det).cpu(),
        "ratio_neg": psi.negative_ratios(det).cpu(),
        "eq3_pos": lbp.cpu(),
        "eq3_neg": lbn.cpu(),
        "margin_pos": torch.where(yte > 0, marg, inf).min(1).values.cpu(),
        "margin_neg": torch.where(yte < 0, marg, inf).min(1).values.cpu(),
        "out_pos_min": torch.where(yte > 0, out, inf).min(1).values.cpu(),
        "out_neg_max": torch.where(yte < 0, out, -inf).max(1).values.cpu(),
        "eq9": eq9.cpu(),
        "eq9_worst": worst.cpu(),
    }


def run_digits(experiment: str, pools, m: int, R: int, *, k: int = 20, lr: float = 1e-4, max_epochs: int = 200,
               sigma_g: float | None = None, m_test: int = 1000, n: int = 9, n_ref: int = 300,
               device: torch.device | str | None = None, dtype: torch.dtype = torch.float64) -> dict[str, Tensor]:
    """Colored-digits experiment of Sec. 8 / App. G for one training-set size m (R runs, batched).

    SGD with batch min{10, m}, constant ``lr``, hinge loss, ``max_epochs`` epochs; a run whose training loss
    reaches exactly 0 stops early, which gives the same weights as running on (a zero hinge loss has zero
    gradient).  ``sigma_g`` defaults to 1/sqrt(3d), the standard deviation of PyTorch's default convolution
    initialization (App. G does not state the initialization; the paper's code was PyTorch).

    Color split (Fig. 2c: "the filters come in three colors"): ``purity`` [R, 2k] is the share of a filter's
    learned positive mass sum(max{0, W_T - W_0}) that lies in its dominant color channel (1/3 for a filter
    spread evenly over the colors, 1 for a filter of one color; NaN for a filter that never moved),
    ``dominant_color`` [R, 2k] that channel (0 red, 1 green, 2 blue; -1 for a filter that never moved).

    Detector strengths (the quantity Fig. 2c shows as brightness): each filter's largest response over a
    reference set of ``n_ref`` test-pool digits drawn in each of the three colors, and the color of the patch
    that attains it.  Returns per run: ``train_acc``, ``test_acc``, ``epochs``, ``green_ratio`` (mean strength of
    green detectors / mean strength of blue and red detectors; ``green_ratio_init`` the same for W_0), ``W`` and
    ``W0`` [R, 2k, d].
    """

    if not isinstance(pools, cd.ColoredPools):
        raise TypeError(f"pools must be a ColoredPools (see cnnbias.data.colored_digits.load_pools), got "
                        f"{type(pools).__name__}")
    for nm, v in (("m", m), ("R", R), ("k", k), ("max_epochs", max_epochs), ("m_test", m_test), ("n", n),
                  ("n_ref", n_ref)):
        V.integer(nm, v, 1)
    V.positive("lr", lr)
    if sigma_g is not None:
        V.positive("sigma_g", sigma_g)
    cellcfg = {"m": m, "k": k, "lr": lr, "max_epochs": max_epochs, "sigma_g": sigma_g, "m_test": m_test,
               "source": pools.source}
    gens = config.generators(experiment, cellcfg, R)
    seeds = [config.run_seed(experiment + ".shuffle", cellcfg, r) for r in range(R)]
    d = pools.d
    ids, col, y = cd.stack_colored(m, pools.train.shape[0], gens, n)
    tids, tcol, ty = cd.stack_colored(m_test, pools.test.shape[0], gens, n)
    sg = sigma_g if sigma_g is not None else (3 * d) ** -0.5
    W0 = init_W(k, d, sg, gens, dtype=dtype, device=device)
    X = cd.embed_colored(ids, col, pools.train, dtype).to(W0.device)
    res = train_psi(W0, y.to(W0), X=X, lr=lr, batch_size=min(10, m), max_epochs=max_epochs,
                    shuffle_seeds=seeds, loss_below=0.0, check_every=10)
    W = res.params["W"]
    train_acc = stats.accuracy(network_outputs(W, X=X), y.to(W))
    Xt = cd.embed_colored(tids, tcol, pools.test, dtype).to(W0.device)
    test_acc = stats.accuracy(network_outputs(W, X=Xt, chunk=500), ty.to(W))
    # reference patches: the first n_ref test-pool digits in red, green and blue
    ref_ids = torch.arange(min(n_ref, pools.test.shape[0])).repeat(3)
    ref_col = torch.arange(3).repeat_interleave(min(n_ref, pools.test.shape[0]))
    ref = cd.embed_colored(ref_ids, ref_col, pools.test, dtype).to(W0.device)  # [3 n_ref, d]
    col_ref = ref_col.to(W0.device)

    def _green_ratio(Wx: Tensor) -> tuple[Tensor, Tensor]:
        strength, arg = (Wx @ ref.T).max(-1)  # [R, 2k]
        color = col_ref[arg]
        det = strength > 0
        green = det & (color == cd.GREEN)
        disc = det & (color != cd.GREEN)
        g_mean = (strength * green).sum(1) / green.sum(1).clamp(min=1)
        d_mean = (strength * disc).sum(1) / disc.sum(1).clamp(min=1)
        return g_mean / d_mean, green.sum(1)

    green_ratio, n_green = _green_ratio(W)
    green_ratio_init, _ = _green_ratio(W0)
    # color split of the learned change (Fig. 2c): positive mass of W_T - W_0 in each color channel
    dW = (W - W0).clamp(min=0).reshape(W.shape[0], W.shape[1], 3, -1).sum(-1)  # [R, 2k, 3]
    tot = dW.sum(-1)
    moved = tot > 1e-12 * float(W0.abs().max())
    purity = torch.where(moved, dW.max(-1).values / torch.where(moved, tot, torch.ones_like(tot)),
                         torch.full_like(tot, math.nan))
    dominant = torch.where(moved, dW.argmax(-1), torch.full_like(dW[..., 0], -1, dtype=torch.long))
    return {
        "train_acc": train_acc.cpu(),
        "test_acc": test_acc.cpu(),
        "epochs": res.epochs.cpu(),
        "green_ratio": green_ratio.cpu(),
        "green_ratio_init": green_ratio_init.cpu(),
        "n_green": n_green.cpu(),
        "purity": purity.cpu(),
        "dominant_color": dominant.cpu(),
        "W": W.cpu(),
        "W0": W0.cpu(),
        "examples": (ids[0, :4].clone(), col[0, :4].clone(), y[0, :4].clone()),
    }


def train_nw_sgd(idx: torch.Tensor, y: torch.Tensor, *, k: int, d: int, sigma_g: float, lr: float,
                 batch_size: int, max_epochs: int, gens, loss_below: float = 1e-5):
    """SGD on the first layer of ``N_W`` with the hinge loss (PSI paper Sec. 3 / App. E.3), R runs at
    once via :func:`cnnbias.engine.train`: ``W_0`` i.i.d. ``N(0, sigma_g^2)`` (``[R, 2k, d]``, run r from
    ``gens[r]``), constant step ``lr``, minibatches of ``batch_size``, stop once the training loss is
    below ``loss_below`` or after ``max_epochs`` epochs, on ``config.device()`` in ``config.dtype()``.
    Returns the engine's ``TrainResult`` with ``params`` moved back to the CPU in float64."""
    V.tensor("idx", idx, 3, kind="int")
    V.integer("k", k, 1)
    V.integer("d", d, 1)
    V.positive("sigma_g", sigma_g)
    V.positive("lr", lr)
    V.integer("batch_size", batch_size, 1)
    V.integer("max_epochs", max_epochs, 1)
    V.generators("gens", gens)
    R, m, _ = idx.shape
    if len(gens) != R:
        raise ValueError(f"gens must hold one generator per run ({R}), got {len(gens)}")
    dev = config.device()
    W0 = init_W(k, d, sigma_g, gens, dtype=config.dtype(dev), device=dev)
    seeds = [int(torch.randint(0, 2**62, (1,), generator=g)) for g in gens]
    res = train_psi(W0, y.to(dev), idx=idx.to(dev), lr=lr, batch_size=min(int(batch_size), m),
                    max_epochs=max_epochs, shuffle_seeds=seeds, loss_below=loss_below)
    res.params = {name: v.cpu().double() for name, v in res.params.items()}
    return res


class GridCells:
    """The PSI grid of Sec. 7 / App. E.3 as memoized cells: ``cells(dist, n, d, k, m, R, p=None,
    max_epochs=None)`` trains (once) and returns :func:`run_cell`'s result for that point, with the
    grid's learning rate ``max(kappa / k, 1e-7)``, batch size (100, or 20 for ``k > 2500``), ``sigma_g``,
    test-set size and stop-rule period taken from ``cfg`` (a scale's settings of the chapter), and
    ``b`` of Eq. 10.  Equal cells requested by different figures are trained once.
    """

    def __init__(self, cfg: dict, *, b: float = 2.0, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float64, experiment: str = "psi.grid"):
        missing = [key for key in ("kappa", "max_epochs", "sigma_g", "m_test", "check_every") if key not in cfg]
        if missing:
            raise ValueError(f"cfg lacks {', '.join(missing)}")
        V.positive("b", b)
        self.cfg, self.b, self.device, self.dtype, self.experiment = dict(cfg), float(b), device, dtype, experiment
        self._cache: dict = {}

    def __call__(self, dist: str, n: int, d: int, k: int, m: int, R: int, p=None,
                 max_epochs: int | None = None, kappa: float | None = None) -> dict[str, Tensor]:
        """Train (once) and return the cell; ``kappa`` overrides ``cfg["kappa"]`` (learning rate
        ``max(kappa / k, 1e-7)``)."""
        cfg = self.cfg
        epochs = max_epochs or cfg["max_epochs"]
        kap = cfg["kappa"] if kappa is None else kappa
        V.positive("kappa", kap)
        key = (dist, n, d, k, m, R, tuple(p) if isinstance(p, list) else p, epochs, kap)
        if key not in self._cache:
            self._cache[key] = run_cell(
                self.experiment, dist, n, d, k, m, R, lr=max(kap / k, 1e-7),
                batch_size=100 if k <= 2500 else 20, max_epochs=epochs, sigma_g=cfg["sigma_g"],
                m_test=cfg["m_test"], p=list(p) if isinstance(p, tuple) else p, b=self.b,
                device=self.device, dtype=self.dtype, check_every=cfg["check_every"])
        return self._cache[key]

    def items(self):
        """``(key, result)`` of every cell trained so far, in training order (key: the call's arguments)."""
        return list(self._cache.items())

    def results(self) -> list[dict[str, Tensor]]:
        """The results of every cell trained so far, in training order."""
        return list(self._cache.values())
