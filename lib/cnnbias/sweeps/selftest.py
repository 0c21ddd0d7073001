"""Tiny sweeps that exercise the sweep machinery (used by the tests of the runner and its faults).

``selftest``: each cell trains R=4 logistic-regression runs (d=5, n=8, 50 full-batch GD steps) on
its own Gaussian data through :func:`cnnbias.engine.train` and returns the final weights and
losses.  ``CNNBIAS_SELFTEST_DELAY`` (seconds, default 0) makes each cell sleep first, so that a test
can interrupt a sweep mid-run; it is not part of the config (it does not change the result).
``selftest_fail``: the same, but the cell with ``fail=true`` raises.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import torch

from cnnbias import config
from cnnbias.engine import StopRule, logistic, train
from cnnbias.sweeps.spec import ClaimSpec, Sweep, register, register_claim

__all__ = ["selftest_cell", "SELFTEST", "SELFTEST_FAIL"]


def selftest_cell(cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype) -> dict:
    """R logistic-regression runs on Gaussian data, batched; returns weights [R, d] and losses [R]."""
    delay = float(os.environ.get("CNNBIAS_SELFTEST_DELAY", "0") or 0)
    if delay > 0:
        time.sleep(delay)
    if cfg.get("fail"):
        raise ValueError(f"selftest cell i={cfg['i']} fails on purpose")
    R, d, n = int(cfg["R"]), int(cfg["d"]), int(cfg["n"])
    gens = config.generators("sweeps/selftest", {"i": cfg["i"], "d": d, "n": n}, R)
    X = torch.stack([torch.randn(n, d, generator=g, dtype=torch.float64) for g in gens]).to(device, dtype)
    w0 = torch.stack([0.1 * torch.randn(d, generator=g, dtype=torch.float64) for g in gens]).to(device, dtype)
    w_true = torch.linspace(-1.0, 1.0, d, dtype=torch.float64).to(device, dtype)
    y = torch.sign(X @ w_true + 0.1)

    def loss(p, batch):
        Xb, yb = batch.take(X), batch.take(y)
        return logistic(yb * torch.einsum("rnd,rd->rn", Xb, p["w"])).mean(-1)

    res = train(loss, {"w": w0}, optimizer="gd", lr=0.5,
                stop=StopRule(max_epochs=int(cfg["steps"])))
    return {"w": res.params["w"].cpu().tolist(), "loss": res.final_loss.cpu().tolist(),
            "epochs": res.epochs.cpu().tolist()}


def _cells(n: int, fail: int | None = None) -> list[dict]:
    return [dict(i=i, R=4, d=5, n=8, steps=50, **({"fail": True} if i == fail else {})) for i in range(n)]


SELFTEST = register(Sweep(
    "selftest", selftest_cell, cells={"smoke": _cells(12), "book": _cells(2), "paper": _cells(2)},
    code=("cnnbias.engine", "cnnbias.config"),
    description="self-test of the sweep machinery (12 tiny logistic-regression cells)",
    label=lambda c: f"i={c['i']}",
))

SELFTEST_FAIL = register(Sweep(
    "selftest_fail", selftest_cell, cells={"smoke": _cells(4, fail=2), "book": [], "paper": []},
    code=("cnnbias.engine", "cnnbias.config"),
    description="self-test: 4 cells, the one with i=2 raises",
    label=lambda c: f"i={c['i']}",
))


def _loss_claim(cells, claims) -> None:
    losses = [v for _, res in cells for v in res["loss"]]
    claims.at_most("selftest.mean_loss", "self-test: mean final logistic loss of the selftest cells",
                   sum(losses) / len(losses), 0.5, paper="(none: a test of the machinery)")


SELFTEST_CLAIM = register_claim(ClaimSpec("selftest.mean_loss", "selftest", _loss_claim,
                                          select=lambda c: c["i"] < 3))
