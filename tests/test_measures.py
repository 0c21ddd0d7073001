"""Tests of cnnbias.measures against hand-computed values."""

import math

import pytest
import torch
from cnnbias import measures as M
from cnnbias.models import poly_net as P


def test_multiclass_error_counts_ties_fractionally():
    s = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 2.0]]], dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    # example 0 right, example 1 three-way tie (2/3 wrong), example 2 two-way tie (1/2 wrong)
    assert math.isclose(M.multiclass_error(s, y).item(), (0 + 2 / 3 + 1 / 2) / 3)
    w = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)
    assert math.isclose(M.multiclass_error(s, y, w).item(), 0.25)
    with pytest.raises(ValueError, match="labels"):
        M.multiclass_error(s, torch.tensor([0, 1, 3]))


def test_chance_error_uniform_is_one_minus_one_over_c():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 40, 4, generator=g, dtype=torch.float64)
    y = torch.arange(40) % 4  # uniform labels
    assert torch.allclose(M.chance_error(s, y), torch.full((2,), 0.75, dtype=torch.float64))


def test_cross_entropy_and_margins():
    s = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    y = torch.tensor([0, 0])
    ce = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(1))) / 2
    assert math.isclose(M.cross_entropy(s, y).item(), ce, rel_tol=1e-12)
    assert M.margins(s, y).tolist() == [[2.0, -1.0]]


def test_normalized_margin_is_scale_invariant():
    p = P.mlp_init([5], 3, 4, [torch.Generator().manual_seed(1)])
    X = torch.randn(9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    y = torch.arange(9) % 4
    a = M.normalized_margin(P.mlp_forward(p, X), y, p, ["W", "V"])
    q = dict(p, W=3 * p["W"], V=0.5 * p["V"])
    b = M.normalized_margin(P.mlp_forward(q, X), y, q, ["W", "V"])
    assert torch.allclose(a, b, atol=1e-14)
    assert math.isclose(M.param_norm(q, ["W"]).item(), 3 * M.param_norm(p, ["W"]).item(), rel_tol=1e-12)


def test_flatness_radius_of_a_quadratic():
    # loss(w) = |w|^2 at w = 0: |I(w + r d) - I(w)| = r^2, so r = sqrt(eps) along every unit direction
    params = {"w": torch.zeros(2, 5, dtype=torch.float64)}
    dirs = M.random_directions(params, ["w"], 3, torch.Generator().manual_seed(0))
    assert torch.allclose(dirs["w"].pow(2).sum(-1), torch.ones(2, 3, dtype=torch.float64))

    def loss(q):
        return q["w"].pow(2).sum(-1)

    r = M.flatness_radius(loss, params, dirs, 0.25, bisections=40)
    assert torch.allclose(r, torch.full((2, 3), 0.5, dtype=torch.float64), atol=1e-9)
    with pytest.raises(ValueError, match="eps"):
        M.flatness_radius(loss, params, dirs, 0.0)


def test_random_directions_respect_support():
    params = {"w": torch.zeros(1, 4, dtype=torch.float64)}
    sup = {"w": torch.tensor([[1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)}
    d = M.random_directions(params, ["w"], 5, torch.Generator().manual_seed(0), sup)
    assert torch.all(d["w"][..., 2:] == 0)


def test_simplex_grid_and_three_point_interpolation():
    lam = M.simplex_grid(2)
    assert lam.shape == (6, 3) and torch.allclose(lam.sum(1), torch.ones(6, dtype=torch.float64))
    assert M.simplex_grid(2, 1).shape[0] == math.comb(2 + 3 * 1 + 2, 2)
    p = {"w": torch.arange(12, dtype=torch.float64).reshape(6, 2)}  # two triples
    out = M.three_point_params(p, torch.eye(3, dtype=torch.float64))
    assert torch.equal(out["w"], p["w"])  # vertices are the three minima
    mid = M.three_point_params(p, torch.full((1, 3), 1 / 3, dtype=torch.float64))["w"]
    assert torch.allclose(mid, torch.stack([p["w"][:3].mean(0), p["w"][3:].mean(0)]))
    with pytest.raises(ValueError, match="triples"):
        M.three_point_params({"w": torch.zeros(4, 2)}, lam)


def test_input_perturbation_error_zero_at_gamma_zero_and_validated():
    p = P.mlp_init([4], 3, 2, [torch.Generator().manual_seed(0)])
    X = torch.randn(1, 10, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = P.mlp_forward(p, X).argmax(-1)  # labels the net fits exactly
    e = M.input_perturbation_error(P.mlp_forward, p, X, y, [0.0, 100.0], torch.Generator().manual_seed(2))
    assert e.shape == (2, 1) and e[0, 0].item() == 0.0 and e[1, 0].item() > 0
    with pytest.raises(ValueError, match="gammas"):
        M.input_perturbation_error(P.mlp_forward, p, X, y, [-1.0], torch.Generator())
