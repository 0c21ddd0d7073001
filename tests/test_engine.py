"""Tests for cnnbias.engine: batching invariance, stop rules, masks, validation."""

import pytest
import torch
from cnnbias import config
from cnnbias.engine import Batch, StopRule, hinge, logistic, permutations, train
from cnnbias.models import maxpool

R, M, N, D, K = 5, 24, 4, 9, 3


def _problem():
    """R max-pooling runs with their own data and init, one-hot patterns (indices)."""
    gens = config.generators("engine-test", {"R": R}, R)
    idx = torch.stack([torch.randint(0, D, (M, N), generator=g) for g in gens])
    y = torch.stack([torch.where(torch.rand(M, generator=g) < 0.5, 1.0, -1.0).double() for g in gens])
    W = torch.stack([0.3 * torch.randn(2 * K, D, generator=g, dtype=torch.float64) for g in gens])
    a = torch.stack([torch.randn(2 * K, generator=g, dtype=torch.float64) for g in gens])
    return idx, y, W, a


def _loss(idx, y):
    def loss_fn(p, b: Batch):
        return logistic(b.take(y) * maxpool.forward(p["W"], p["a"], idx=b.take(idx))).mean(-1)

    return loss_fn


@pytest.mark.parametrize(
    "opt,bs,lr", [("gd", None, 0.5), ("sgd", 5, 0.2), ("adam", None, 0.05), ("adam", 8, 0.05)]
)
def test_batched_equals_one_by_one(opt, bs, lr):
    idx, y, W, a = _problem()
    seeds = list(range(100, 100 + R))
    kw = dict(optimizer=opt, lr=lr, stop=StopRule(max_epochs=40), n_train=M, batch_size=bs)
    if bs is not None:
        kw["shuffle_seeds"] = seeds
    res = train(_loss(idx, y), {"W": W, "a": a}, **kw)
    for r in range(R):
        if bs is not None:
            kw["shuffle_seeds"] = seeds[r : r + 1]
        one = train(_loss(idx[r : r + 1], y[r : r + 1]), {"W": W[r : r + 1], "a": a[r : r + 1]}, **kw)
        for name in ("W", "a"):
            assert torch.allclose(res.params[name][r], one.params[name][0], atol=1e-10, rtol=0), (opt, r, name)
        assert abs(float(res.final_loss[r] - one.final_loss[0])) < 1e-10


def test_rerun_is_identical_and_params_untouched():
    idx, y, W, a = _problem()
    W0 = W.clone()
    kw = dict(optimizer="sgd", lr=0.1, stop=StopRule(max_epochs=10), n_train=M, batch_size=7, shuffle_seeds=[1, 2, 3, 4, 5])
    r1 = train(_loss(idx, y), {"W": W, "a": a}, **kw)
    r2 = train(_loss(idx, y), {"W": W, "a": a}, **kw)
    assert torch.equal(r1.params["W"], r2.params["W"])
    assert torch.equal(W, W0)
    assert not torch.equal(r1.params["W"], W0)


def test_trainable_subset_freezes_others():
    idx, y, W, a = _problem()
    res = train(_loss(idx, y), {"W": W, "a": a}, trainable=("a",), lr=0.1, stop=StopRule(max_epochs=5))
    assert torch.equal(res.params["W"], W)
    assert not torch.equal(res.params["a"], a)


def test_loss_below_stops_and_freezes_runs():
    # separable hinge problem: f(x) = w . x, runs with different lr reach zero loss at different times
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([1.0, -1.0], dtype=torch.float64)
    X = x.expand(3, 2, 2).clone()
    Y = y.expand(3, 2).clone()

    def loss_fn(p, b):
        return hinge(b.take(Y) * (b.take(X) @ p["w"].unsqueeze(-1)).squeeze(-1)).mean(-1)

    w = torch.zeros(3, 2, dtype=torch.float64)
    res = train(loss_fn, {"w": w}, lr=torch.tensor([2.0, 1.0, 0.5]), stop=StopRule(max_epochs=100, loss_below=0.0))
    # GD on mean hinge: each coordinate moves by lr/2 per step until the margin reaches 1
    assert res.epochs.tolist() == [1, 2, 4]
    assert res.stop_reason == ["loss_below"] * 3
    assert torch.all(res.final_loss == 0)
    assert torch.allclose(res.params["w"], torch.tensor([[1.0, -1.0]] * 3, dtype=torch.float64))
    assert res.converged.all()


def test_patience_and_max_epochs():
    def loss_fn(p, b):
        return (p["w"] ** 2).sum(-1) * 0 + p["c"].sum(-1)  # gradient only through c, loss never improves on w

    params = {"w": torch.ones(2, 3, dtype=torch.float64), "c": torch.ones(2, 1, dtype=torch.float64)}
    # c decreases linearly forever: loss improves every step, so only max_epochs stops it
    res = train(loss_fn, params, lr=0.1, stop=StopRule(max_epochs=7, patience=3))
    assert res.stop_reason == ["max_epochs"] * 2 and res.epochs.tolist() == [7, 7]
    # with w only trainable, the loss is constant: patience stops after 3 non-improving checks
    res = train(loss_fn, params, trainable=("w",), lr=0.1, stop=StopRule(max_epochs=50, patience=3))
    assert res.stop_reason == ["patience"] * 2 and res.epochs.tolist() == [4, 4]


def test_history_records_with_nan_after_stop():
    x = torch.tensor([[1.0]], dtype=torch.float64).expand(2, 1, 1).clone()
    y = torch.ones(2, 1, dtype=torch.float64)

    def loss_fn(p, b):
        return hinge(b.take(y) * (b.take(x) @ p["w"].unsqueeze(-1)).squeeze(-1)).mean(-1)

    res = train(
        loss_fn,
        {"w": torch.zeros(2, 1, dtype=torch.float64)},
        lr=torch.tensor([1.0, 0.25]),
        stop=StopRule(max_epochs=10, loss_below=0.0),
        record=lambda p, runs: {"w": p["w"][:, 0]},
    )
    h = res.history["w"]
    assert res.history_epochs == [0, 1, 2, 3, 4]
    assert h.shape == (5, 2)
    assert torch.allclose(h[:, 1], torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64))
    assert float(h[1, 0]) == 1.0 and torch.isnan(h[2:, 0]).all()


def test_permutations_are_permutations_and_batch_invariant():
    seeds = torch.tensor([1, 2, 3, 2**62 + 5])
    p = permutations(seeds, 3, 50)
    assert torch.equal(p.sort(dim=1).values, torch.arange(50).expand(4, 50))
    assert torch.equal(p[3], permutations(seeds[3:], 3, 50)[0])
    assert not torch.equal(p[1], permutations(seeds, 4, 50)[1])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(lr=0.0), "lr must be positive"),
        (dict(lr=-1.0), "lr must be positive"),
        (dict(lr="fast"), "lr must be a positive number"),
        (dict(lr=torch.ones(3)), "one entry per run"),
        (dict(optimizer="rmsprop"), "optimizer='rmsprop'.*gd, sgd, adam"),
        (dict(trainable=("v",)), "trainable names 'v'"),
        (dict(trainable=()), "at least one"),
        (dict(optimizer="sgd", n_train=4, batch_size=9, shuffle_seeds=[1, 2]), "batch_size must be"),
        (dict(optimizer="sgd", n_train=4, batch_size=2), "shuffle_seeds"),
        (dict(optimizer="sgd", batch_size=2), "n_train"),
        (dict(batch_size=2, n_train=4), "only for optimizer"),
        (dict(stop="forever"), "StopRule"),
        (dict(record_every=0), "record_every"),
    ],
)
def test_validation_errors(kwargs, match):
    params = {"w": torch.zeros(2, 3, dtype=torch.float64)}
    base = dict(lr=0.1, stop=StopRule(max_epochs=2))
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        train(lambda p, b: p["w"].sum(-1), params, **base)


def test_param_validation():
    with pytest.raises(ValueError, match="non-empty"):
        train(lambda p, b: p, {}, lr=0.1, stop=StopRule(max_epochs=1))
    with pytest.raises(ValueError, match="leading run axis"):
        train(lambda p, b: p, {"a": torch.zeros(2, 1), "b": torch.zeros(3, 1)}, lr=0.1, stop=StopRule(max_epochs=1))
    with pytest.raises(ValueError, match="one loss per live run"):
        train(lambda p, b: p["a"].sum(), {"a": torch.zeros(2, 1)}, lr=0.1, stop=StopRule(max_epochs=1))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(max_epochs=0), "max_epochs"),
        (dict(max_epochs=5, loss_below=-1.0), "loss_below"),
        (dict(max_epochs=5, patience=0), "patience"),
        (dict(max_epochs=5, min_delta=-0.1), "min_delta"),
        (dict(max_epochs=5, check_every=0), "check_every"),
    ],
)
def test_stoprule_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StopRule(**kwargs)


def test_batch_take_checks_run_axis():
    b = Batch(torch.tensor([0, 2]), None, 3)
    t = torch.arange(6.0).reshape(3, 2)
    assert torch.equal(b.take(t), t[[0, 2]])
    with pytest.raises(ValueError, match="run axis"):
        b.take(torch.zeros(4, 2))
    bi = Batch(torch.tensor([0, 2]), torch.tensor([[1], [0]]), 3)
    assert torch.equal(bi.take(t), torch.tensor([[1.0], [4.0]]))


def test_logistic_matches_softplus_and_is_batch_invariant():
    g = torch.Generator().manual_seed(7)
    z = 4 * torch.randn(50, 13, generator=g, dtype=torch.float64)
    assert torch.allclose(logistic(z), torch.nn.functional.softplus(-z), atol=1e-15, rtol=0)
    assert torch.isfinite(logistic(torch.tensor([-800.0, 800.0], dtype=torch.float64))).all()

    def grad(zz):
        zz = zz.clone().requires_grad_(True)
        return torch.autograd.grad(logistic(zz).mean(-1).sum(), zz)[0]

    full = grad(z)
    for r in range(z.shape[0]):
        assert torch.equal(full[r], grad(z[r : r + 1])[0])


def test_batched_equals_one_by_one_over_a_long_run():
    """1500 GD steps of the max-pooling CNN: near-ties in the max would amplify any last-bit
    difference between batched and single runs; there must be none."""
    idx, y, W, a = _problem()
    kw = dict(optimizer="gd", lr=0.5, stop=StopRule(max_epochs=1500))
    res = train(_loss(idx, y), {"W": W, "a": a}, **kw)
    for r in (0, R - 1):
        one = train(_loss(idx[r : r + 1], y[r : r + 1]), {"W": W[r : r + 1], "a": a[r : r + 1]}, **kw)
        for name in ("W", "a"):
            assert torch.allclose(res.params[name][r], one.params[name][0], atol=1e-10, rtol=0)


# --- plan, optimizers, divergence, stop tolerance ------------------------------------------------


def test_plan_is_validated_up_front():
    from cnnbias.engine import Plan

    params = {"w": torch.zeros(3, 2, dtype=torch.float64)}
    plan = Plan.build(params, lr=0.1, stop=StopRule(max_epochs=3), optimizer="sgd", n_train=10, batch_size=4,
                      shuffle_seeds=[1, 2, 3])
    assert plan.minibatch and plan.steps_per_epoch == 3 and plan.R == 3 and not plan.fused
    assert Plan.build(params, lr=0.1, stop=StopRule(max_epochs=3)).fused
    with pytest.raises(ValueError, match="on_diverge='ignore'.*warn, raise"):
        Plan.build(params, lr=0.1, stop=StopRule(max_epochs=3), on_diverge="ignore")
    with pytest.raises(ValueError, match="adam_betas"):
        Plan.build(params, lr=0.1, stop=StopRule(max_epochs=3), adam_betas=(0.9, 1.0))


def test_optimizers_own_their_state_and_compact():
    from cnnbias.engine import GD, SGD, Adam

    p = {"w": torch.ones(3, 2, dtype=torch.float64)}
    g = {"w": torch.full((3, 2), 2.0, dtype=torch.float64)}
    GD(p, torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)).step(p, g)
    assert torch.allclose(p["w"][:, 0], torch.tensor([0.8, 0.6, 0.4], dtype=torch.float64))
    assert issubclass(SGD, GD)
    adam = Adam(p, torch.full((3,), 0.01, dtype=torch.float64))
    adam.step(p, g)
    assert adam.t == 1 and adam.m["w"].shape == (3, 2)
    adam.compact(torch.tensor([True, False, True]))
    assert adam.m["w"].shape == (2, 2) and adam.v["w"].shape == (2, 2) and adam.lr.shape == (2,)


def _blowup_problem():
    # loss w^2 per run: GD with lr > 1 diverges (|w| grows by |1 - 2 lr| per step), lr < 1 converges
    def loss_fn(p, b):
        return (p["w"] ** 2).sum(-1)

    return loss_fn, {"w": torch.ones(3, 1, dtype=torch.float64)}, torch.tensor([0.1, 400.0, 0.2])


def test_divergence_is_reported_per_run():
    loss_fn, params, lr = _blowup_problem()
    with pytest.warns(RuntimeWarning, match=r"1 of 3 runs diverged.*runs \[1\]"):
        res = train(loss_fn, params, lr=lr, stop=StopRule(max_epochs=400))
    assert res.stop_reason == ["max_epochs", "diverged", "max_epochs"]
    assert res.diverged.tolist() == [False, True, False]
    assert res.epochs[1] < 400 and res.epochs[0] == 400
    assert torch.isfinite(res.params["w"][[0, 2]]).all() and torch.isfinite(res.final_loss[[0, 2]]).all()
    with pytest.raises(FloatingPointError, match="runs \\[1\\]"):
        train(loss_fn, params, lr=lr, stop=StopRule(max_epochs=400), on_diverge="raise")
    # minibatch / eval_fn path: checked at each stop check
    with pytest.warns(RuntimeWarning, match="diverged"):
        res = train(loss_fn, params, lr=lr, stop=StopRule(max_epochs=400, check_every=7), eval_fn=loss_fn)
    assert res.stop_reason[1] == "diverged" and res.epochs[1] % 7 == 0


def test_minibatch_data_must_match_n_train():
    idx, y, W, a = _problem()
    kw = dict(optimizer="sgd", lr=0.1, stop=StopRule(max_epochs=2), n_train=M - 4, batch_size=5,
              shuffle_seeds=list(range(R)))
    with pytest.raises(ValueError, match=f"n_train={M - 4}.*exactly n_train"):
        train(_loss(idx, y), {"W": W, "a": a}, **kw)
    kw["n_train"] = M - 4
    res = train(_loss(idx[:, : M - 4], y[:, : M - 4]), {"W": W, "a": a}, **kw)  # the explicit subset
    assert res.epochs.tolist() == [2] * R


def test_loss_below_has_a_relative_tolerance():
    from cnnbias.engine import LOSS_RTOL

    # a loss that reaches the threshold 0.5 only up to its last bits still stops
    target = 0.5
    stop = StopRule(max_epochs=5, loss_below=target)
    just_above = torch.tensor([target * (1 + LOSS_RTOL / 10), target * (1 + 10 * LOSS_RTOL)], dtype=torch.float64)
    assert stop.reached_loss(just_above).tolist() == [True, False]
    assert StopRule(max_epochs=5, loss_below=0.0).reached_loss(torch.tensor([0.0, 1e-300], dtype=torch.float64)).tolist() == [True, False]


def test_check_labels():
    from cnnbias.engine import check_labels

    y = torch.tensor([1.0, -1.0, 1.0])
    assert check_labels(y) is y
    with pytest.raises(ValueError, match=r"ytr must contain only labels \+1 and -1.*0\.0"):
        check_labels(torch.tensor([1.0, 0.0]), "ytr")


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunked_steps_equal_one_batch_bit_for_bit(chunk):
    idx, y, W, a = _problem()
    lr = torch.tensor([0.5, 0.3, 2.0, 0.1, 0.8], dtype=torch.float64)
    kw = dict(optimizer="gd", lr=lr, stop=StopRule(max_epochs=120, loss_below=0.55, check_every=3))
    one = train(_loss(idx, y), {"W": W, "a": a}, chunk_runs=R, **kw)
    ch = train(_loss(idx, y), {"W": W, "a": a}, chunk_runs=chunk, **kw)
    assert len(set(one.epochs.tolist())) > 1  # runs stop at different epochs: compaction is exercised
    for name in ("W", "a"):
        assert torch.equal(one.params[name], ch.params[name])
    assert torch.equal(one.epochs, ch.epochs) and torch.equal(one.final_loss, ch.final_loss)
    assert one.stop_reason == ch.stop_reason


def test_automatic_chunks_and_chunk_validation(monkeypatch):
    import cnnbias.engine as eng

    idx, y, W, a = _problem()
    kw = dict(optimizer="gd", lr=0.5, stop=StopRule(max_epochs=30))
    ref = train(_loss(idx, y), {"W": W, "a": a}, chunk_runs=R, **kw)
    monkeypatch.setattr(eng, "CHUNK_BYTES", 1)  # one run per chunk
    auto = train(_loss(idx, y), {"W": W, "a": a}, **kw)
    assert torch.equal(ref.params["W"], auto.params["W"])
    with pytest.raises(ValueError, match="chunk_runs must be None"):
        train(_loss(idx, y), {"W": W, "a": a}, chunk_runs=0, **kw)


def test_nonfinite_initial_params_are_rejected():
    with pytest.raises(ValueError, match=r"params\['w'\] must be finite"):
        train(lambda p, b: p["w"].sum(-1), {"w": torch.tensor([[1.0], [float("nan")]])}, lr=0.1,
              stop=StopRule(max_epochs=2))
