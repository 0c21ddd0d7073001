"""Tests of cnnbias.experiments.theory3.random_labels at smoke scale."""

import pytest
import torch
from cnnbias.experiments.theory3 import random_labels as E


@pytest.fixture(scope="module")
def cfg():
    return dict(E.CONFIGS["smoke"])


@pytest.fixture(scope="module")
def data(cfg):
    return E.load_data(cfg)


def test_configs_have_every_scale():
    assert set(E.CONFIGS) == {"smoke", "book", "paper"}
    assert E.CONFIGS["paper"]["model"] == "allconv" and E.CONFIGS["paper"]["layers"] == 5
    assert E.CONFIGS["paper"]["dataset"] == "mnist1d"


def test_load_digits_split(cfg, data):
    assert data.X_test.shape == (cfg["n_test"], 64) and len(data.y) == 1797 - cfg["n_test"]
    assert data.X.dtype == torch.float64 and float(data.X.max()) <= 1.0
    with pytest.raises(ValueError, match="dataset"):
        E.load_data(dict(cfg, dataset="cifar"))


def test_train_runs_batch_independent_and_random_labels(cfg, data):
    a = E.train_runs(cfg, data, "t", [4, 16], [30, 60], ["natural", "random"], [0, 1])
    b = E.train_runs(cfg, data, "t", [16], [60], ["random"], [1])
    # run 1 trained alone has the same data; its init is run index 0 of `b`, so compare data only
    assert torch.equal(a.X[1, :60], b.X[0]) and torch.equal(a.y[1, :60], b.y[0])
    assert a.w[0].sum() == 30 and a.w[1].sum() == 60
    assert float(a.train_error()[1]) < 0.9  # fits random labels better than chance
    with pytest.raises(ValueError, match="labels"):
        E.train_runs(cfg, data, "t", [4], [30], ["shuffled"], [0])


def test_width_sweep_and_minima(cfg, data):
    ws = E.width_sweep(cfg, data)
    assert ws["history"].shape[1] == len(ws["keys"])
    nat_big = [float(e) for e, k in zip(ws["train"], ws["keys"]) if k == ("natural", 16)]
    assert max(nat_big) == 0.0
    mi = E.minima(cfg, data, torch.Generator().manual_seed(0))
    R = 6 * cfg["minima"]["triples"]
    for key in ("train", "test", "norm", "margin", "flat_all", "flat_top", "chance"):
        assert mi[key].shape == (R,), key
    assert mi["plane_err"].shape[0] == 2 * cfg["minima"]["triples"]
    assert mi["perturbed_err"].shape == (len(cfg["perturbation"]["gammas"]), R)
    po = E.poly_vs_relu(cfg, data)
    assert po["train"].shape == (2 * cfg["poly"]["seeds"] * len(cfg["poly"]["bounds"]),)
    assert sorted(set(po["bounds"])) == sorted(cfg["poly"]["bounds"])
    # paired data: poly run s uses the training set of ReLU triple s
    assert torch.equal(po["runs"].X[0], mi["runs"].X[0])


def test_allconv_on_mnist1d_runs():
    cfg = dict(E.CONFIGS["smoke"], dataset="mnist1d", model="allconv", layers=5, num_samples=400,
               n_test=100, epochs=5)
    data = E.load_data(cfg)
    assert data.X.shape[1:] == (40,)
    runs = E.train_runs(cfg, data, "t", [2, 4], [40, 40], ["natural", "random"], [0, 1])
    assert runs.test_error(data).shape == (2,)
    assert E.n_params(cfg, 16, (40,)) == 3 * 16 + 3 * 3 * 16 * 16 + 16 * 3 * 10
