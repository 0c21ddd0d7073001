"""Tests for cnnbias.theory.primitive: graph criterion vs powers (Definition 3, App. C)."""

import pytest
import torch
from cnnbias.theory import primitive as Pr


def test_known_examples():
    cyc = torch.tensor([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]])  # irreducible, period 3
    assert Pr.is_irreducible(cyc) and Pr.period(cyc) == 3
    assert not Pr.is_primitive(cyc) and not Pr.is_primitive_by_powers(cyc)
    cyc2 = cyc.clone()
    cyc2[0, 0] = 1.0
    assert Pr.is_primitive(cyc2) and Pr.is_primitive_by_powers(cyc2) and Pr.paper_sufficient(cyc2)
    red = torch.tensor([[1.0, 1], [0, 1]])
    assert not Pr.is_irreducible(red) and not Pr.is_primitive(red)
    # primitive with zero diagonal (cycles 2 and 3): the paper's condition is sufficient, not necessary
    A = torch.tensor([[0.0, 1, 1], [1, 0, 0], [0, 1, 0]])
    assert Pr.is_primitive(A) and Pr.is_primitive_by_powers(A) and not Pr.paper_sufficient(A)
    # Wielandt's matrix needs exactly (k-1)^2 + 1 powers
    k = 5
    W = torch.zeros(k, k)
    for i in range(k - 1):
        W[i, i + 1] = 1
    W[k - 1, 0] = W[k - 1, 1] = 1
    assert Pr.is_primitive(W) and Pr.is_primitive_by_powers(W)
    P = torch.linalg.matrix_power(W, (k - 1) ** 2)
    assert not bool((P > 0).all()) and bool((P @ W > 0).all())


def test_random_sparse_matrices_agree():
    g = torch.Generator().manual_seed(0)
    As = []
    for trial in range(300):
        k = 2 + trial % 5
        A = (torch.rand(k, k, generator=g) < 0.3).double() * torch.rand(
            k, k, generator=g, dtype=torch.float64
        )
        As.append(A)
        assert Pr.is_primitive(A) == Pr.is_primitive_by_powers(A)
        if Pr.paper_sufficient(A):
            assert Pr.is_primitive(A)
    same = [A for A in As if A.shape[0] == 4]
    batch = Pr.is_primitive_batch(torch.stack(same))
    assert batch.tolist() == [Pr.is_primitive(A) for A in same]
    assert 0 < sum(batch.tolist()) < len(same)  # both outcomes exercised


def test_validation():
    with pytest.raises(ValueError, match="square"):
        Pr.is_primitive(torch.ones(2, 3))
    with pytest.raises(ValueError, match="non-negative"):
        Pr.is_primitive(-torch.ones(2, 2))
