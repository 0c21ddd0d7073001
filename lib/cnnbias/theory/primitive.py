"""Primitive non-negative matrices (Definition 3 and App. C of :cite:`gd_conv_linear`).

A non-negative square matrix A is *primitive* if A^t > 0 entrywise for some t >= 1; *irreducible* if its
associated graph G_A (edge i -> j iff A_ij != 0) is strongly connected.  Two independent exact tests:

* graph criterion: A is primitive iff G_A is strongly connected and aperiodic (the gcd of its cycle lengths is 1);
  the period is gcd over edges (u -> v) of level(u) + 1 - level(v) for BFS levels from any vertex.
* powers: by Wielandt's theorem A is primitive iff (A > 0)^{(k-1)^2 + 1} > 0 (boolean powers), k = size.

The paper's sufficient condition (App. C): irreducible with one non-zero diagonal entry => primitive.
"""

from __future__ import annotations

from collections import deque
from math import gcd

import torch
from torch import Tensor

from cnnbias import validate as V


def _support(A: Tensor, atol: float) -> Tensor:
    V.tensor("A", A)
    V.nonnegative("atol", atol)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise ValueError(f"A must be a square matrix, got shape {tuple(A.shape)}")
    if bool((A < -atol).any()):
        raise ValueError("A must be non-negative")
    if A.dtype.is_floating_point and bool(torch.isnan(A).any()):
        raise ValueError("A must not contain NaN")
    return A.abs() > atol


def _bfs_levels(G: Tensor, start: int, transpose: bool = False) -> list[int]:
    adj = G.T if transpose else G
    k = adj.shape[0]
    level = [-1] * k
    level[start] = 0
    q = deque([start])
    nbrs = [torch.nonzero(adj[i]).flatten().tolist() for i in range(k)]
    while q:
        u = q.popleft()
        for v in nbrs[u]:
            if level[v] < 0:
                level[v] = level[u] + 1
                q.append(v)
    return level


def is_irreducible(A: Tensor, atol: float = 0.0) -> bool:
    """G_A strongly connected (every vertex reaches 0 and is reached from 0)."""
    G = _support(A, atol)
    return min(_bfs_levels(G, 0)) >= 0 and min(_bfs_levels(G, 0, transpose=True)) >= 0


def period(A: Tensor, atol: float = 0.0) -> int:
    """Period of an irreducible A (gcd of cycle lengths of G_A); ValueError if A is reducible."""
    G = _support(A, atol)
    if not is_irreducible(A, atol):
        raise ValueError("A must be irreducible to have a period")
    level = _bfs_levels(G, 0)
    p = 0
    for u, v in torch.nonzero(G).tolist():
        p = gcd(p, abs(level[u] + 1 - level[v]))
    return p


def is_primitive(A: Tensor, atol: float = 0.0) -> bool:
    """Graph criterion: irreducible and aperiodic."""
    return is_irreducible(A, atol) and period(A, atol) == 1


def is_primitive_by_powers(A: Tensor, atol: float = 0.0) -> bool:
    """Definition 3 checked with boolean powers up to Wielandt's bound (k-1)^2 + 1."""
    B = _support(A, atol).to(torch.float64)
    k = B.shape[0]
    P = B.clone()
    for _ in range((k - 1) ** 2):
        if bool((P > 0).all()):
            return True
        P = ((P @ B) > 0).to(torch.float64)
    return bool((P > 0).all())


def paper_sufficient(A: Tensor, atol: float = 0.0) -> bool:
    """App. C's sufficient condition: irreducible with at least one non-zero diagonal entry."""
    return is_irreducible(A, atol) and bool((_support(A, atol).diagonal()).any())


def is_primitive_batch(A: Tensor, atol: float = 0.0) -> Tensor:
    """Batched Definition-3 test for A [R, k, k] >= 0: bool [R], boolean powers up to Wielandt's bound."""
    V.tensor("A", A)
    V.nonnegative("atol", atol)
    if A.ndim != 3 or A.shape[-1] != A.shape[-2] or A.shape[-1] == 0:
        raise ValueError(f"A must have shape [R, k, k] (k >= 1), got {tuple(A.shape)}")
    if A.dtype.is_floating_point and bool(torch.isnan(A).any()):
        raise ValueError("A must not contain NaN")
    B = (A.abs() > atol).to(torch.float64)
    k = B.shape[-1]
    P = B.clone()
    ok = (P > 0).flatten(1).all(-1)
    for _ in range((k - 1) ** 2):
        P = ((P @ B) > 0).to(torch.float64)
        ok = ok | (P > 0).flatten(1).all(-1)
    return ok
