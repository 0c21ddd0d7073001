"""Tests for cnnbias.experiments.convlin (Part I experiment drivers), at smoke sizes."""

import pytest
import torch
from cnnbias.data import positions as P
from cnnbias.experiments import convlin as E
from cnnbias.models import linear as L
from cnnbias.theory import convlinear as C


def test_gap_runs_batching_independent_and_fits():
    a = E.gap_runs("3rdctrl", 12, 3, [4, 8], 3, 0.2, 20000, experiment="t/gap")
    b = E.gap_runs("3rdctrl", 12, 3, [8], 2, 0.2, 20000, experiment="t/gap")
    for m in L.MODELS:
        assert a.err[m].shape == (2, 3)
        assert bool(a.converged[m].all())
        # run (n=8, rep<2) is the same whether trained with 6 runs or 2
        assert torch.allclose(a.err[m][1, :2], b.err[m][0])
        w_a = L.effective_weight(m, a.final[m]).reshape(2, 3, -1)[1, :2]
        assert torch.allclose(w_a, L.effective_weight(m, b.final[m]), atol=1e-12)
    # zero training loss: all training margins >= 1
    w = L.effective_weight("conv", a.final["conv"])
    z = a.task.y[a.idx] * L.scores(w, a.task, a.idx)
    assert bool((z[a.mask > 0] >= 1 - 1e-12).all())


def test_xhinge_error_matches_gd():
    task = P.task_cls(16)
    idx, mask = E.training_sets(task, [6], 3, "t/x")
    p = L.init_params("conv", 16, [torch.Generator().manual_seed(i) for i in range(3)], k=3)
    M = C.m_train(task, idx, 3, mask)
    w1, w2, _ = C.xhinge_gd(M, p["w1"], p["w2"], 0.1, 50)
    direct = L.test_error(L.conv_effective_weight(w1, w2), task)
    assert torch.equal(E.xhinge_error(task, idx, mask, p["w1"], p["w2"], 3, 0.1, 50), direct)


def test_init_runs_shapes_and_freeze():
    r = E.init_runs("1stctrl", 16, 3, 6, 5, 0.1, 100, 10, 5000, experiment="t/init")
    assert r.t_x == list(range(0, 101, 10))
    assert r.hinge_test.shape == (11, 5) and r.x_test.shape == (11, 5)
    assert not bool(torch.isnan(r.hinge_test).any())
    stopped = r.hinge_stop <= 100
    assert torch.allclose(r.hinge_test[-1][stopped], r.hinge_final_test[stopped])
    assert 0.0 <= r.asym_err <= 1.0


def test_paired_difference_uses_the_per_set_differences():
    a = torch.tensor([[1.0, 3.0, 5.0], [2.0, 4.0, 9.0]], dtype=torch.float64)
    b = a - torch.tensor([[1.0, 1.0, 1.0], [0.0, 2.0, 4.0]], dtype=torch.float64)
    ma, mb, se = E.paired_difference(a, b, [0, 1])
    assert abs((ma - mb) - 1.5) < 1e-12
    # row 0: differences constant (var 0); row 1: var of (0, 2, 4) = 4 -> SE = sqrt(4 / 3) / 2
    assert abs(se - (4.0 / 3) ** 0.5 / 2) < 1e-12
    with pytest.raises(ValueError, match="rows"):
        E.paired_difference(a, b, [])
