"""Train R independent runs as one batched tensor program.

Every figure of the papers averages tens to thousands of independent trainings.  Here they train
together: each parameter carries a leading *run axis* (``W: [R, k, d]``), each run has its own
training set (``X: [R, m, ...]``), and the loss function returns one loss per run.  Because run
``r``'s loss depends only on run ``r``'s parameters and data,

    grad_{theta_r} sum_s L_s(theta_s) = grad_{theta_r} L_r(theta_r),

so one backward pass through the sum gives every run its own gradient.

Layers of :func:`train` (each small and tested on its own):

- :class:`Plan`: every argument validated up front into one frozen dataclass (errors name the
  argument and its allowed values);
- optimizers that own their per-run state (:class:`GD`, :class:`SGD`, :class:`Adam`):
  ``gd`` full-batch gradient descent ``theta <- theta - eta grad L(theta)``; ``sgd`` minibatch SGD,
  each epoch a fresh per-run random permutation of the run's ``n_train`` examples in batches of
  ``batch_size`` (the last batch may be smaller); ``adam`` Adam (Kingma & Ba, 2014), full batch or
  minibatch;
- the run state (live runs, frozen results, stop bookkeeping) and a :class:`History` recorder.

Stop rules (:class:`StopRule`) are evaluated per run every ``check_every`` epochs on the full
training loss; a run that meets one is frozen and dropped from the computation, so finished runs
cost nothing.  A run whose loss or parameters become non-finite is *diverged*: it is frozen with
``stop_reason == "diverged"`` and :func:`train` warns (or raises, ``on_diverge="raise"``) naming the
runs.  Minibatch order comes from a counter-based hash of ``(shuffle seed of run r, epoch)``, not
from a shared generator, so a run's trajectory does not depend on which other runs are batched
with it: training runs together or one by one gives the same parameters bit for bit
(``tests/test_engine.py``).

One epoch is one GD step for full-batch training.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

__all__ = [
    "StopRule",
    "Batch",
    "TrainResult",
    "Plan",
    "GD",
    "SGD",
    "Adam",
    "History",
    "train",
    "hinge",
    "logistic",
    "check_labels",
    "permutations",
    "LOSS_RTOL",
    "OPTIMIZERS",
    "STOP_REASONS",
    "CHUNK_BYTES",
]

OPTIMIZERS = ("gd", "sgd", "adam")
ON_DIVERGE = ("warn", "raise")
#: Why a run stopped (``TrainResult.stop_reason``).
STOP_REASONS = ("max_epochs", "loss_below", "patience", "diverged")

CHUNK_BYTES = 16 * 2**20
"""Full-batch GD trains the runs in chunks whose activations (the tensors one run's loss saves for
backward, times the runs in the chunk) stay under this many bytes, so that a chunk's forward and
backward run in cache (L2 1 MiB per core, L3 32 MiB shared on the 2-core EPYC it was measured on).
Measured with ``benchmarks/engine.py --chunks``: at R=1000, m=100 (80 MB per [R, m, C] tensor) 50-200
runs per chunk were 2x faster than one batch, 1-20 runs per chunk slower (per-op overhead); 16 MiB
gives 94 runs there and no chunking at the default R=100, m=12.  The results do not depend
on it (runs are independent; ``tests/test_engine.py`` checks chunked == one batch bit for bit)."""

LOSS_RTOL = 1e-10
"""Relative tolerance of the ``loss_below`` rule: a run stops once ``L <= loss_below * (1 + LOSS_RTOL)``.

A loss that reaches the threshold only up to its last bits (summation order differs between CPU
kernel paths) then stops at the same epoch on every CPU.  For ``loss_below = 0`` (zero hinge loss)
the test is exact, ``L <= 0``: a hinge loss is exactly 0 or at least one margin violation away."""


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


def check_labels(y: torch.Tensor, name: str = "y") -> torch.Tensor:
    """``y`` unchanged if every entry is +1 or -1 (the margin losses :func:`hinge`, :func:`logistic`
    take ``z = y f(x)`` and assume it); otherwise a ValueError naming ``name`` and the bad values."""
    if not isinstance(y, torch.Tensor):
        raise ValueError(f"{name} must be a tensor of labels in {{-1, +1}}, got {type(y).__name__}")
    bad = ~((y == 1) | (y == -1))
    if bool(bad.any()):
        vals = torch.unique(y[bad])[:5].tolist()
        raise ValueError(f"{name} must contain only labels +1 and -1 (margin losses); found {vals}")
    return y


@dataclass(frozen=True)
class StopRule:
    """When a run stops.

    - ``max_epochs``: at most this many epochs (GD steps for full batch);
    - ``loss_below``: stop once the full training loss is ``<= loss_below`` up to the relative
      tolerance :data:`LOSS_RTOL` (``0.0`` = zero hinge loss, exact);
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
        if self.loss_below is not None and not (self.loss_below >= 0 and math.isfinite(self.loss_below)):
            raise ValueError(f"StopRule.loss_below must be None or a finite number >= 0, got {self.loss_below!r}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            raise ValueError(f"StopRule.patience must be None or an integer >= 1, got {self.patience!r}")
        if not (self.min_delta >= 0):
            raise ValueError(f"StopRule.min_delta must be >= 0, got {self.min_delta!r}")
        if not isinstance(self.check_every, int) or self.check_every < 1:
            raise ValueError(f"StopRule.check_every must be an integer >= 1, got {self.check_every!r}")

    def reached_loss(self, L: torch.Tensor) -> torch.Tensor:
        """Bool per run: ``L <= loss_below * (1 + LOSS_RTOL)`` (all False without a ``loss_below``)."""
        if self.loss_below is None:
            return torch.zeros(L.shape, dtype=torch.bool, device=L.device)
        return L <= self.loss_below * (1.0 + LOSS_RTOL)

    def due(self, epoch: int) -> bool:
        """Whether the rules are evaluated after ``epoch`` epochs."""
        return epoch > 0 and (epoch % self.check_every == 0 or epoch == self.max_epochs)


class Batch:
    """Which runs are live and which examples each sees in this step.

    ``runs``: LongTensor ``[R']`` of the live runs' indices in the original run axis.
    ``idx``: LongTensor ``[R', B]`` of example indices per live run, or ``None`` for the full batch.
    ``n_train``: the number of examples per run (minibatches only): :meth:`take` checks that a data
    tensor has exactly that many on its example axis, so a larger data set is never silently
    subsampled.  :meth:`take` applies runs and examples to a per-run data tensor ``t: [R, m, ...]``.
    """

    def __init__(
        self,
        runs: torch.Tensor,
        idx: torch.Tensor | None,
        n_runs: int,
        cache: dict | None = None,
        n_train: int | None = None,
    ):
        self.runs = runs
        self.idx = idx
        self.n_runs = n_runs
        self.n_train = n_train
        self._cache = cache if cache is not None else {}
        self.all_runs = runs.numel() == n_runs

    @property
    def full(self) -> bool:
        """True when every example of every live run is in the batch."""
        return self.idx is None

    def take(self, t: torch.Tensor) -> torch.Tensor:
        """Rows of ``t`` (leading run axis of size R) for the live runs and this batch's examples."""
        if t.shape[0] != self.n_runs:
            raise ValueError(f"Batch.take: data tensor has leading run axis {t.shape[0]}, expected R={self.n_runs}")
        if self.idx is not None and self.n_train is not None and (t.dim() < 2 or t.shape[1] != self.n_train):
            raise ValueError(
                f"Batch.take: minibatch training with n_train={self.n_train} needs data with exactly n_train "
                f"examples on axis 1, got shape {tuple(t.shape)} (pass the subset you mean to train on)"
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
    """Outcome of :func:`train`; every tensor has the original run order on its leading axis.

    ``stop_reason[r]`` is one of :data:`STOP_REASONS`; a ``"diverged"`` run's ``params`` and
    ``final_loss`` are those at the epoch its loss or parameters became non-finite."""

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

    @property
    def diverged(self) -> torch.Tensor:
        """Bool ``[R]``: runs whose loss or parameters became non-finite."""
        return torch.tensor([r == "diverged" for r in self.stop_reason])


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


# --- the plan: every argument validated up front ---------------------------------------------------


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


@dataclass(frozen=True)
class Plan:
    """A validated training plan: what :func:`train` does, decided before the first step.

    Build it with :meth:`Plan.build` (which raises a ValueError naming the argument and its allowed
    values); ``minibatch`` is True when each epoch takes ``steps_per_epoch`` steps on batches of
    ``batch_size`` of the ``n_train`` examples; ``fused`` when the loss of each full-batch step also
    serves the stop rules (no separate ``eval_fn``)."""

    R: int
    names: tuple[str, ...]
    trainable: tuple[str, ...]
    optimizer: str
    lr: torch.Tensor
    stop: StopRule
    minibatch: bool
    n_train: int | None
    batch_size: int | None
    steps_per_epoch: int
    shuffle_seeds: torch.Tensor | None
    fused: bool
    record_every: int
    adam_betas: tuple[float, float]
    adam_eps: float
    on_diverge: str
    progress: bool
    chunk_runs: int | None

    @classmethod
    def build(
        cls,
        params: Mapping[str, torch.Tensor],
        *,
        lr,
        stop,
        trainable=None,
        optimizer="gd",
        n_train=None,
        batch_size=None,
        shuffle_seeds=None,
        has_eval_fn=False,
        record_every=1,
        adam_betas=(0.9, 0.999),
        adam_eps=1e-8,
        on_diverge="warn",
        progress=None,
        chunk_runs=None,
    ) -> Plan:
        """Validate the arguments (a ValueError names the argument and its allowed values) and
        decide the plan."""
        R = _check_params(params)
        names = tuple(params)
        trainable = tuple(names if trainable is None else trainable)
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
        try:
            b1, b2 = (float(b) for b in adam_betas)
        except (TypeError, ValueError):
            raise ValueError(f"adam_betas must be a pair of numbers in [0, 1), got {adam_betas!r}") from None
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"adam_betas must lie in [0, 1), got {adam_betas!r}")
        if not adam_eps > 0:
            raise ValueError(f"adam_eps must be > 0, got {adam_eps!r}")
        if chunk_runs is not None and (
            isinstance(chunk_runs, bool) or not isinstance(chunk_runs, int) or chunk_runs < 1
        ):
            raise ValueError(f"chunk_runs must be None (automatic) or an integer >= 1, got {chunk_runs!r}")
        if on_diverge not in ON_DIVERGE:
            raise ValueError(f"on_diverge={on_diverge!r} is not supported; allowed values: {', '.join(ON_DIVERGE)}")

        minibatch, seeds = False, None
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
                seeds = torch.as_tensor(shuffle_seeds, dtype=torch.int64).reshape(-1)
                if seeds.numel() != R:
                    raise ValueError(f"shuffle_seeds must have one entry per run (R={R}), got {seeds.numel()}")
                seeds = seeds.to(params[trainable[0]].device)
        for n in trainable:
            if not bool(torch.isfinite(params[n]).all()):
                raise ValueError(f"params[{n!r}] must be finite at the start (it holds NaN or inf)")
        lr_all = _check_lr(lr, R, params[trainable[0]])
        if progress is None:
            progress = os.environ.get("CNNBIAS_PROGRESS", "") == "1"
        return cls(
            R=R,
            names=names,
            trainable=trainable,
            optimizer=optimizer,
            lr=lr_all,
            stop=stop,
            minibatch=minibatch,
            n_train=n_train if minibatch else None,
            batch_size=batch_size if minibatch else None,
            steps_per_epoch=math.ceil(n_train / batch_size) if minibatch else 1,
            shuffle_seeds=seeds,
            fused=not minibatch and not has_eval_fn,
            record_every=record_every,
            adam_betas=(b1, b2),
            adam_eps=float(adam_eps),
            on_diverge=on_diverge,
            progress=bool(progress),
            chunk_runs=chunk_runs,
        )


# --- optimizers: each owns its per-run state ------------------------------------------------------


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape((-1,) + (1,) * (like.dim() - 1))


class GD:
    """``theta_r <- theta_r - eta_r g_r`` with a per-run step size ``lr [R]``."""

    def __init__(self, params: Mapping[str, torch.Tensor], lr: torch.Tensor):
        self.lr = lr

    @torch.no_grad()
    def step(self, params: Mapping[str, torch.Tensor], grads: Mapping[str, torch.Tensor], sl: slice | None = None):
        """One update of ``params`` (the live runs, or the slice ``sl`` of them) by ``grads``."""
        lr = self.lr if sl is None else self.lr[sl]
        for n, g in grads.items():
            p = params[n]
            if g.is_contiguous():  # eta * g formed in place in the gradient: the same rounding, no temporary
                p.sub_(g.mul_(_bcast(lr, p)))
            else:  # e.g. an expanded gradient of a sum
                p.sub_(_bcast(lr, p) * g)

    def compact(self, keep: torch.Tensor) -> None:
        """Keep only the runs in the bool mask ``keep`` (finished runs are dropped)."""
        self.lr = self.lr[keep]


class SGD(GD):
    """Minibatch SGD: the GD update applied to each minibatch gradient (the batches come from
    :func:`permutations` in :func:`train`)."""


class Adam(GD):
    """Adam (Kingma & Ba, 2014) per run: ``m <- b1 m + (1-b1) g``, ``v <- b2 v + (1-b2) g^2``,
    ``theta <- theta - eta (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)``."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        self.betas, self.eps, self.t = betas, eps, 0
        self.m = {n: torch.zeros_like(p) for n, p in params.items()}
        self.v = {n: torch.zeros_like(p) for n, p in params.items()}

    @torch.no_grad()
    def step(self, params, grads, sl: slice | None = None) -> None:
        if sl is not None:
            raise ValueError("Adam steps all live runs at once (its step counter is shared); sl must be None")
        b1, b2 = self.betas
        self.t += 1
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for n, g in grads.items():
            p = params[n]
            self.m[n].mul_(b1).add_(g, alpha=1 - b1)
            self.v[n].mul_(b2).addcmul_(g, g, value=1 - b2)
            p.sub_(_bcast(self.lr, p) * (self.m[n] / c1) / ((self.v[n] / c2).sqrt() + self.eps))

    def compact(self, keep: torch.Tensor) -> None:
        super().compact(keep)
        for st in (self.m, self.v):
            for n in st:
                st[n] = st[n][keep]


def _make_optimizer(plan: Plan, params: Mapping[str, torch.Tensor]) -> GD:
    live = {n: params[n] for n in plan.trainable}
    if plan.optimizer == "adam":
        return Adam(live, plan.lr, plan.adam_betas, plan.adam_eps)
    return (SGD if plan.optimizer == "sgd" else GD)(live, plan.lr)


# --- history --------------------------------------------------------------------------------------


class History:
    """Per-run values of ``record(params, runs)`` every ``every`` epochs (and at epoch 0), stored as
    ``[T, R, ...]`` with NaN for runs that had stopped."""

    def __init__(self, record: Callable | None, every: int, R: int):
        self.record, self.every, self.R = record, every, R
        self.values: dict[str, list[torch.Tensor]] = {}
        self.epochs: list[int] = []

    def __call__(self, epoch: int, params: Mapping[str, torch.Tensor], live: torch.Tensor) -> None:
        if self.record is None or epoch % self.every:
            return
        with torch.no_grad():
            vals = self.record({n: t.detach() for n, t in params.items()}, live)
        for key, v in vals.items():
            v = torch.as_tensor(v)
            if v.dim() < 1 or v.shape[0] != live.numel():
                raise ValueError(
                    f"record()[{key!r}] must have one row per live run ({live.numel()}), got {tuple(v.shape)}"
                )
            dt = v.dtype if v.is_floating_point() else torch.float64
            full = torch.full((self.R,) + tuple(v.shape[1:]), float("nan"), dtype=dt)
            full[live.cpu()] = v.detach().cpu().to(dt)
            self.values.setdefault(key, []).append(full)
        self.epochs.append(epoch)

    def result(self) -> tuple[dict[str, torch.Tensor], list[int]]:
        return {k: torch.stack(v) for k, v in self.values.items()}, self.epochs


# --- run state ------------------------------------------------------------------------------------


class _Runs:
    """The live runs' parameters, the frozen results of finished runs, and stop bookkeeping."""

    def __init__(self, params: Mapping[str, torch.Tensor], plan: Plan):
        self.plan = plan
        self.out = {n: p.detach().clone() for n, p in params.items()}
        self.cur = {n: p.detach().clone() for n, p in params.items()}
        for n in plan.trainable:
            self.cur[n].requires_grad_(True)
        first = self.cur[plan.trainable[0]]
        dev, dt = first.device, first.dtype
        self.live = torch.arange(plan.R, device=dev)
        self.seeds = plan.shuffle_seeds
        self.epochs = torch.zeros(plan.R, dtype=torch.int64)
        self.final_loss = torch.full((plan.R,), float("nan"), dtype=dt)
        self.reason = ["max_epochs"] * plan.R
        self.best = torch.full((plan.R,), float("inf"), dtype=dt, device=dev)
        self.since_best = torch.zeros(plan.R, dtype=torch.int64, device=dev)
        self.cache: dict = {}
        self.chunk_caches: dict[int, dict] = {}

    def batch(self, idx: torch.Tensor | None = None) -> Batch:
        return Batch(self.live, idx, self.plan.R, self.cache, self.plan.n_train)

    def grads(self, total: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.autograd.grad(total, [self.cur[n] for n in self.plan.trainable]))

    def check(self, epoch: int, L: torch.Tensor, due: bool = True, sl: slice | None = None) -> torch.Tensor | None:
        """Apply the stop rules (if ``due``) and the divergence test (always: a non-finite loss) to the
        live runs (or the slice ``sl`` of them) after ``epoch`` epochs.  Returns the keep mask, or
        None when every run goes on.  Finished runs' results are written out; a finished run whose
        parameters are not all finite is reported as diverged whatever rule stopped it."""
        stop = self.plan.stop
        # only max_epochs can stop a finite run before the last epoch without these rules
        rules = stop.loss_below is not None or stop.patience is not None or epoch >= stop.max_epochs
        if not (due and rules) and math.isfinite(float(L.sum())):
            return None  # fast path (one reduction, one sync): every loss finite, no rule to apply
        live = self.live if sl is None else self.live[sl]
        bad = ~torch.isfinite(L)
        due = due and rules
        if not due and not bool(bad.any()):
            return None
        done = bad.clone()
        why = torch.where(bad, 3, 0)  # index into STOP_REASONS
        if due:
            if stop.loss_below is not None:
                hit = stop.reached_loss(L) & ~done
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
        cur = {n: self.cur[n].detach() if sl is None else self.cur[n].detach()[sl] for n in self.plan.names}
        for n in self.plan.trainable:  # parameters gone non-finite although the loss is finite
            why[done & ~torch.isfinite(cur[n].reshape(len(live), -1)).all(1)] = 3
        fin = live[done].cpu()
        self.final_loss[fin] = L[done].cpu().to(self.final_loss.dtype)
        self.epochs[fin] = epoch
        for r, w in zip(fin.tolist(), why[done].cpu().tolist()):
            self.reason[r] = STOP_REASONS[w]
        for n in self.plan.names:
            self.out[n][live[done]] = cur[n][done].to(self.out[n].dtype)
        return ~done

    def compact(self, keep: torch.Tensor, opt: GD) -> None:
        """Drop finished runs from the computation (and from the optimizer's state)."""
        self.live = self.live[keep]
        self.cache.clear()
        self.chunk_caches.clear()
        for n in self.plan.names:
            t = self.cur[n].detach()[keep]
            self.cur[n] = t.requires_grad_(True) if n in self.plan.trainable else t
        opt.compact(keep)
        if self.seeds is not None:
            self.seeds = self.seeds[keep]


def _check_loss(loss: torch.Tensor, live: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.shape != (live.numel(),):
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"{what} must return one loss per live run, shape ({live.numel()},); got {shape}")
    return loss


def _report_divergence(reasons: list[str], on_diverge: str) -> None:
    runs = [r for r, why in enumerate(reasons) if why == "diverged"]
    if not runs:
        return
    shown = ", ".join(map(str, runs[:20])) + (", ..." if len(runs) > 20 else "")
    msg = (
        f"train: {len(runs)} of {len(reasons)} runs diverged (non-finite loss or parameters): runs [{shown}]; "
        "their stop_reason is 'diverged' (lower the learning rate?)"
    )
    if on_diverge == "raise":
        raise FloatingPointError(msg)
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


# --- training -------------------------------------------------------------------------------------


def _fused_epoch(runs: _Runs, opt: GD, loss_fn, epoch: int, chunk: int) -> bool:
    """One full-batch step whose loss (the loss after ``epoch`` epochs) also feeds the stop rules,
    ``chunk`` live runs at a time (forward, stop check, backward and update per chunk, so that a
    chunk's activations stay in cache).  Runs are independent, so every run gets the same bits
    whatever the chunking.  Returns False when no run is left."""
    plan = runs.plan
    due = plan.stop.due(epoch)
    n_live = runs.live.numel()
    keeps = []
    for a in range(0, n_live, chunk):
        sl = slice(a, min(a + chunk, n_live))
        whole = sl.start == 0 and sl.stop == n_live
        leaves = {}
        for n in plan.names:
            t = runs.cur[n].detach()
            t = t if whole else t[sl]
            leaves[n] = t.requires_grad_(True) if n in plan.trainable else t
        cache = runs.chunk_caches.setdefault(a, {})
        batch = runs.batch() if whole else Batch(runs.live[sl], None, plan.R, cache, plan.n_train)
        loss = _check_loss(loss_fn(leaves, batch), batch.runs, "loss_fn")
        keep = runs.check(epoch, loss.detach(), due=due, sl=None if whole else sl)
        keeps.append(keep)
        if keep is not None:
            if not bool(keep.any()):
                continue
            loss = loss[keep]  # finished runs get no gradient; they are dropped below
        grads = torch.autograd.grad(loss.sum(), [leaves[n] for n in plan.trainable])
        opt.step(leaves, dict(zip(plan.trainable, grads)), sl=None if whole else sl)
    if all(k is None for k in keeps):
        return True
    keep = torch.cat(
        [
            torch.ones(min(chunk, n_live - i * chunk), dtype=torch.bool, device=runs.live.device) if k is None else k
            for i, k in enumerate(keeps)
        ]
    )
    if not bool(keep.any()):
        return False
    runs.compact(keep, opt)
    return True


def _chunk_size(runs: _Runs, opt: GD, loss_fn) -> int:
    """Runs per chunk of a fused full-batch step: ``plan.chunk_runs`` if given, else as many as keep
    the activations under :data:`CHUNK_BYTES`, measured by the bytes that one run's loss saves for
    backward (one extra forward pass of one run).  Adam steps all runs at once (shared counter)."""
    plan = runs.plan
    if isinstance(opt, Adam):
        return plan.R
    if plan.chunk_runs is not None:
        return plan.chunk_runs
    if plan.R == 1:
        return 1
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    leaves = {}
    for n in plan.names:
        t = runs.cur[n].detach()[:1]
        leaves[n] = t.requires_grad_(True) if n in plan.trainable else t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss_fn(leaves, Batch(runs.live[:1], None, plan.R, None, plan.n_train))
    return max(1, min(plan.R, CHUNK_BYTES // max(saved[0], 1)))


def _minibatch_epoch(runs: _Runs, opt: GD, loss_fn, epoch: int) -> None:
    """One epoch of steps over per-run shuffled minibatches (or one full-batch step)."""
    plan = runs.plan
    perm = permutations(runs.seeds, epoch + 1, plan.n_train) if plan.minibatch else None
    for s in range(plan.steps_per_epoch):
        idx = perm[:, s * plan.batch_size : (s + 1) * plan.batch_size] if plan.minibatch else None
        loss = _check_loss(loss_fn(runs.cur, runs.batch(idx)), runs.live, "loss_fn")
        opt.step(runs.cur, dict(zip(plan.trainable, runs.grads(loss.sum()))))


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
    on_diverge: str = "warn",
    chunk_runs: int | None = None,
) -> TrainResult:
    """Train the R runs in ``params`` until each meets ``stop``.

    ``loss_fn(params, batch)`` returns the per-run *mean* loss ``[R']`` of the live runs on the
    batch (use ``batch.take`` on every per-run data tensor; in minibatch training every such tensor
    must hold exactly ``n_train`` examples on axis 1).  ``eval_fn`` (default ``loss_fn``) gives the
    full-batch training loss used by the stop rules.  ``record(params, runs)`` may return a dict of
    per-run tensors ``[R', ...]`` stored every ``record_every`` epochs (and at epoch 0) in
    ``result.history`` as ``[T, R, ...]``, NaN for runs that had stopped.  A run whose loss or
    parameters become non-finite stops with reason ``"diverged"``; ``on_diverge`` ("warn" or
    "raise") says whether that is a RuntimeWarning or a FloatingPointError naming the runs.
    ``chunk_runs``: full-batch GD steps this many runs at a time (default: automatic, see
    :data:`CHUNK_BYTES`); the results are the same bits for any value.
    """
    plan = Plan.build(
        params,
        lr=lr,
        stop=stop,
        trainable=trainable,
        optimizer=optimizer,
        n_train=n_train,
        batch_size=batch_size,
        shuffle_seeds=shuffle_seeds,
        has_eval_fn=eval_fn is not None,
        record_every=record_every,
        adam_betas=adam_betas,
        adam_eps=adam_eps,
        on_diverge=on_diverge,
        progress=progress,
        chunk_runs=chunk_runs,
    )
    runs = _Runs(params, plan)
    opt = _make_optimizer(plan, runs.cur)
    history = History(record, plan.record_every, plan.R)
    evaluate = eval_fn or loss_fn
    history(0, runs.cur, runs.live)
    chunk = _chunk_size(runs, opt, loss_fn) if plan.fused else plan.R
    bar = None
    if plan.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=stop.max_epochs, desc="train", leave=False)

    epoch = 0
    while runs.live.numel() > 0:
        if plan.fused:
            if not _fused_epoch(runs, opt, loss_fn, epoch, chunk):
                break
        else:
            _minibatch_epoch(runs, opt, loss_fn, epoch)
        epoch += 1
        history(epoch, runs.cur, runs.live)
        if bar is not None:
            bar.update(1)
        if not plan.fused and stop.due(epoch):
            with torch.no_grad():
                L = _check_loss(evaluate(runs.cur, runs.batch()), runs.live, "eval_fn")
            keep = runs.check(epoch, L.detach())
            if keep is not None:
                runs.compact(keep, opt)
        elif plan.fused and epoch == stop.max_epochs:
            with torch.no_grad():
                L = _check_loss(loss_fn(runs.cur, runs.batch()), runs.live, "loss_fn")
            runs.check(epoch, L.detach())
            break
    if bar is not None:
        bar.close()
    _report_divergence(runs.reason, plan.on_diverge)
    hist, hist_epochs = history.result()
    return TrainResult(runs.out, runs.epochs, runs.final_loss, runs.reason, hist, hist_epochs)
