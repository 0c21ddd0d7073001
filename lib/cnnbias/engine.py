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
    """Binary cross-entropy (logistic) loss ``log(1 + exp(-z))`` of the margin ``z``, computed stably
    as ``relu(-z) + log1p(exp(-|z|))``.

    Not ``softplus(-z)``: torch's fused softplus backward rounds differently in its vectorized and
    scalar code paths, so a run's gradient changed in the last bit with the number of runs batched,
    and over thousands of steps a near-tie in a max-pool could amplify that to 1e-6.  This form's
    backward is plain elementwise arithmetic, identical for any batch size (tested).
    """
    return torch.relu(-z) + torch.log1p(torch.exp(-z.abs()))


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
    lr_all = _check_lr(lr, R, first)
    if progress is None:
        progress = os.environ.get("CNNBIAS_PROGRESS", "") == "1"

    state = _RunState(params, trainable, lr_all, shuffle_seeds if minibatch else None, optimizer, stop)
    state.betas, state.eps = (b1, b2), adam_eps
    evaluate = eval_fn or loss_fn
    history: dict[str, list[torch.Tensor]] = {}
    history_epochs: list[int] = []

    def do_record(epoch: int) -> None:
        with torch.no_grad():
            vals = record({n: t.detach() for n, t in state.cur.items()}, state.live)
        for key, v in vals.items():
            v = torch.as_tensor(v)
            if v.shape[0] != state.live.numel():
                raise ValueError(
                    f"record()[{key!r}] must have one row per live run ({state.live.numel()}), got {tuple(v.shape)}"
                )
            dt = v.dtype if v.is_floating_point() else torch.float64
            full = torch.full((R,) + tuple(v.shape[1:]), float("nan"), dtype=dt)
            full[state.live.cpu()] = v.detach().cpu().to(dt)
            history.setdefault(key, []).append(full)
        history_epochs.append(epoch)

    if record is not None:
        do_record(0)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=stop.max_epochs, desc="train", leave=False)

    def check_due(e: int) -> bool:
        return e > 0 and (e % stop.check_every == 0 or e == stop.max_epochs)

    # Full-batch training without a separate eval_fn reuses the loss of each step for the stop
    # rules: the loss computed at the start of epoch e+1 is the training loss after e epochs.
    fused = not minibatch and eval_fn is None
    steps_per_epoch = math.ceil(n_train / batch_size) if minibatch else 1
    epoch = 0
    while state.live.numel() > 0:
        if fused:
            batch = Batch(state.live, None, R, state.cache)
            loss = _check_loss(loss_fn(state.cur, batch), state.live, "loss_fn")
            if check_due(epoch):
                keep = state.check(epoch, loss.detach())
                if keep is not None:
                    if not bool(keep.any()):
                        break
                    grads = state.grads(loss[keep].sum())
                    state.compact(keep)
                    grads = [g[keep] for g in grads]
                else:
                    grads = state.grads(loss.sum())
            else:
                grads = state.grads(loss.sum())
            state.step(grads)
        else:
            perm = permutations(state.seeds, epoch + 1, n_train) if minibatch else None
            for s in range(steps_per_epoch):
                idx = perm[:, s * batch_size : (s + 1) * batch_size] if minibatch else None
                loss = _check_loss(loss_fn(state.cur, Batch(state.live, idx, R, state.cache)), state.live, "loss_fn")
                state.step(state.grads(loss.sum()))
        epoch += 1
        if record is not None and epoch % record_every == 0:
            do_record(epoch)
        if bar is not None:
            bar.update(1)
        if not fused and check_due(epoch):
            with torch.no_grad():
                L = _check_loss(evaluate(state.cur, Batch(state.live, None, R, state.cache)), state.live, "eval_fn")
            keep = state.check(epoch, L.detach())
            if keep is not None:
                state.compact(keep)
        elif fused and epoch == stop.max_epochs:
            with torch.no_grad():
                L = _check_loss(loss_fn(state.cur, Batch(state.live, None, R, state.cache)), state.live, "loss_fn")
            state.check(epoch, L.detach())
            break
    if bar is not None:
        bar.close()
    hist = {k: torch.stack(v) for k, v in history.items()}
    return TrainResult(state.out, state.epochs, state.final_loss, state.reason, hist, history_epochs)


def _check_loss(loss: torch.Tensor, live: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.shape != (live.numel(),):
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"{what} must return one loss per live run, shape ({live.numel()},); got {shape}")
    return loss


class _RunState:
    """The live runs' parameters and optimizer state, with stop bookkeeping and compaction."""

    def __init__(self, params, trainable, lr_all, seeds, optimizer, stop: StopRule):
        R = next(iter(params.values())).shape[0]
        self.R, self.trainable, self.optimizer, self.stop = R, list(trainable), optimizer, stop
        self.names = list(params)
        self.out = {n: p.detach().clone() for n, p in params.items()}
        self.cur = {n: p.detach().clone() for n, p in params.items()}
        for n in self.trainable:
            self.cur[n].requires_grad_(True)
        dev = self.cur[self.trainable[0]].device
        dt = self.cur[self.trainable[0]].dtype
        self.live = torch.arange(R, device=dev)
        self.lr = lr_all
        self.seeds = seeds.to(dev) if seeds is not None else None
        self.adam_m = {n: torch.zeros_like(self.cur[n]) for n in self.trainable} if optimizer == "adam" else {}
        self.adam_v = {n: torch.zeros_like(self.cur[n]) for n in self.trainable} if optimizer == "adam" else {}
        self.adam_t = 0
        self.epochs = torch.zeros(R, dtype=torch.int64)
        self.final_loss = torch.full((R,), float("nan"), dtype=dt)
        self.reason = ["max_epochs"] * R
        self.best = torch.full((R,), float("inf"), dtype=dt, device=dev)
        self.since_best = torch.zeros(R, dtype=torch.int64, device=dev)
        self.cache: dict = {}

    def grads(self, total: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.autograd.grad(total, [self.cur[n] for n in self.trainable]))

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        b1, b2 = self.betas
        if self.optimizer == "adam":
            self.adam_t += 1
            c1, c2 = 1 - b1**self.adam_t, 1 - b2**self.adam_t
        for n, g in zip(self.trainable, grads):
            p = self.cur[n]
            lr = _bcast(self.lr, p)
            if self.optimizer == "adam":
                self.adam_m[n].mul_(b1).add_(g, alpha=1 - b1)
                self.adam_v[n].mul_(b2).addcmul_(g, g, value=1 - b2)
                p.sub_(lr * (self.adam_m[n] / c1) / ((self.adam_v[n] / c2).sqrt() + self.eps))
            else:
                p.sub_(lr * g)

    def check(self, epoch: int, L: torch.Tensor) -> torch.Tensor | None:
        """Apply the stop rules to the live runs after ``epoch`` epochs.  Returns the keep mask, or
        None when every live run goes on.  Finished runs' results are written out."""
        stop, live = self.stop, self.live
        done = torch.zeros(live.numel(), dtype=torch.bool, device=live.device)
        why = torch.zeros(live.numel(), dtype=torch.int64, device=live.device)  # 0 max, 1 loss, 2 patience
        if stop.loss_below is not None:
            hit = L <= stop.loss_below
            done |= hit
            why[hit] = 1
        if stop.patience is not None:
            best = self.best[live]
            improved = L < best - stop.min_delta
            self.best[live] = torch.where(improved, L, best)
            since = torch.where(improved, torch.zeros_like(self.since_best[live]), self.since_best[live] + 1)
            self.since_best[live] = since
            hit = (since >= stop.patience) & ~done
            done |= hit
            why[hit] = 2
        if epoch >= stop.max_epochs:
            done[:] = True
        if not bool(done.any()):
            return None
        fin = live[done].cpu()
        self.final_loss[fin] = L[done].cpu().to(self.final_loss.dtype)
        self.epochs[fin] = epoch
        names = ("max_epochs", "loss_below", "patience")
        for r, w in zip(fin.tolist(), why[done].cpu().tolist()):
            self.reason[r] = names[w]
        for n in self.names:
            self.out[n][live[done]] = self.cur[n].detach()[done].to(self.out[n].dtype)
        return ~done

    def compact(self, keep: torch.Tensor) -> None:
        """Drop finished runs from the computation."""
        self.live = self.live[keep]
        self.cache.clear()
        for n in self.names:
            t = self.cur[n].detach()[keep]
            self.cur[n] = t.requires_grad_(True) if n in self.trainable else t
        for st in (self.adam_m, self.adam_v):
            for n in st:
                st[n] = st[n][keep]
        self.lr = self.lr[keep]
        if self.seeds is not None:
            self.seeds = self.seeds[keep]
