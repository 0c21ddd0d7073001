"""Position tasks of the two-layer convolutional linear classifier paper :cite:`gd_conv_linear`.

Every input of these tasks is a sum of at most two signed one-hot vectors in R^d, so a dataset is stored
sparsely: ``pos`` [N, 2] (0-based positions) and ``val`` [N, 2] (coefficients; 0 marks an unused slot),
with ``x = sum_s val[s] * e_{pos[s]}``.  ``dense()`` gives the matrix X [N, d].

Tasks (Section 1 of the paper; positions below are 1-based as in the paper):

* Task-Cls (2d points): x = +e_l -> y = +1 (object A), x = -e_l -> y = -1 (object B).
* Task-1stCtrl (d points): x = e_l, y = -1 if l <= d/2 (object on the left half), else +1.
* Task-3rdCtrl (d(d-1) points): x = e_a - e_b (target A = +1 at a, arm B = -1 at b, a != b);
  y = -1 if A is left of B (a < b), +1 if a > b.
* Even/odd (App. G, d points): x = e_l, y = +1 if l is odd, -1 if l is even.

Training sets are drawn uniformly from the whole dataset WITH replacement (Section 2.1); evaluation is on
the whole dataset (uniform distribution), ties counted 1/2 (Eq. 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from cnnbias import validate as V

TASKS = ("cls", "1stctrl", "3rdctrl", "evenodd")
TASK_TITLES = {
    "cls": "Task-Cls",
    "1stctrl": "Task-1stCtrl",
    "3rdctrl": "Task-3rdCtrl",
    "evenodd": "Even/odd (App. G)",
}


@dataclass(frozen=True)
class PositionTask:
    """A whole finite dataset of a position task, stored sparsely (see module docstring)."""

    name: str
    d: int
    pos: Tensor  # LongTensor [N, 2], 0-based
    val: Tensor  # float64 [N, 2]
    y: Tensor  # float64 [N] in {+1, -1}

    @property
    def N(self) -> int:
        return int(self.y.shape[0])

    def dense(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """X [N, d] with X[i] = sum_s val[i, s] e_{pos[i, s]}."""
        X = torch.zeros(self.N, self.d, dtype=dtype)
        X.scatter_add_(1, self.pos, self.val.to(dtype))
        return X

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> PositionTask:
        dt = dtype or self.val.dtype
        return PositionTask(
            self.name, self.d, self.pos.to(device), self.val.to(device, dt), self.y.to(device, dt)
        )


def _check_d(d: int, minimum: int = 2) -> None:
    if isinstance(d, bool) or not isinstance(d, int) or d < minimum:
        raise ValueError(f"d must be an integer >= {minimum}, got {d!r}")


def check_task(task: PositionTask, name: str = "task") -> PositionTask:
    """``task`` must be a :class:`PositionTask` (a ValueError/TypeError naming the argument otherwise)."""
    if not isinstance(task, PositionTask):
        raise TypeError(f"{name} must be a PositionTask (see make_task), got {type(task).__name__}")
    # Any name: a PositionTask may be built by hand (e.g. the example of App. I in the limit-directions chapter).
    return task


def check_training_set(task: PositionTask, idx: Tensor, mask: Tensor | None = None) -> None:
    """``idx`` [R, n] integer indices into the task's N examples; ``mask`` None or [R, n] of 0/1 with at
    least one example per run.  O(R n): call at the API boundary."""
    check_task(task)
    V.tensor("idx", idx, 2)
    V.index_in_range("idx", idx, task.N)
    if mask is not None:
        V.tensor("mask", mask, shape=tuple(idx.shape))
        if mask.numel() and not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask must hold only 0 (padding) and 1 (a real example)")
        if mask.numel() and not bool((mask.sum(-1) > 0).all()):
            raise ValueError("mask must keep at least one example in every run (a row of zeros has no mean)")
    elif idx.shape[1] == 0:
        raise ValueError("idx must hold at least one example per run (shape [R, n] with n >= 1)")


def task_cls(d: int) -> PositionTask:
    """Task-Cls: 2d points, +e_l -> +1 and -e_l -> -1 (rows 0..d-1 positive, d..2d-1 negative)."""
    _check_d(d, 1)
    l = torch.arange(d)
    pos = torch.stack([torch.cat([l, l]), torch.zeros(2 * d, dtype=torch.long)], 1)
    s = torch.cat([torch.ones(d), -torch.ones(d)]).double()
    val = torch.stack([s, torch.zeros(2 * d, dtype=torch.float64)], 1)
    return PositionTask("cls", d, pos, val, s.clone())


def task_1st_ctrl(d: int) -> PositionTask:
    """Task-1stCtrl: d points e_l; y = -1 if l <= d/2 (1-based), else +1."""
    _check_d(d)
    l = torch.arange(d)
    pos = torch.stack([l, torch.zeros(d, dtype=torch.long)], 1)
    val = torch.stack([torch.ones(d), torch.zeros(d)], 1).double()
    y = torch.where((l + 1) <= d / 2, -1.0, 1.0).double()
    return PositionTask("1stctrl", d, pos, val, y)


def task_3rd_ctrl(d: int) -> PositionTask:
    """Task-3rdCtrl: d(d-1) points e_a - e_b (a != b); y = +1 if a > b (A right of B), else -1."""
    _check_d(d)
    a, b = torch.meshgrid(torch.arange(d), torch.arange(d), indexing="ij")
    keep = a != b
    a, b = a[keep], b[keep]
    pos = torch.stack([a, b], 1)
    n = a.numel()
    val = torch.stack([torch.ones(n), -torch.ones(n)], 1).double()
    y = torch.where(a > b, 1.0, -1.0).double()
    return PositionTask("3rdctrl", d, pos, val, y)


def task_even_odd(d: int) -> PositionTask:
    """Even/odd task of App. G: d points e_l; y = +1 if l (1-based) is odd, -1 if even."""
    _check_d(d)
    l = torch.arange(d)
    pos = torch.stack([l, torch.zeros(d, dtype=torch.long)], 1)
    val = torch.stack([torch.ones(d), torch.zeros(d)], 1).double()
    y = torch.where((l + 1) % 2 == 1, 1.0, -1.0).double()
    return PositionTask("evenodd", d, pos, val, y)


def make_task(name: str, d: int) -> PositionTask:
    """Build a task by name: one of ``TASKS`` = ('cls', '1stctrl', '3rdctrl', 'evenodd')."""
    if not isinstance(name, str):
        raise ValueError(f"name must be one of {TASKS}, got {name!r}")
    makers = {
        "cls": task_cls,
        "1stctrl": task_1st_ctrl,
        "3rdctrl": task_3rd_ctrl,
        "evenodd": task_even_odd,
    }
    if name not in makers:
        raise ValueError(f"name must be one of {TASKS}, got {name!r}")
    return makers[name](d)


def separator(task: PositionTask) -> Tensor:
    """A w in R^d with y = sign(w^T x) on the whole dataset (the tasks are separable without bias)."""
    check_task(task)
    l = torch.arange(task.d, dtype=torch.float64)
    if task.name == "cls":
        return torch.ones(task.d, dtype=torch.float64)
    if task.name == "1stctrl":
        return torch.where(l + 1 <= task.d / 2, -1.0, 1.0).double()
    if task.name == "3rdctrl":
        return l + 1.0
    if task.name == "evenodd":
        return torch.where((l + 1) % 2 == 1, 1.0, -1.0).double()
    raise ValueError(f"task.name must be one of {TASKS}, got {task.name!r}")


def sample_indices(N: int, n: int, generator: torch.Generator) -> Tensor:
    """n indices drawn uniformly from {0..N-1} with replacement (a training set D_tr ~ D, Section 2.1)."""
    V.integer("N", N, 1)
    V.integer("n", n, 1)
    V.generator("generator", generator)
    return torch.randint(0, N, (n,), generator=generator)


def sample_training_sets(
    N: int, sizes: Sequence[int], generators: Sequence[torch.Generator]
) -> tuple[Tensor, Tensor]:
    """One training set per run, run r of size sizes[r], from generators[r].

    Returns ``idx`` LongTensor [R, n_max] (padded with index 0) and ``mask`` float64 [R, n_max] (1 for a real
    example, 0 for padding), so that a per-run mean is ``(mask * loss).sum(-1) / mask.sum(-1)``.
    """
    if len(sizes) != len(generators):
        raise ValueError(
            f"sizes and generators must have the same length, got {len(sizes)} and {len(generators)}"
        )
    if len(sizes) == 0:
        raise ValueError("sizes must be non-empty")
    for s in sizes:
        V.integer("sizes[i]", s, 1)
    n_max = max(int(s) for s in sizes)
    idx = torch.zeros(len(sizes), n_max, dtype=torch.long)
    mask = torch.zeros(len(sizes), n_max, dtype=torch.float64)
    for r, (n, g) in enumerate(zip(sizes, generators)):
        idx[r, :n] = sample_indices(N, int(n), g)
        mask[r, :n] = 1.0
    return idx, mask


def mean_yx(task: PositionTask, idx: Tensor, mask: Tensor | None = None) -> Tensor:
    """The (masked) training mean of y * x for each run: [R, d]. M_tr = A_{mean_yx} (Section 3.1)."""
    check_training_set(task, idx, mask)
    R, n = idx.shape
    if mask is None:
        mask = torch.ones(R, n, dtype=task.val.dtype, device=idx.device)
    w = (mask / mask.sum(-1, keepdim=True)).to(task.val.dtype)  # [R, n]
    coef = task.val[idx] * (task.y[idx] * w)[..., None]  # [R, n, 2]
    out = torch.zeros(R, task.d, dtype=task.val.dtype, device=idx.device)
    out.scatter_add_(1, task.pos[idx].reshape(R, -1), coef.reshape(R, -1))
    return out


def occupied_positions(task: PositionTask, idx: Tensor, mask: Tensor | None = None) -> Tensor:
    """Bool [R, d]: positions l that carry a non-zero entry in some training input (S_tr, Section 3.3.1)."""
    check_training_set(task, idx, mask)
    R, n = idx.shape
    if mask is None:
        mask = torch.ones(R, n, dtype=task.val.dtype)
    live = (task.val[idx] != 0) & (mask[..., None] > 0)  # [R, n, 2]
    flat = task.pos[idx].reshape(R, -1)
    occ_f = torch.zeros(R, task.d, dtype=torch.float64, device=idx.device)
    occ_f.scatter_add_(1, flat, live.reshape(R, -1).double())
    return occ_f > 0
