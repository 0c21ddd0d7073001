"""Tests of cnnbias.theory.limit_average: the Lemma-1 error averaged over Gaussian initializations."""

import math

import pytest
import torch
from cnnbias.data import positions as P
from cnnbias.theory import convlinear as C
from cnnbias.theory import limit_average as A
from cnnbias.theory import taskcls as T


def _mc(M, task, draws, seed):
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(draws, M.shape[2], generator=g, dtype=torch.float64)
    e = C.asymptotic_error(M.expand(draws, -1, -1), w1, task)
    return float(e.mean()), float(e.std() / draws**0.5)


def test_spectra_closed_forms():
    lam = torch.tensor([[[-1.0, 3.0], [1.0, 2.0], [-1.0, -2.0], [0.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    e, se = A.expected_error_from_spectra(lam, 100, torch.Generator().manual_seed(0))
    # per point: 2/pi atan(sqrt(1/3)) = 1/3, 0, 1, 1/2 (tie), 0
    assert abs(float(e[0]) - (1 / 3 + 0 + 1 + 0.5 + 0) / 5) < 1e-14
    assert float(se[0]) == 0.0


def test_spectra_monte_carlo_three_eigenvalues():
    # lambda = (-1, 1, 1): z2^2 + z3^2 ~ Exp(mean 2), so Pr(z1^2 > z2^2 + z3^2) = 1 - E exp(-z1^2/2) = 1 - 1/sqrt(2)
    lam = torch.tensor([[[-1.0, 1.0, 1.0]]], dtype=torch.float64)
    e, se = A.expected_error_from_spectra(lam, 200_000, torch.Generator().manual_seed(1))
    exact = 1 - 1 / math.sqrt(2)
    assert float(se[0]) > 0
    assert abs(float(e[0]) - exact) < 4 * float(se[0])


def test_m1_equals_theorem2():
    task = P.task_cls(30)
    gens = [torch.Generator().manual_seed(i) for i in range(6)]
    M = T.m_train_positions(T.sample_positions(30, 12, gens), 30, 3)
    e, se, m = A.lemma1_expected_error(M, task, torch.Generator().manual_seed(0))
    t2, m2 = C.thm2_error(M, task)
    ones = m == 1
    assert bool(ones.any())
    assert torch.equal(e[ones], t2[ones])
    assert float(se[ones].abs().max()) == 0.0


@pytest.mark.parametrize("d,k,pos", [(20, 2, [4, 11]), (40, 3, [5, 17, 30])])
def test_repeated_sigma1_matches_monte_carlo_over_inits(d, k, pos):
    task = P.task_1st_ctrl(d) if k == 2 else P.task_cls(d)
    idx = torch.tensor([pos])
    M = C.m_train(task, idx, k, torch.ones(1, len(pos), dtype=torch.float64))
    e, se, m = A.lemma1_expected_error(M, task, torch.Generator().manual_seed(2), draws=20000)
    assert int(m[0]) == k
    mc, mc_se = _mc(M, task, 20000, 3)
    assert abs(float(e[0]) - mc) < 4 * math.hypot(mc_se, float(se[0]))
    # Theorem 2's min over UV_1 bounds the average from above
    t2, _ = C.thm2_error(M, task)
    assert float(e[0]) <= float(t2[0]) + 4 * float(se[0])


def test_prop6_value():
    # sparse Task-Cls sets: the average over inits is 1/2 (d - n)/d (Proposition 6)
    d, k, n = 100, 5, 6
    gens = [torch.Generator().manual_seed(i) for i in range(4)]
    M = T.m_train_positions(T.sample_sparse_positions(d, k, n, gens), d, k)
    e, se, m = A.lemma1_expected_error(M, P.task_cls(d), torch.Generator().manual_seed(0), draws=20000)
    assert bool((m == k).all())
    assert abs(float(e.mean()) - 0.5 * (d - n) / d) < 4 * float(se.pow(2).sum().sqrt() / len(se))


def test_validation():
    with pytest.raises(ValueError, match="draws"):
        A.expected_error_from_spectra(torch.zeros(1, 2, 2, dtype=torch.float64), 1, torch.Generator())
    with pytest.raises(ValueError, match="m"):
        A.sym_q_eigenvalues(torch.zeros(1, 10, 3, dtype=torch.float64), P.task_cls(10), 4)
