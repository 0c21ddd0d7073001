"""Tests for cnnbias.data.patterns: orthogonality, label rule, marginals of D_u, D_vc, D_p."""

import pytest
import torch
from cnnbias.data import patterns as P


def test_orthogonal_patterns_are_orthonormal():
    g = torch.Generator().manual_seed(0)
    O = P.orthogonal_patterns(7, 20, g)
    assert O.shape == (7, 20)
    assert torch.allclose(O @ O.T, torch.eye(7, dtype=torch.float64), atol=1e-12)
    with pytest.raises(ValueError, match="l <= d"):
        P.orthogonal_patterns(21, 20, g)
    assert torch.equal(P.one_hot_patterns(4), torch.eye(4, dtype=torch.float64))


def _label_rule(idx, y):
    """Exactly one discriminative pattern per point, matching its label."""
    has0 = (idx == 0).sum(-1)
    has1 = (idx == 1).sum(-1)
    assert torch.all(has0 + has1 == 1)
    assert torch.all((has0 == 1) == (y > 0))


@pytest.mark.parametrize(
    "sampler,kw",
    [
        (P.sample_D, dict(n=5, l=12)),
        (P.sample_Du, dict(n=5, d=12)),
        (P.sample_Dvc, dict(n=6)),
        (P.sample_Dp, dict(n=5, d=12, p=0.3)),
    ],
)
def test_label_rule_and_shapes(sampler, kw):
    g = torch.Generator().manual_seed(1)
    idx, y = sampler(m=400, generator=g, **kw)
    assert idx.shape == (400, kw["n"]) and y.shape == (400,)
    _label_rule(idx, y)
    # discriminative pattern position is spread over all n slots
    pos = (idx <= 1).to(torch.int64).argmax(-1)
    assert len(torch.unique(pos)) == kw["n"]


def test_du_distinct_spurious_and_unbiased():
    g = torch.Generator().manual_seed(2)
    n, d, m = 5, 12, 40000
    idx, y = P.sample_Du(m, n, d, g)
    srt = idx.sort(-1).values
    assert torch.all(srt[:, 1:] != srt[:, :-1])  # distinct patches
    c = P.contains(idx, d)
    stat = (y[:, None] * c).mean(0)  # E[y 1{p_i in x}]
    assert abs(float(stat[0]) - 0.5) < 0.01 and abs(float(stat[1]) + 0.5) < 0.01
    assert torch.all(stat[2:].abs() < 4.5 * (1 / m) ** 0.5)  # zero for spurious patterns
    # each spurious pattern appears with probability (n-1)/(d-2)
    assert torch.allclose(c[:, 2:].mean(0), torch.full((d - 2,), (n - 1) / (d - 2), dtype=torch.float64), atol=0.015)


def test_dvc_support_is_B_and_unbiased():
    g = torch.Generator().manual_seed(3)
    n, m = 6, 40000
    idx, y = P.sample_Dvc(m, n, g)
    c = P.contains(idx, 2 * n)
    for j in range(1, n):  # exactly one of patterns 2j, 2j+1
        assert torch.all(c[:, 2 * j] + c[:, 2 * j + 1] == 1)
    stat = (y[:, None] * c).mean(0)
    assert torch.all(stat[2:].abs() < 4.5 * (1 / m) ** 0.5)
    assert torch.allclose(c[:, 2:].mean(0), torch.full((2 * n - 2,), 0.5, dtype=torch.float64), atol=0.015)


def test_dp_bias_of_pattern_2():
    g = torch.Generator().manual_seed(4)
    m, p = 40000, 0.8
    idx, y = P.sample_Dp(m, 5, 12, p, g)
    c = P.contains(idx, 12)
    assert torch.all(c[:, 2] + c[:, 3] == 1)
    stat = (y[:, None] * c).mean(0)
    assert abs(float(stat[2]) - (p - 0.5)) < 0.015  # E[y 1{p_3 in x}] = p - 1/2
    assert abs(float(stat[3]) + (p - 0.5)) < 0.015
    assert torch.all(stat[4:].abs() < 4.5 * (1 / m) ** 0.5)


def test_validation():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="n-1 <= d-2"):
        P.sample_Du(3, 10, 8, g)
    with pytest.raises(ValueError, match="p must"):
        P.sample_Dp(3, 4, 10, 1.5, g)
    with pytest.raises(ValueError, match="l must"):
        P.sample_D(3, 4, 2, g)
    with pytest.raises(ValueError, match="m must"):
        P.sample_D(0, 4, 5, g)
    with pytest.raises(ValueError, match="generator must be a torch.Generator"):
        P.sample_D(3, 4, 5)  # no global RNG
    with pytest.raises(ValueError, match="outside"):
        P.embed(torch.tensor([[0, 9]]), torch.eye(4))


def test_stack_runs_uses_each_generator():
    gens = [torch.Generator().manual_seed(s) for s in (5, 6)]
    idx, y = P.stack_runs(P.sample_Du, gens, m=10, n=3, d=8)
    assert idx.shape == (2, 10, 3)
    again, _ = P.sample_Du(10, 3, 8, torch.Generator().manual_seed(6))
    assert torch.equal(idx[1], again)
    X = P.embed(idx, torch.eye(8, dtype=torch.float64))
    assert X.shape == (2, 10, 3, 8) and torch.all(X.sum(-1) == 1)
