"""Data of the XOR detection problem (XORD) and of its extension OBD (:cite:`xord`, Sec. 3 and App. A.4).

Conventions (paper Sec. 5 / App. A.5): the four patterns of ``{+-1}^2`` are indexed 0..3 as

    x1 = (1, 1), x2 = (1, -1), x3 = (-1, -1), x4 = (-1, 1)          (index = paper index - 1)

so ``x3 = -x1`` and ``x4 = -x2``.  The positive patterns are ``P_XOR = {x1, x3}`` (indices 0, 2), the negative
patterns ``{x2, x4}`` (indices 1, 3).  An input ``x in {+-1}^(2d)`` is ``d`` patterns; we store a point as its index
array ``idx [d]`` (dense form: :func:`to_dense`, shape ``[d, 2]``).

Ground truth (Eq. 2): ``f*(x) = 1`` iff some ``x_i in P_XOR``.  Diverse points (Def. 3.2): a positive point is diverse
if it contains all four patterns, a negative point if it contains both negative patterns.

Because the network of Eq. 1 uses max-pooling over positions, its output depends on ``x`` only through the *pattern
set* ``P_x`` (App. C).  Distributions are therefore also described on the 15 non-empty pattern sets
(:data:`SUBSETS`), which gives exact test errors (see :func:`subset_distribution`).
"""

from __future__ import annotations

import math
from itertools import combinations

import torch
from torch import Tensor

from cnnbias import validate as V

POSITIVE = (0, 2)
NEGATIVE = (1, 3)

_PATTERNS = [[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0], [-1.0, 1.0]]


def patterns(dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Tensor:
    """The four patterns ``x1..x4`` of ``{+-1}^2`` as rows, ``[4, 2]`` (paper order, Sec. 5)."""
    return torch.tensor(_PATTERNS, dtype=dtype, device=device)


def _check_idx(idx: Tensor, name: str = "idx") -> None:
    """Pattern indices: an integer tensor ``[..., d]`` (d >= 1) with entries in 0..3.  O(size)."""
    V.tensor(name, idx, kind="int")
    if idx.dim() == 0 or idx.shape[-1] == 0:
        raise ValueError(f"{name} must have shape [..., d] with d >= 1, got {tuple(idx.shape)}")
    V.index_in_range(name, idx, 4)


def _check_label(label: int) -> None:
    if isinstance(label, bool) or label not in (1, -1):
        raise ValueError(f"label must be +1 or -1, got {label!r}")


def _check_d(d: int, minimum: int = 1) -> None:
    if isinstance(d, bool) or not isinstance(d, int) or d < minimum:
        raise ValueError(f"d must be an integer >= {minimum}, got {d!r}")


def _check_m(m: int) -> None:
    if isinstance(m, bool) or not isinstance(m, int) or m < 0:
        raise ValueError(f"m must be a non-negative integer, got {m!r}")


def to_dense(idx: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """Pattern indices ``[..., d]`` -> dense inputs ``[..., d, 2]`` (the ``x_i in {+-1}^2`` of Sec. 3)."""
    _check_idx(idx)
    return patterns(dtype, idx.device)[idx]


def from_dense(x: Tensor) -> Tensor:
    """Dense inputs ``[..., d, 2]`` with entries in {+-1} (or flat ``[..., 2d]``) -> pattern indices ``[..., d]``."""
    V.tensor("x", x)
    if x.dim() == 0 or x.shape[-1] == 0:
        raise ValueError(f"x must have shape [..., d, 2] or [..., 2d], got {tuple(x.shape)}")
    if x.shape[-1] != 2:
        if x.shape[-1] % 2:
            raise ValueError(f"x must have last dimension 2 or an even length 2d, got {tuple(x.shape)}")
        x = x.reshape(*x.shape[:-1], x.shape[-1] // 2, 2)
    if not bool(((x == 1) | (x == -1)).all()):
        raise ValueError("x must have entries in {+1, -1}")
    a, b = x[..., 0] > 0, x[..., 1] > 0
    # (1,1)->0, (1,-1)->1, (-1,-1)->2, (-1,1)->3
    return torch.where(a, torch.where(b, 0, 1), torch.where(b, 3, 2)).long()


def all_inputs(d: int) -> Tensor:
    """All ``4^d`` inputs of ``{+-1}^(2d)`` as index arrays ``[4^d, d]`` (enumeration; ``d <= 10``)."""
    _check_d(d)
    if d > 10:
        raise ValueError(f"d must be <= 10 for enumeration, got {d}")
    grids = torch.cartesian_prod(*[torch.arange(4)] * d) if d > 1 else torch.arange(4)[:, None]
    return grids.reshape(-1, d).long()


def pattern_set(idx: Tensor) -> Tensor:
    """Presence mask ``[..., 4]`` (bool): which of x1..x4 occur in the point (the set ``P_z`` of App. C)."""
    _check_idx(idx)
    return torch.nn.functional.one_hot(idx.long(), 4).amax(dim=-2).bool()


def fstar(idx: Tensor) -> Tensor:
    """Eq. 2: ``+1`` if some pattern is in ``P_XOR = {x1, x3}``, else ``-1``; ``[..., d] -> [...]`` (float64)."""
    s = pattern_set(idx)
    return torch.where(s[..., 0] | s[..., 2], 1.0, -1.0).double()


def is_diverse(idx: Tensor, y: Tensor | float | None = None) -> Tensor:
    """Def. 3.2: positive points need all four patterns, negative points both x2 and x4.

    ``y`` defaults to ``f*(idx)``.  Returns a bool tensor ``[...]``.
    """
    s = pattern_set(idx)
    if y is None:
        y = fstar(idx)
    elif isinstance(y, Tensor):
        V.labels_pm1("y", y)
        if y.dim() and tuple(y.shape) != tuple(s.shape[:-1]):
            raise ValueError(f"y must have shape {tuple(s.shape[:-1])} (one label per point), got {tuple(y.shape)}")
    elif isinstance(y, bool) or y not in (1, -1):
        raise ValueError(f"y must be a label +1 or -1 (or a tensor of them), got {y!r}")
    y = torch.as_tensor(y, dtype=torch.float64).expand(s.shape[:-1])
    pos = s.all(-1)
    neg = s[..., 1] & s[..., 3]
    return torch.where(y > 0, pos, neg)


# ----------------------------------------------------------------------------------------------------------------
# Pattern-set (subset) level description
# ----------------------------------------------------------------------------------------------------------------
def _subsets() -> Tensor:
    out = []
    for r in range(1, 5):
        for c in combinations(range(4), r):
            m = [False] * 4
            for i in c:
                m[i] = True
            out.append(m)
    return torch.tensor(out)


SUBSETS: Tensor = _subsets()
"""The 15 non-empty subsets of {x1..x4} as bool masks ``[15, 4]`` (ordered by size, then lexicographically)."""

SUBSET_LABELS: Tensor = torch.where(SUBSETS[:, 0] | SUBSETS[:, 2], 1.0, -1.0).double()
"""``f*`` of a point with that pattern set (``[15]``)."""


def n_surjections(d: int, r: int) -> int:
    """Number of maps from d positions onto a fixed set of r patterns (inclusion-exclusion)."""
    V.integer("d", d, 0)
    V.integer("r", r, 0)
    return sum((-1) ** j * math.comb(r, j) * (r - j) ** d for j in range(r + 1))


def uniform_subset_counts(d: int) -> Tensor:
    """Number of inputs in ``{+-1}^(2d)`` whose pattern set is each of :data:`SUBSETS` (``[15]``, int64)."""
    _check_d(d)
    return torch.tensor([n_surjections(d, int(s.sum())) for s in SUBSETS], dtype=torch.int64)


def subset_distribution(d: int, label: int, p: float | None = None) -> Tensor:
    """Distribution over the 15 pattern sets of ``D+`` (``label=+1``) or ``D-`` (``label=-1``), ``[15]`` float64.

    ``p=None``: the uniform distribution over the positive (negative) points of ``{+-1}^(2d)``.
    ``p`` given: the mixture used for Fig. 1 (our reading of App. A.2.1, which only states ``p+ = 0.5, p- = 0.9``):
    with probability ``p`` a point drawn uniformly from the diverse points of that class, otherwise uniformly from the
    non-diverse points of that class.  This is a ``D`` with diversity probability exactly ``p`` (Theorem 4.1 asks
    only that *some* ``D`` has the given ``p+, p-``).
    """
    _check_d(d, 2)
    _check_label(label)
    if p is not None:
        V.probability("p", p)
    counts = uniform_subset_counts(d).double()
    if label == 1:
        member = SUBSET_LABELS > 0
        diverse = SUBSETS.all(-1)
    else:
        # negative points only contain x2, x4
        member = ~(SUBSETS[:, 0] | SUBSETS[:, 2])
        diverse = member & SUBSETS[:, 1] & SUBSETS[:, 3]
    counts = torch.where(member, counts, torch.zeros_like(counts))
    if p is None:
        return counts / counts.sum()
    div = torch.where(diverse, counts, torch.zeros_like(counts))
    non = torch.where(diverse, torch.zeros_like(counts), counts)
    return p * div / div.sum() + (1 - p) * non / non.sum()


def _random_idx(n: int, d: int, generator: torch.Generator, choices: Tensor) -> Tensor:
    j = torch.randint(len(choices), (n, d), generator=generator)
    return choices[j]


def sample_class(m: int, d: int, label: int, generator: torch.Generator, p: float | None = None) -> Tensor:
    """``m`` i.i.d. points of ``D+`` (label +1) or ``D-`` (label -1), as indices ``[m, d]``.

    ``p=None``: uniform over the points of that class (uniform ``D+``/``D-`` of Sec. 3).  ``p`` given: diverse with
    probability ``p`` (uniform among diverse points of the class), else uniform among its non-diverse points (see
    :func:`subset_distribution`).  Exact rejection sampling; every draw uses ``generator`` only.
    """
    _check_m(m)
    _check_d(d, 2)
    _check_label(label)
    V.generator("generator", generator)
    if p is not None:
        V.probability("p", p)
    if label == 1 and p is not None and p > 0 and d < 4:
        raise ValueError(f"diverse positive points need d >= 4, got d={d}")
    if p is None:
        want = torch.full((m,), -1, dtype=torch.long)  # -1: any member of the class
    else:
        want = (torch.rand(m, generator=generator) < p).long()  # 1 diverse, 0 non-diverse
    out = torch.empty(m, d, dtype=torch.long)
    todo = torch.arange(m)
    choices = torch.arange(4) if label == 1 else torch.tensor(NEGATIVE)
    while len(todo):
        cand = _random_idx(len(todo), d, generator, choices)
        ok = fstar(cand) == label
        div = is_diverse(cand, float(label))
        w = want[todo]
        ok &= (w == -1) | ((w == 1) & div) | ((w == 0) & ~div)
        out[todo[ok]] = cand[ok]
        todo = todo[~ok]
    return out


def sample_xord(
    m_pos: int, m_neg: int, d: int, generator: torch.Generator, p_plus: float | None = None,
    p_minus: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Training set ``S = S+ u S-`` of Sec. 3: ``m_pos`` points of ``D+`` then ``m_neg`` of ``D-``.

    Returns ``(idx [m_pos + m_neg, d], y [m_pos + m_neg])`` with ``y = f*(idx)``.
    """
    _check_m(m_pos)
    _check_m(m_neg)
    V.generator("generator", generator)
    pos = sample_class(m_pos, d, 1, generator, p_plus)
    neg = sample_class(m_neg, d, -1, generator, p_minus)
    idx = torch.cat([pos, neg])
    y = torch.cat([torch.ones(m_pos), -torch.ones(m_neg)]).double()
    return idx, y


def diverse_pair(d: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """One diverse positive point ``x+`` and one diverse negative point ``x-`` (indices ``[d]`` each).

    Without a generator: ``x+ = (x1, x2, x3, x4, x1, ...)`` and ``x- = (x2, x4, x2, ...)`` (deterministic).
    """
    _check_d(d, 4)
    V.generator("generator", generator, optional=True)
    if generator is None:
        xp = torch.arange(d) % 4
        xm = torch.tensor(NEGATIVE)[torch.arange(d) % 2]
        return xp, xm
    return sample_class(1, d, 1, generator, 1.0)[0], sample_class(1, d, -1, generator, 1.0)[0]


# ----------------------------------------------------------------------------------------------------------------
# OBD (App. A.4)
# ----------------------------------------------------------------------------------------------------------------
def obd_patterns(d1: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """The ``2 d1`` OBD patterns ``[2 d1, d1]`` for the standard basis ``B = {e_1..e_d1}`` (App. A.4).

    Row ``2i`` is ``+e_i``, row ``2i + 1`` is ``-e_i``.  ``B1 = {e_1..e_(d1/2)}`` gives the positive patterns (rows
    ``0 .. d1 - 1``), ``B2`` the negative ones (rows ``d1 .. 2 d1 - 1``).  Any orthonormal basis gives the same
    learning problem in distribution, because the Gaussian initialization is rotation invariant.
    """
    if isinstance(d1, bool) or not isinstance(d1, int) or d1 < 2 or d1 % 2:
        raise ValueError(f"d1 must be an even integer >= 2, got {d1!r}")
    eye = torch.eye(d1, dtype=dtype)
    return torch.stack([eye, -eye], 1).reshape(2 * d1, d1)


def sample_obd(
    m: int, label: int, d1: int, generator: torch.Generator, sizes: tuple[int, ...] = (4, 6, 8, 10),
    d2: int | None = None,
) -> Tensor:
    """``m`` OBD points of one class as pattern indices ``[m, d2]`` into :func:`obd_patterns` (App. A.4).

    Positive point: draw ``m1, m2`` uniformly from ``sizes`` (with replacement), then ``m1`` distinct positive and
    ``m2`` distinct negative patterns.  Negative point: ``m2`` from ``sizes`` and ``m2`` distinct negative patterns.
    The paper then "fills" the input with these patterns; the number of positions does not change the network
    output (max-pooling), so we place the patterns at the first positions and fill the remaining ``d2`` positions
    (default ``2 max(sizes)``) by repeating the point's own patterns, which keeps its pattern set.
    """
    _check_m(m)
    _check_label(label)
    V.generator("generator", generator)
    if isinstance(d1, bool) or not isinstance(d1, int) or d1 < 2 or d1 % 2:
        raise ValueError(f"d1 must be an even integer >= 2, got {d1!r}")
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) == 0:
        raise ValueError(f"sizes must be a non-empty tuple of pattern counts in 1..d1, got {sizes!r}")
    for sz_ in sizes:
        V.integer("sizes[i]", sz_, 1)
    if d2 is not None:
        V.integer("d2", d2, 1)
    if max(sizes) > d1:
        raise ValueError(f"sizes must be <= d1 = {d1} (number of patterns per class), got {sizes}")
    d2 = 2 * max(sizes) if d2 is None else d2
    if d2 < 2 * max(sizes):
        raise ValueError(f"d2 must be >= {2 * max(sizes)}, got {d2}")
    sz = torch.tensor(sizes)
    out = torch.empty(m, d2, dtype=torch.long)
    for i in range(m):
        m1 = int(sz[torch.randint(len(sz), (1,), generator=generator)]) if label == 1 else 0
        m2 = int(sz[torch.randint(len(sz), (1,), generator=generator)])
        pos = torch.randperm(d1, generator=generator)[:m1]
        neg = d1 + torch.randperm(d1, generator=generator)[:m2]
        pats = torch.cat([pos, neg])
        fill = pats[torch.randint(len(pats), (d2 - len(pats),), generator=generator)]
        out[i] = torch.cat([pats, fill])
    return out


def obd_label(idx: Tensor, d1: int) -> Tensor:
    """``f_OBD``: +1 iff some pattern is positive (index < d1)."""
    if isinstance(d1, bool) or not isinstance(d1, int) or d1 < 2 or d1 % 2:
        raise ValueError(f"d1 must be an even integer >= 2, got {d1!r}")
    V.tensor("idx", idx, kind="int")
    if idx.dim() == 0:
        raise ValueError("idx must have shape [..., d2], got a 0-d tensor")
    V.index_in_range("idx", idx, 2 * d1)
    return torch.where((idx < d1).any(-1), 1.0, -1.0).double()
