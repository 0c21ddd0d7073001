"""Train R independent runs as one batched tensor program.

Every figure of the papers averages tens to thousands of independent trainings.  Here they train
together: each parameter carries a leading *run axis* (``W: [R, k, d]``), each run has its own
training set (``X: [R, m, ...]``), and the loss function returns one loss per run.  Because run
``r``'s loss depends only on run ``r``'s parameters and data,

    grad_{theta_r} sum_s L_s(theta_s) = grad_{theta_r} L_r(theta_r),

so one backward pass through the sum gives every run its own gradient.  Optimizers:

- ``gd``: full-batch gradient descent ``theta <- theta - eta grad L(theta)``;
- ``sgd``: minibatch SGD; each epoch visits a fresh per-run random permutation of the run's
  ``n_train`` examples in batches of ``batch_size`` (the last batch may be smaller);
- ``adam``: Adam (Kingma & Ba, 2014), full batch or minibatch.

Stop rules (:class:`StopRule`) are evaluated per run every ``check_every`` epochs on the full
training loss; a run that meets one is frozen and dropped from the computation, so finished runs
cost nothing.  Minibatch order comes from a counter-based hash of ``(shuffle seed of run r, epoch)``,
not from a shared generator, so a run's trajectory does not depend on which other runs are batched
with it: training runs together or one by one gives the same parameters (``tests/test_engine.py``
checks this in float64 to 1e-10).

One epoch is one GD step for full-batch training.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["StopRule", "Batch", "TrainResult", "train", "hinge", "logistic", "permutations"]

OPTIMIZERS = ("gd", "sgd", "adam")


def hinge(z: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Hinge loss ``max(0, margin - z)`` of the margin ``z = y f(x)``."""
    return torch.relu(margin - z)


def logistic(z: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy (logistic) loss ``log(1 + exp(-z))`` of the margin ``z``, computed stably."""
    return torch.nn.functional.softplus(-z)


@dataclass(frozen=True)
class StopRule:
    """When a run stops.

    - ``max_epochs``: at most this many epochs (GD steps for full batch);
    - ``loss_below``: stop once the full training loss is ``<= loss_below`` (``0.0`` = zero hinge loss);
    - ``patience``: stop once the best training loss has not decreased by more than ``min_delta``
      for ``patience`` consecutive checks;
    - ``check_every``: evaluate the rules every this many epochs (and always at ``max_epochs``).
    """

    max_epochs: int
    loss_below: float | None = None
    patience: int | None = None
    min_delta: float = 0.0
    check_every: int = 1

    def __post_init__(self):
        if not isinstance(self.max_epochs, int) or self.max_epochs < 1:
            raise ValueError(f"StopRule.max_epochs must be an integer >= 1, got {self.max_epochs!r}")
        if self.loss_below is not None and not (self.loss_below >= 0):
            raise ValueError(f"StopRule.loss_below must be None or >= 0, got {self.loss_below!r}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            raise ValueError(f"StopRule.patience must be None or an integer >= 1, got {self.patience!r}")
        if not (self.min_delta >= 0):
            raise ValueError(f"StopRule.min_delta must be >= 0, got {self.min_delta!r}")
        if not isinstance(self.check_every, int) or self.check_every < 1:
            raise ValueError(f"StopRule.check_every must be an integer >= 1, got {self.check_every!r}")


class Batch:
    """Which runs are live and which examples each sees in this step.

    ``runs``: LongTensor ``[R']`` of the live runs' indices in the original run axis.
    ``idx``: LongTensor ``[R', B]`` of example indices per live run, or ``None`` for the full batch.
    :meth:`take` applies both to a per-run data tensor ``t: [R, m, ...]``.
    """

    def __init__(self, runs: torch.Tensor, idx: torch.Tensor | None, n_runs: int, cache: dict | None = None):
        self.runs = runs
        self.idx = idx
        self.n_runs = n_runs
        self._cache = cache if cache is not None else {}
        self.all_runs = runs.numel() == n_runs

    @property
    def full(self) -> bool:
        """True when every example of every live run is in the batch."""
        return self.idx is None

    def take(self, t: torch.Tensor) -> torch.Tensor:
        """Rows of ``t`` (leading run axis of size R) for the live runs and this batch's examples."""
        if t.shape[0] != self.n_runs:
            raise ValueError(
                f"Batch.take: data tensor has leading run axis {t.shape[0]}, expected R={self.n_runs}"
            )
        if self.all_runs:
            base = t
        else:
            hit = self._cache.get(id(t))
            if hit is not None and hit[0] is t:
                base = hit[1]
            else:
                base = t[self.runs.to(t.device)]
                self._cache[id(t)] = (t, base)
        if self.idx is None:
            return base
        rows = torch.arange(base.shape[0], device=base.device)[:, None]
        return base[rows, self.idx.to(base.device)]


@dataclass
class TrainResult:
    """Outcome of :func:`train`; every tensor has the original run order on its leading axis."""

    params: dict[str, torch.Tensor]
    epochs: torch.Tensor
    final_loss: torch.Tensor
    stop_reason: list[str]
    history: dict[str, torch.Tensor] = field(default_factory=dict)
    history_epochs: list[int] = field(default_factory=list)

    @property
    def converged(self) -> torch.Tensor:
        """Bool ``[R]``: runs stopped by ``loss_below``."""
        return torch.tensor([r == "loss_below" for r in self.stop_reason])


# --- counter-based shuffling ----------------------------------------------------------------------

_M64 = (1 << 64) - 1


def _signed(c: int) -> int:
    return c - (1 << 64) if c >= (1 << 63) else c


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def _lsr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def _splitmix64(x: torch.Tensor) -> torch.Tensor:
    z = x + _GOLDEN
    z = (z ^ _lsr(z, 30)) * _MIX1
    z = (z ^ _lsr(z, 27)) * _MIX2
    return z ^ _lsr(z, 31)


def permutations(seeds: torch.Tensor, epoch: int, n: int) -> torch.Tensor:
    """Per-run random permutations ``[R, n]`` of ``range(n)``, a pure function of (seed_r, epoch).

    Keys are splitmix64 hashes of ``(seed, epoch, i)``; sorting them gives the permutation.  Being
    counter-based, the permutation of run r is the same whether it is computed alone or in a batch.
    """
    seeds = seeds.to(torch.int64)
    e = torch.full_like(seeds, int(epoch))
    base = _splitmix64(_splitmix64(seeds) ^ _splitmix64(_splitmix64(e)))
    i = torch.arange(n, dtype=torch.int64, device=seeds.device)
    keys = _splitmix64(base[:, None] ^ _splitmix64(i)[None, :])
    return torch.argsort(keys, dim=1, stable=True)


# --- validation ---------------------------------------------------------------------------------


def _check_params(params: Mapping[str, torch.Tensor]) -> int:
    if not isinstance(params, Mapping) or len(params) == 0:
        raise ValueError("params must be a non-empty dict of name -> tensor with a leading run axis")
    sizes = {}
    for name, p in params.items():
        if not isinstance(p, torch.Tensor):
            raise ValueError(f"params[{name!r}] must be a torch.Tensor, got {type(p).__name__}")
        if p.dim() < 1:
            raise ValueError(f"params[{name!r}] must have a leading run axis (got a 0-d tensor)")
        sizes[name] = p.shape[0]
    if len(set(sizes.values())) != 1:
        raise ValueError(f"params must share the leading run axis R; got sizes {sizes}")
    R = next(iter(sizes.values()))
    if R < 1:
        raise ValueError("params have R = 0 runs; R must be >= 1")
    return R


def _check_lr(lr, R: int, like: torch.Tensor) -> torch.Tensor:
    if isinstance(lr, torch.Tensor):
        t = lr.detach().to(device=like.device, dtype=like.dtype).reshape(-1)
        if t.numel() == 1:
            t = t.expand(R).clone()
        if t.numel() != R:
            raise ValueError(f"lr tensor must have one entry per run (R={R}), got shape {tuple(lr.shape)}")
    else:
        try:
            v = float(lr)
        except (TypeError, ValueError):
            raise ValueError(f"lr must be a positive number or a Tensor[R], got {lr!r}") from None
        t = torch.full((R,), v, device=like.device, dtype=like.dtype)
    if not bool(torch.all(torch.isfinite(t))) or not bool(torch.all(t > 0)):
        raise ValueError(f"lr must be positive and finite (every run), got {lr!r}")
    return t


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape((-1,) + (1,) * (like.dim() - 1))


# --- training -----------------------------------------------------------------------------------


def train(
    loss_fn: Callable[[dict[str, torch.Tensor], Batch], torch.Tensor],
    params: Mapping[str, torch.Tensor],
    *,
    lr,
    stop: StopRule,
    trainable: Sequence[str] | None = None,
    optimizer: str = "gd",
    n_train: int | None = None,
    batch_size: int | None = None,
    shuffle_seeds: Sequence[int] | torch.Tensor | None = None,
    eval_fn: Callable[[dict[str, torch.Tensor], Batch], torch.Tensor] | None = None,
    record: Callable[[dict[str, torch.Tensor], torch.Tensor], Mapping[str, torch.Tensor]] | None = None,
    record_every: int = 1,
    adam_betas: tuple[float, float] = (0.9, 0.999),
    adam_eps: float = 1e-8,
    progress: bool | None = None,
) -> TrainResult:
    """Train the R runs in ``params`` until each meets ``stop``.

    ``loss_fn(params, batch)`` returns the per-run *mean* loss ``[R']`` of the live runs on the
    batch (use ``batch.take`` on every per-run data tensor).  ``eval_fn`` (default ``loss_fn``)
    gives the full-batch training loss used by the stop rules.  ``record(params, runs)`` may return
    a dict of per-run tensors ``[R', ...]`` stored every ``record_every`` epochs (and at epoch 0)
    in ``result.history`` as ``[T, R, ...]``, NaN for runs that had stopped.
    """
    R = _check_params(params)
    names = list(params)
    trainable = list(names if trainable is None else trainable)
    if not trainable:
        raise ValueError("trainable must name at least one parameter")
    for n in trainable:
        if n not in params:
            raise ValueError(f"trainable names {n!r}, which is not in params (have: {', '.join(names)})")
        if not params[n].is_floating_point():
            raise ValueError(f"trainable parameter {n!r} must be a floating tensor")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r} is not supported; allowed values: {', '.join(OPTIMIZERS)}")
    if not isinstance(stop, StopRule):
        raise ValueError("stop must be a StopRule, e.g. StopRule(max_epochs=1000, loss_below=0.0)")
    if not isinstance(record_every, int) or record_every < 1:
        raise ValueError(f"record_every must be an integer >= 1, got {record_every!r}")
    b1, b2 = adam_betas
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise ValueError(f"adam_betas must lie in [0, 1), got {adam_betas!r}")
    if not adam_eps > 0:
        raise ValueError(f"adam_eps must be > 0, got {adam_eps!r}")

    minibatch = False
    if optimizer == "gd":
        if batch_size is not None:
            raise ValueError("batch_size is only for optimizer='sgd' or 'adam'; 'gd' is full batch")
    elif optimizer == "sgd" or batch_size is not None:
        if n_train is None or int(n_train) < 1:
            raise ValueError(f"n_train must be the number of training examples per run (>= 1), got {n_train!r}")
        n_train = int(n_train)
        if batch_size is None or not (1 <= int(batch_size) <= n_train):
            raise ValueError(f"batch_size must be an integer in [1, n_train={n_train}], got {batch_size!r}")
        batch_size = int(batch_size)
        minibatch = batch_size < n_train
        if minibatch:
            if shuffle_seeds is None:
                raise ValueError("shuffle_seeds (one integer per run) is required for minibatch training")
            shuffle_seeds = torch.as_tensor(shuffle_seeds, dtype=torch.int64).reshape(-1)
            if shuffle_seeds.numel() != R:
                raise ValueError(f"shuffle_seeds must have one entry per run (R={R}), got {shuffle_seeds.numel()}")

    first = params[trainable[0]]
    dev = first.device
    lr_all = _check_lr(lr, R, first)
    if progress is None:
        progress = os.environ.get("CNNBIAS_PROGRESS", "") == "1"

    out = {n: p.detach().clone() for n, p in params.items()}
    cur = {n: p.detach().clone() for n, p in params.items()}
    for n in trainable:
        cur[n].requires_grad_(True)
    live = torch.arange(R, device=dev)
    lr_live = lr_all
    seeds_live = shuffle_seeds.to(dev) if minibatch else None
    adam_m = {n: torch.zeros_like(cur[n]) for n in trainable} if optimizer == "adam" else {}
    adam_v = {n: torch.zeros_like(cur[n]) for n in trainable} if optimizer == "adam" else {}
    adam_t = 0

    epochs = torch.zeros(R, dtype=torch.int64)
    final_loss = torch.full((R,), float("nan"), dtype=first.dtype)
    reason = ["max_epochs"] * R
    best = torch.full((R,), float("inf"), dtype=first.dtype, device=dev)
    since_best = torch.zeros(R, dtype=torch.int64, device=dev)
    cache: dict = {}
    evaluate = eval_fn or loss_fn
    history: dict[str, list[torch.Tensor]] = {}
    history_epochs: list[int] = []

    def do_record(epoch: int) -> None:
        with torch.no_grad():
            vals = record({n: t.detach() for n, t in cur.items()}, live)
        for key, v in vals.items():
            v = torch.as_tensor(v)
            if v.shape[0] != live.numel():
                raise ValueError(f"record()[{key!r}] must have one row per live run ({live.numel()}), got {tuple(v.shape)}")
            full = torch.full((R,) + tuple(v.shape[1:]), float("nan"), dtype=v.dtype if v.is_floating_point() else torch.float64)
            full[live.cpu()] = v.detach().cpu().to(full.dtype)
            history.setdefault(key, []).append(full)
        history_epochs.append(epoch)

    if record is not None:
        do_record(0)

    steps_per_epoch = math.ceil(n_train / batch_size) if minibatch else 1
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=stop.max_epochs, desc="train", leave=False)

    for epoch in range(1, stop.max_epochs + 1):
        perm = permutations(seeds_live, epoch, n_train) if minibatch else None
        for s in range(steps_per_epoch):
            idx = perm[:, s * batch_size : (s + 1) * batch_size] if minibatch else None
            batch = Batch(live, idx, R, cache)
            loss = loss_fn(cur, batch)
            if loss.shape != (live.numel(),):
                raise ValueError(
                    f"loss_fn must return one loss per live run, shape ({live.numel()},); got {tuple(loss.shape)}"
                )
            grads = torch.autograd.grad(loss.sum(), [cur[n] for n in trainable])
            with torch.no_grad():
                if optimizer == "adam":
                    adam_t += 1
                    c1, c2 = 1 - b1**adam_t, 1 - b2**adam_t
                for n, g in zip(trainable, grads):
                    p = cur[n]
                    step_lr = _bcast(lr_live, p)
                    if optimizer == "adam":
                        adam_m[n].mul_(b1).add_(g, alpha=1 - b1)
                        adam_v[n].mul_(b2).addcmul_(g, g, value=1 - b2)
                        p.sub_(step_lr * (adam_m[n] / c1) / ((adam_v[n] / c2).sqrt() + adam_eps))
                    else:
                        p.sub_(step_lr * g)
        epochs[live.cpu()] += 1
        if record is not None and epoch % record_every == 0:
            do_record(epoch)
        if bar is not None:
            bar.update(1)

        if epoch % stop.check_every != 0 and epoch != stop.max_epochs:
            continue
        with torch.no_grad():
            L = evaluate(cur, Batch(live, None, R, cache)).detach()
        if L.shape != (live.numel(),):
            raise ValueError(f"eval_fn must return one loss per live run, shape ({live.numel()},); got {tuple(L.shape)}")
        done = torch.zeros(live.numel(), dtype=torch.bool, device=dev)
        why = [None] * live.numel()
        if stop.loss_below is not None:
            hit = L <= stop.loss_below
            done |= hit
            for i in torch.nonzero(hit).flatten().tolist():
                why[i] = "loss_below"
        if stop.patience is not None:
            improved = L < best[live] - stop.min_delta
            best[live] = torch.where(improved, L, best[live])
            since_best[live] = torch.where(improved, torch.zeros_like(since_best[live]), since_best[live] + 1)
            hit = (since_best[live] >= stop.patience) & ~done
            done |= hit
            for i in torch.nonzero(hit).flatten().tolist():
                why[i] = "patience"
        if epoch == stop.max_epochs:
            done[:] = True
        if not bool(done.any()):
            continue
        fin = live[done].cpu()
        final_loss[fin] = L[done].cpu().to(final_loss.dtype)
        for i, r in zip(torch.nonzero(done).flatten().tolist(), fin.tolist()):
            reason[r] = why[i] or "max_epochs"
        for n in names:
            out[n][live[done]] = cur[n].detach()[done]
        keep = ~done
        live = live[keep]
        if live.numel() == 0:
            break
        cache.clear()
        for n in names:
            t = cur[n].detach()[keep]
            cur[n] = t.requires_grad_(True) if n in trainable else t
        for st in (adam_m, adam_v):
            for n in st:
                st[n] = st[n][keep]
        lr_live = lr_live[keep]
        if minibatch:
            seeds_live = seeds_live[keep]
    if bar is not None:
        bar.close()
    hist = {k: torch.stack(v) for k, v in history.items()}
    return TrainResult(out, epochs, final_loss, reason, hist, history_epochs)
