"""Tests of cnnbias.models.mlp against a per-example loop."""

import pytest
import torch
from cnnbias.models import mlp


def test_forward_matches_naive_and_param_count():
    gens = [torch.Generator().manual_seed(s) for s in range(3)]
    p = mlp.init(7, 12, gens)
    assert sum(v[0].numel() for v in p.values()) == mlp.n_params(7, 12)
    X = torch.randn(3, 5, 12, dtype=torch.float64)
    out = mlp.forward(p, X)
    for r in range(3):
        for i in range(5):
            h = torch.relu(p["W1"][r] @ X[r, i] + p["b1"][r])
            assert abs(float(h @ p["v"][r] + p["c"][r] - out[r, i])) < 1e-12
    assert mlp.n_params(mlp.hidden_for_params(10500, 200), 200) == pytest.approx(10500, rel=0.02)
    with pytest.raises(ValueError):
        mlp.forward(p, torch.randn(2, 5, 12, dtype=torch.float64))
