"""Time the batched engine against a plain Python loop over the same runs.

Workload (issue 2): R independent runs of the max-pooling CNN of Eq. (1) (max-pooling paper),
C channels, trained readout, logistic loss, full-batch GD for a fixed number of steps, each run
with its own training set from the distribution D (n patches per input).  Patterns are one-hot by
default, as in the PSI experiments, so ``w . x[j]`` is a gather (``--patterns orthogonal`` uses
dense Haar-random orthogonal patterns and a batched matrix product instead).

- *batched*: :func:`cnnbias.engine.train` trains all R runs as one tensor program;
- *loop*: for r = 1..R, the textbook PyTorch loop (``torch.optim.SGD``), one run at a time, on the
  same data and initialization; also a minimal loop (``torch.autograd.grad``, ``w -= lr * grad``).

Both run in the same process, the same dtype and device; the script checks that the minimal loop,
which updates with the engine's arithmetic, gives the same final parameters (torch.optim's update
rounds differently in the last bit, and over thousands of steps a near-tie in a max can amplify
that, so that difference is only printed), then prints wall times, peak memory and, as its last line,
``batched/loop speedup: <x>`` (against the textbook loop; the line before gives the minimal loop's).

The default size is that of the XORD paper's Fig. 1 (100 runs per channel count, 6 + 6 training
points of 4 patches): the figures of these papers average many *small* trainings, and that is
where one batched program beats a loop most.  The speedup falls as each run's own arithmetic
grows (``--m 40``: about 3x on 2 cores) and rises for smaller models (``--channels 20``: about
30x); README.md lists measured values.

    python benchmarks/engine.py            # R=100, C=100, m=12, 2000 steps
    python benchmarks/engine.py --quick    # R=100, C=100, 200 steps (< 1 minute on 2 cores)
    CNNBIAS_DEVICE=cuda python benchmarks/engine.py --runs 1000
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from cnnbias import config
from cnnbias.data import patterns
from cnnbias.engine import Batch, StopRule, logistic, train
from cnnbias.models import maxpool


def make_problem(R: int, C: int, m: int, n: int, d: int, dev, dt, kind: str = "onehot"):
    """Per-run data and init; inputs are pattern indices [R, m, n] (one-hot) or dense [R, m, n, d]."""
    cfg = {"R": R, "C": C, "m": m, "n": n, "d": d}
    gens = config.generators("benchmark-engine", cfg, R)
    idx, y = patterns.stack_runs(patterns.sample_D, gens, m=m, n=n, l=d)
    if kind == "onehot":
        X = idx
    else:
        O = patterns.orthogonal_patterns(d, d, torch.Generator().manual_seed(0)).to(dt)
        X = patterns.embed(idx, O)
    W = torch.stack([torch.randn(C, d, generator=g, dtype=torch.float64) * 0.1 for g in gens]).to(dt)
    a = torch.stack([torch.randn(C, generator=g, dtype=torch.float64) / C**0.5 for g in gens]).to(dt)
    return X.to(dev), y.to(dev, dt), W.to(dev), a.to(dev)


def _net(W, a, X):
    return maxpool.forward(W, a, idx=X) if X.dtype == torch.int64 else maxpool.forward(W, a, X=X)


def run_batched(X, y, W, a, steps: int, lr: float):
    def loss_fn(p, b: Batch):
        return logistic(b.take(y) * _net(p["W"], p["a"], b.take(X))).mean(-1)

    res = train(loss_fn, {"W": W, "a": a}, optimizer="gd", lr=lr, stop=StopRule(max_epochs=steps))
    return res.params


def run_loop(X, y, W, a, steps: int, lr: float, kind: str = "optim"):
    """The same runs one at a time.  ``kind="optim"``: the textbook loop (``torch.optim.SGD``,
    ``zero_grad / backward / step``); ``kind="plain"``: a minimal loop (``torch.autograd.grad`` and
    ``w -= lr * grad``), which saves the optimizer's bookkeeping."""
    outW, outa = [], []
    for r in range(W.shape[0]):
        w = W[r : r + 1].clone().requires_grad_(True)
        ar = a[r : r + 1].clone().requires_grad_(True)
        opt = torch.optim.SGD([w, ar], lr=lr) if kind == "optim" else None
        for _ in range(steps):
            loss = logistic(y[r : r + 1] * _net(w, ar, X[r : r + 1])).mean()
            if opt is not None:
                opt.zero_grad()
                loss.backward()
                opt.step()
            else:
                gw, ga = torch.autograd.grad(loss, (w, ar))
                with torch.no_grad():
                    w.sub_(lr * gw)
                    ar.sub_(lr * ga)
        outW.append(w.detach())
        outa.append(ar.detach())
    return {"W": torch.cat(outW), "a": torch.cat(outa)}


def timed(fn, dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="200 steps instead of 2000")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--channels", type=int, default=100)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--m", type=int, default=12, help="training points per run")
    ap.add_argument("--n", type=int, default=4, help="patches per input")
    ap.add_argument("--d", type=int, default=20, help="pattern dimension")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--patterns", choices=("onehot", "orthogonal"), default="onehot")
    ap.add_argument("--loop-runs", type=int, default=None, help="time the loop on this many runs and extrapolate")
    args = ap.parse_args(argv)
    for name in ("runs", "channels", "m", "n", "d"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be >= 1")
    if args.n >= args.d:
        raise SystemExit("--n must be < --d")
    steps = args.steps or (200 if args.quick else 2000)
    dev, dt = config.device(), config.dtype()
    X, y, W, a = make_problem(args.runs, args.channels, args.m, args.n, args.d, dev, dt, args.patterns)
    print(f"{config.describe()} threads={torch.get_num_threads()}")
    print(
        f"workload: R={args.runs} runs, C={args.channels} channels, m={args.m}, n={args.n}, d={args.d}, "
        f"{args.patterns} patterns, {steps} GD steps"
    )

    run_batched(X[:2], y[:2], W[:2], a[:2], 3, args.lr)  # warm-up
    pb, tb = timed(lambda: run_batched(X, y, W, a, steps, args.lr), dev)
    print(f"batched: {tb:8.2f} s  ({tb / steps * 1e3:.2f} ms/step for all runs)")

    L = args.loop_runs or args.runs
    note = f" (measured on {L} runs, scaled to {args.runs})" if L != args.runs else ""
    tol = 1e-9 if dt == torch.float64 else 1e-3
    loops = {}
    for kind in ("optim", "plain"):
        pl, tl = timed(lambda kind=kind: run_loop(X[:L], y[:L], W[:L], a[:L], steps, args.lr, kind), dev)
        loops[kind] = tl * args.runs / L
        print(f"loop ({kind}): {loops[kind]:8.2f} s  ({tl / (L * steps) * 1e6:.0f} us/step per run){note}")
        err = max(float((pb[k][:L] - pl[k]).abs().max()) for k in ("W", "a"))
        if kind == "plain":  # the engine's own arithmetic (w - lr * g): must agree
            print(f"  max |batched - loop| over final parameters: {err:.2e} (tolerance {tol:.0e})")
            if not err <= tol:
                raise SystemExit("batched and loop results differ")
        else:  # torch.optim rounds its update differently; a near-tie in a max can amplify that
            print(f"  max |batched - loop| over final parameters: {err:.2e} (different update rounding)")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    line = f"peak memory: process RSS {peak_rss:.0f} MiB"
    if dev.type == "cuda":
        line += f", CUDA allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
    print(line)
    print(f"batched/plain-loop speedup: {loops['plain'] / tb:.1f}")
    speedup = loops["optim"] / tb
    print(f"batched/loop speedup: {speedup:.1f}")
    return speedup


if __name__ == "__main__":
    main()
