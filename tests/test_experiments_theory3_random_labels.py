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


# --- the sweep theory3.random_labels -----------------------------------------------------------------

from cnnbias import sweeps  # noqa: E402
from cnnbias.claims import Claims  # noqa: E402

CPU, F64 = torch.device("cpu"), torch.float64


@pytest.fixture(scope="module")
def smoke_cells():
    return [(c, E.random_labels_cell(c, CPU, F64)) for c in E.random_labels_cells("smoke")]


def test_cells_per_scale_follow_the_chapter_loops():
    for scale in ("smoke", "book", "paper"):
        cfg = E.CONFIGS[scale]
        cells = E.random_labels_cells(scale)
        count = {p: sum(c["part"] == p for c in cells) for p in E.PARTS}
        assert count == {"size": 2 * len(cfg["size_sweep"]["sizes"]),
                         "width": 2 * len(cfg["width_sweep"]["widths"]),
                         "minima": 2 * cfg["minima"]["triples"],
                         "poly": 2 * len(cfg["poly"]["bounds"])}, scale
        assert all(c["cfg"] == cfg and c["labels"] in E.LABELINGS for c in cells)
        # every run of the chapter's batches is in exactly one cell
        runs = sum(len(c.get("seeds", [0, 1, 2])) for c in cells)
        assert runs == sum(len(E._plan(cfg, p)) for p in E.PARTS)
    assert E.random_labels_cells("book")[0] == {"part": "size", "n": 50, "labels": "natural",
                                                 "seeds": [0, 1, 2, 3], "cfg": E.CONFIGS["book"]}


def test_smoke_cells_well_formed_and_deterministic(smoke_cells):
    for c, r in smoke_cells:
        S = len(c.get("seeds", [0, 1, 2]))
        assert len(r["train"]) == len(r["test"]) == S
        assert all(0.0 <= v <= 1.0 for v in r["train"] + r["test"])
        if c["part"] == "width":
            assert len(r["history"]) == len(r["history_epochs"]) and len(r["history"][0]) == S
        if c["part"] == "minima":
            assert len(r["perturbed_err"]) == len(E.CONFIGS["smoke"]["perturbation"]["gammas"])
            assert len(r["plane_err"]) == len(r["lam"]) and 0.0 <= r["flat_area"] <= 1.0
        if c["part"] == "poly":
            assert all(v > 0 for v in r["pre_max"])
    for i in (0, 5, 9, 13):
        c, r = smoke_cells[i]
        assert E.random_labels_cell(c, CPU, F64) == r


def test_cells_match_the_single_batch(smoke_cells, cfg, data):
    # the cells give each run the data and initialization it has in the chapter's single batch
    a = E.assemble(smoke_cells)
    ss, ws = E.size_sweep(cfg, data), E.width_sweep(cfg, data)
    assert torch.equal(a["size"]["train"], ss["train"]) and torch.equal(a["size"]["test"], ss["test"])
    assert a["size"]["keys"] == ss["keys"]
    assert torch.equal(a["width"]["test_loss"], ws["test_loss"]) and torch.equal(a["width"]["history"], ws["history"])
    mi = E.minima(cfg, data, torch.Generator().manual_seed(0))
    assert torch.equal(a["minima"]["norm"], mi["norm"]) and torch.equal(a["minima"]["plane_err"], mi["plane_err"])
    po = E.poly_vs_relu(cfg, data)
    assert torch.equal(a["poly"]["test"], po["test"]) and a["poly"]["bounds"] == po["bounds"]


def test_cell_rejects_bad_configs():
    good = E.random_labels_cells("smoke")[0]
    for bad, key in ((dict(good, part="depth"), "part"), (dict(good, labels="shuffled"), "labels"),
                     (dict(good, n=21), "n"), (dict(good, seeds=[7]), "seeds"), (dict(good, seeds=[]), "seeds"),
                     ({k: v for k, v in good.items() if k != "cfg"}, "cfg"),
                     ({k: v for k, v in good.items() if k != "n"}, "n")):
        with pytest.raises(ValueError, match=f"'{key}'"):
            E.random_labels_cell(bad, CPU, F64)


def test_claim_functions_produce_their_ids(smoke_cells):
    claims = Claims("theory3", scale="smoke")
    for cid, (fn, parts) in E.CLAIMS.items():
        fn([(c, r) for c, r in smoke_cells if c["part"] in parts], claims)
        assert cid in [c.id for c in claims], cid
    vals = E.add_claims(smoke_cells, Claims("theory3", scale="smoke"))
    assert {"wn_fit", "exc", "h_star", "flat_ratio", "area", "pert", "poly_diff", "B_claim"} <= set(vals)
    with pytest.raises(ValueError, match="part"):
        E.claim_fig1_test_err_falls_with_N([(c, r) for c, r in smoke_cells if c["part"] == "minima"], claims)


def test_sweep_registered_with_its_claims():
    sw = sweeps.get("theory3.random_labels")
    assert sw.cell_fn is E.random_labels_cell
    assert len(sw.configs("paper")) == len(E.random_labels_cells("paper"))
    assert sorted(c.id for c in sweeps.claims_of("theory3.random_labels")) == sorted(E.CLAIMS)
    spec = sweeps.get_claim("theory3.fig1_test_err_falls_with_N")
    assert spec.select({"part": "size"}) and not spec.select({"part": "minima"})


def test_allconv_poly_cell_on_mnist1d():
    cfg = dict(E.CONFIGS["smoke"], dataset="mnist1d", model="allconv", layers=5, num_samples=400,
               n_test=100, epochs=3, lr=0.003, bound=24.0, poly=dict(E.CONFIGS["smoke"]["poly"], bounds=[24.0]))
    cells = [c for c in E.random_labels_cells_for(cfg) if c["part"] == "poly"]
    r = E.random_labels_cell(cells[0], CPU, F64)
    assert len(r["pre_max"]) == len(cells[0]["seeds"]) and all(v > 0 for v in r["pre_max"])


def _paper_poly_losses(bounds, epochs, n=200):
    """Training losses at epochs 0..epochs of paper-config poly nets (architecture, data, lr, init) on
    ``n`` examples, one natural- and one random-label run per interval in ``bounds``."""
    from cnnbias import measures
    from cnnbias.engine import StopRule, train

    paper = E.CONFIGS["paper"]
    cfg = dict(paper, num_samples=1000, n_test=100)
    data = E.load_data(cfg)
    specs = [(b, lab) for b in bounds for lab in E.LABELINGS]
    g = torch.Generator().manual_seed(0)
    X = torch.stack([data.X[torch.randperm(len(data.y), generator=g)[:n]] for _ in specs])
    y = torch.stack([data.y[:n] if lab == "natural" else torch.randint(0, 10, (n,), generator=g)
                     for _, lab in specs])
    gens = [torch.Generator().manual_seed(r) for r in range(len(specs))]
    params = E._init(cfg, [int(paper["poly"]["width"])] * len(specs), data.in_shape, gens, F64, None)
    params["bound"] = torch.tensor([b for b, _ in specs], dtype=F64)
    fwd = E.forward_fn(cfg, "poly")

    def record(p, live):
        return {"loss": measures.cross_entropy(fwd(p, X[live]), y[live])}

    res = train(lambda p, batch: measures.cross_entropy(fwd(p, batch.take(X)), batch.take(y)), params,
                lr=float(cfg["lr"]), stop=StopRule(max_epochs=epochs), trainable=E.weight_names(cfg),
                optimizer=cfg["optimizer"], record=record, record_every=1)
    return res.history["loss"]  # [epochs + 1, runs]


def test_paper_poly_intervals_hold_the_preactivations():
    # the paper-scale poly nets train: loss finite from the start and falling over the first epochs
    losses = _paper_poly_losses(E.CONFIGS["paper"]["poly"]["bounds"], epochs=5)
    assert bool(torch.isfinite(losses).all())
    assert bool((losses[-1] < losses[0]).all())
    assert min(E.CONFIGS["paper"]["poly"]["bounds"]) == E.CONFIGS["paper"]["bound"]


def test_book_intervals_overflow_the_paper_net():
    # why the paper scale does not use the book's B = 4, 8: on mnist1d the 5-layer poly net's
    # pre-activations leave [-B, B] at initialization and its loss is non-finite before any step
    with pytest.warns(RuntimeWarning, match="diverged"):
        losses = _paper_poly_losses([4.0, 8.0], epochs=1)
    assert not bool(torch.isfinite(losses[0]).any())
