"""Time the batched engine against loops over the same runs, robustly, beside this CPU's roofline.

Workload (issue "Speed"): R independent runs of the max-pooling CNN of Eq. (1) (max-pooling
paper), C channels, trained readout, logistic loss, full-batch GD for a fixed number of steps,
each run with its own training set from the distribution D (n one-hot patches per input, so
``w . x[j]`` is a gather).  Variants, all in this process, same dtype and device:

- ``engine``: :func:`cnnbias.engine.train`, all R runs as one tensor program (the compiled one-hot
  max-pool kernel when available, :mod:`cnnbias._ext`);
- ``engine-ref``: the same with the pure-torch reference max-pool (``CNNBIAS_KERNEL=ref``);
- ``loop``: the minimal per-run loop (``torch.autograd.grad``, ``w -= lr * grad``), one run at a
  time: the engine's arithmetic, so it must give the same parameters bit for bit (checked);
- ``loop-ref``: the minimal loop with the reference max-pool (the loop as it was before the kernel);
- ``optim``: the textbook per-run loop (``torch.optim.SGD``, ``zero_grad / backward / step``);
- ``func``: torch.func ensembling (``stack_module_state`` + ``functional_call`` + ``vmap(grad)``),
  the PyTorch-documented way to train many small models at once.

Variants are interleaved (each repetition times every variant once, in rotated order) and
repeated; wall and CPU time are printed as min and median (other processes share the cores: the
min is the least disturbed figure).  Loops are timed on ``--loop-runs`` runs and scaled to R.
Beside them: the roofline of this CPU (float64 matmul GFLOP/s, in-cache copy GB/s) and the
engine's op traffic per step (bytes read + written by every aten op and kernel call of one step)
against the unavoidable bytes (read and write the parameters, read the data once).

The last line is ``batched/loop speedup: X`` (engine against the minimal loop, min wall times).

    python benchmarks/engine.py                # R=100, C=100, m=12, 200 steps, 5 repetitions
    python benchmarks/engine.py --scaling      # markdown tables over R and m (for the README)
    python benchmarks/engine.py --profile      # torch.profiler op table of one engine step
    python benchmarks/engine.py --chunks       # engine time against the runs per chunk (CHUNK_BYTES)
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import torch
from cnnbias import _ext, config
from cnnbias.data import patterns
from cnnbias.engine import Batch, StopRule, logistic, train
from cnnbias.models import maxpool

VARIANTS = ("engine", "engine-ref", "loop", "loop-ref", "optim", "func")


def make_problem(R: int, C: int, m: int, n: int, d: int, dev, dt):
    """Per-run data and init: pattern indices [R, m, n], labels [R, m], W [R, C, d], a [R, C]."""
    cfg = {"R": R, "C": C, "m": m, "n": n, "d": d}
    gens = config.generators("benchmark-engine", cfg, R)
    idx, y = patterns.stack_runs(patterns.sample_D, gens, m=m, n=n, l=d)
    W = torch.stack([torch.randn(C, d, generator=g, dtype=torch.float64) * 0.1 for g in gens]).to(dt)
    a = torch.stack([torch.randn(C, generator=g, dtype=torch.float64) / C**0.5 for g in gens]).to(dt)
    return idx.to(dev), y.to(dev, dt), W.to(dev), a.to(dev)


def _kernel_env(ref: bool):
    """Context: force the reference max-pool path (or the default) for the duration."""

    class _Env:
        def __enter__(self):
            self.old = os.environ.get("CNNBIAS_KERNEL")
            os.environ["CNNBIAS_KERNEL"] = "ref" if ref else (self.old or "auto")

        def __exit__(self, *exc):
            if self.old is None:
                os.environ.pop("CNNBIAS_KERNEL", None)
            else:
                os.environ["CNNBIAS_KERNEL"] = self.old

    return _Env()


def run_engine(X, y, W, a, steps: int, lr: float, ref: bool = False, chunk_runs: int | None = None):
    def loss_fn(p, b: Batch):
        return logistic(b.take(y) * maxpool.forward(p["W"], p["a"], idx=b.take(X))).mean(-1)

    with _kernel_env(ref):
        res = train(loss_fn, {"W": W, "a": a}, optimizer="gd", lr=lr, stop=StopRule(max_epochs=steps),
                    chunk_runs=chunk_runs)
    return res.params


def run_loop(X, y, W, a, steps: int, lr: float, kind: str = "plain", ref: bool = False):
    """The runs one at a time.  ``kind="optim"``: the textbook loop (``torch.optim.SGD``);
    ``kind="plain"``: the minimal loop (``torch.autograd.grad``, ``w -= lr * grad``); ``ref``: with
    the reference max-pool path."""
    with _kernel_env(ref):
        return _run_loop(X, y, W, a, steps, lr, kind)


def _run_loop(X, y, W, a, steps, lr, kind):
    outW, outa = [], []
    for r in range(W.shape[0]):
        w = W[r : r + 1].clone().requires_grad_(True)
        ar = a[r : r + 1].clone().requires_grad_(True)
        opt = torch.optim.SGD([w, ar], lr=lr) if kind == "optim" else None
        for _ in range(steps):
            loss = logistic(y[r : r + 1] * maxpool.forward(w, ar, idx=X[r : r + 1])).mean()
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


class _Net(torch.nn.Module):
    """One run's network for torch.func: ``sum_c a_c relu(max_j W[c, idx[i, j]])``."""

    def __init__(self, W, a):
        super().__init__()
        self.W = torch.nn.Parameter(W.clone())
        self.a = torch.nn.Parameter(a.clone())

    def forward(self, idx):
        z = self.W.T[idx]  # [m, n, C]: gather, as the one-hot path
        return (torch.relu(z.amax(dim=1)) * self.a).sum(-1)


def run_func(X, y, W, a, steps: int, lr: float):
    """torch.func ensembling (PyTorch's "model ensembling" tutorial) with plain GD on the stack."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    models = [_Net(W[r], a[r]) for r in range(W.shape[0])]
    params, _ = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def loss(p, idx, yy):
        return logistic(yy * functional_call(base, p, (idx,))).mean()

    g = vmap(grad(loss))
    params = {k: v.detach() for k, v in params.items()}
    for _ in range(steps):
        gr = g(params, X, y)
        params = {k: params[k] - lr * gr[k] for k in params}
    return params


# --- measurement ----------------------------------------------------------------------------------


def _clock(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def roofline(dt=torch.float64) -> dict:
    """This CPU on one thread: float64 matmul GFLOP/s (n=384), in-cache copy GB/s (256 KiB)."""
    n = 384
    A, B = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
    C = torch.empty(n, n, dtype=dt)
    torch.mm(A, B, out=C)
    best = float("inf")
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(5):
            torch.mm(A, B, out=C)
        best = min(best, (time.perf_counter() - t) / 5)
    src, dst = torch.randn(32768, dtype=dt), torch.empty(32768, dtype=dt)
    bestc = float("inf")
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(200):
            dst.copy_(src)
        bestc = min(bestc, (time.perf_counter() - t) / 200)
    return {"gflops": 2 * n**3 / best / 1e9, "copy_gbs": 2 * src.nbytes / bestc / 1e9}


def traffic_per_step(X, y, W, a, lr: float) -> tuple[float, int]:
    """Bytes read + written by every aten op (and compiled-kernel call) in one engine step, and the
    number of ops: one step = the difference of 3 and 2 steps (warm-up and final check cancel)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    count = {"bytes": 0, "ops": 0}

    def nbytes(tree):
        tot = 0
        for t in torch.utils._pytree.tree_leaves(tree):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                tot += t.numel() * t.element_size()
        return tot

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.__name__ not in ("detach.default", "view.default", "_unsafe_view.default", "t.default",
                                     "transpose.int", "expand.default", "unsqueeze.default", "reshape.default",
                                     "permute.default", "slice.Tensor", "select.int", "alias.default",
                                     "as_strided.default", "squeeze.dim", "lift_fresh.default"):
                count["bytes"] += nbytes((args, kwargs)) + nbytes(out)
                count["ops"] += 1
            return out

    mod = _ext.maxpool_onehot()
    if mod is not None:

        class Proxy:
            def forward(self, *args):
                out = mod.forward(*args)
                count["bytes"] += nbytes(args) + nbytes(out)
                count["ops"] += 1
                return out

            def backward(self, *args):
                out = mod.backward(*args)
                count["bytes"] += nbytes(args) + nbytes(out)
                count["ops"] += 1
                return out

        _ext._state["mod"] = Proxy()
    res = []
    try:
        for steps in (2, 3):
            count.update(bytes=0, ops=0)
            with Count():
                run_engine(X, y, W, a, steps, lr)
            res.append((count["bytes"], count["ops"]))
    finally:
        if mod is not None:
            _ext._state["mod"] = mod
    return res[1][0] - res[0][0], res[1][1] - res[0][1]


def unavoidable_bytes(X, y, W, a) -> int:
    """Read and write every parameter once per step, read the data (indices, labels) once."""
    return 2 * (W.nbytes + a.nbytes) + X.nbytes + y.nbytes


def measure(args, R: int, m: int, variants, reps: int, loop_runs: int, check: bool = True) -> dict:
    """Interleaved, repeated timings: {variant: (wall list, cpu list)} scaled to R runs."""
    dev, dt = config.device(), config.dtype()
    X, y, W, a = make_problem(R, args.channels, m, args.n, args.d, dev, dt)
    L = min(loop_runs, R)
    fns = {
        "engine": lambda: run_engine(X, y, W, a, args.steps, args.lr),
        "engine-ref": lambda: run_engine(X, y, W, a, args.steps, args.lr, ref=True),
        "loop": lambda: run_loop(X[:L], y[:L], W[:L], a[:L], args.steps, args.lr, "plain"),
        "loop-ref": lambda: run_loop(X[:L], y[:L], W[:L], a[:L], args.steps, args.lr, "plain", ref=True),
        "optim": lambda: run_loop(X[:L], y[:L], W[:L], a[:L], args.steps, args.lr, "optim"),
        "func": lambda: run_func(X, y, W, a, args.steps, args.lr),
    }
    scale = {"loop": R / L, "loop-ref": R / L, "optim": R / L}
    # warm-up (and the exactness checks)
    outs = {}
    for v in variants:
        outs[v] = fns[v]()
    if check and "engine" in outs:
        pe = outs["engine"]
        for v in ("engine-ref", "loop", "loop-ref"):
            if v in outs:
                err = max(float((pe[k][: outs[v][k].shape[0]] - outs[v][k]).abs().max()) for k in ("W", "a"))
                if err != 0.0:
                    raise SystemExit(f"engine and {v} parameters differ (max {err:.2e}); they must agree bit for bit")
        if "func" in outs:
            errf = max(float((pe[k] - outs["func"][k]).abs().max()) for k in ("W", "a"))
            print(f"  torch.func vs engine: max |difference| of final parameters {errf:.1e} (its own rounding)")
    times = {v: ([], []) for v in variants}
    for rep in range(reps):
        order = list(variants[rep % len(variants) :]) + list(variants[: rep % len(variants)])
        for v in order:
            _, w, c = _clock(fns[v])
            times[v][0].append(w * scale.get(v, 1.0))
            times[v][1].append(c * scale.get(v, 1.0))
    return {"times": times, "problem": (X, y, W, a)}


def summarize(times: dict, steps: int, R: int) -> dict:
    rows = {}
    for v, (w, c) in times.items():
        rows[v] = {
            "wall_min": min(w),
            "wall_med": statistics.median(w),
            "cpu_min": min(c),
            "cpu_med": statistics.median(c),
        }
    return rows


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--channels", type=int, default=100)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--m", type=int, default=12, help="training points per run")
    ap.add_argument("--n", type=int, default=4, help="patches per input")
    ap.add_argument("--d", type=int, default=20, help="pattern dimension")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--reps", type=int, default=5, help="interleaved repetitions")
    ap.add_argument("--loop-runs", type=int, default=20, help="time the loops on this many runs, scale to R")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {VARIANTS}")
    ap.add_argument("--scaling", action="store_true", help="markdown tables over R and m")
    ap.add_argument("--profile", action="store_true", help="torch.profiler op table of the engine")
    ap.add_argument("--chunks", action="store_true", help="engine time against runs per chunk")
    args = ap.parse_args(argv)
    for name in ("runs", "channels", "m", "n", "d", "steps", "reps", "loop_runs"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1")
    if args.n >= args.d:
        raise SystemExit("--n must be < --d")
    variants = tuple(v for v in args.variants.split(",") if v)
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise SystemExit(f"--variants: unknown {bad}; allowed: {', '.join(VARIANTS)}")
    config.apply_threads()
    print(f"{config.describe()} threads={torch.get_num_threads()} cpu={torch.backends.cpu.get_cpu_capability()}")
    print(f"max-pool path: {_ext.status()}")
    roof = roofline()
    print(f"roofline (1 thread): float64 matmul {roof['gflops']:.1f} GFLOP/s, in-cache copy {roof['copy_gbs']:.1f} GB/s")

    if args.profile:
        return profile(args)
    if args.chunks:
        return chunks(args)
    if args.scaling:
        return scaling(args, roof)

    R = args.runs
    print(
        f"workload: R={R} runs, C={args.channels} channels, m={args.m}, n={args.n}, d={args.d}, one-hot patterns, "
        f"{args.steps} GD steps, float64; {args.reps} interleaved repetitions, loops timed on "
        f"{min(args.loop_runs, R)} runs and scaled"
    )
    res = measure(args, R, args.m, variants, args.reps, args.loop_runs)
    rows = summarize(res["times"], args.steps, R)
    base = rows.get("engine")
    print("| variant | wall min (s) | wall median (s) | CPU min (s) | CPU median (s) | ms/step (min) | "
          "variant / engine (min, median) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for v, r in rows.items():
        ratio = f"{r['wall_min'] / base['wall_min']:.1f}, {r['wall_med'] / base['wall_med']:.1f}" if base else "-"
        print(f"| {v} | {r['wall_min']:.3f} | {r['wall_med']:.3f} | {r['cpu_min']:.3f} | {r['cpu_med']:.3f} | "
              f"{r['wall_min'] / args.steps * 1e3:.2f} | {ratio} |")
    X, y, W, a = res["problem"]
    if "engine" in rows:
        traffic, nops = traffic_per_step(X, y, W, a, args.lr)
        need = unavoidable_bytes(X, y, W, a)
        t_step = rows["engine"]["wall_min"] / args.steps
        print(f"engine op traffic per step: {nops} ops, {traffic / 1e6:.2f} MB; unavoidable {need / 1e6:.2f} MB "
              f"({traffic / need:.1f}x); achieved {traffic / t_step / 1e9:.1f} GB/s of op traffic "
              f"(in-cache copy: {roof['copy_gbs']:.1f} GB/s); floor at copy speed {need / roof['copy_gbs'] / 1e6:.3f} "
              f"ms/step vs {t_step * 1e3:.3f} ms/step measured ({t_step / (need / roof['copy_gbs'] / 1e9):.0f}x)")
    if "engine" in rows and "loop" in rows:
        speed = rows["loop"]["wall_min"] / rows["engine"]["wall_min"]
        extra = []
        for v in ("loop-ref", "optim", "func", "engine-ref"):
            if v in rows:
                extra.append(f"{v} {rows[v]['wall_min'] / rows['engine']['wall_min']:.1f}x")
        print(f"engine speedup (min wall) vs: {', '.join(extra)}")
        print(f"batched/loop speedup: {speed:.1f}")
        return speed
    return float("nan")


def scaling(args, roof) -> float:
    """Markdown tables: engine (kernel, reference) and the minimal loop over R (m fixed) and m (R fixed)."""
    variants = ("engine", "engine-ref", "loop", "loop-ref")
    out = []
    for title, grid in (
        (f"R at m = {args.m}", [(R, args.m) for R in (1, 10, 100, 1000)]),
        (f"m at R = {args.runs}", [(args.runs, m) for m in (12, 40, 100)]),
        ("large batch", [(1000, 100)]),
    ):
        lines = [f"\n**{title}** (C={args.channels}, n={args.n}, d={args.d}, {args.steps} steps, float64, "
                 f"min / median wall of {args.reps} interleaved repetitions)\n",
                 "| R | m | [R,m,C] MB | engine ms/step | engine-ref ms/step | loop ms/step | loop-ref ms/step | "
                 "loop / engine | loop-ref / engine-ref |", "| --- " * 9 + "|"]
        for R, m in grid:
            steps = args.steps if R * m <= 12000 else max(20, args.steps // 10)
            a2 = copy.copy(args)
            a2.steps = steps
            res = measure(a2, R, m, variants, args.reps, min(args.loop_runs, 5 if R * m > 12000 else 20))
            rows = summarize(res["times"], steps, R)

            def ms(v, rows=rows, steps=steps):
                return f"{rows[v]['wall_min'] / steps * 1e3:.2f} / {rows[v]['wall_med'] / steps * 1e3:.2f}"

            mb = R * m * args.channels * 8 / 1e6
            lines.append(
                f"| {R} | {m} | {mb:.1f} | {ms('engine')} | {ms('engine-ref')} | {ms('loop')} | {ms('loop-ref')} | "
                f"{rows['loop']['wall_min'] / rows['engine']['wall_min']:.1f} | "
                f"{rows['loop-ref']['wall_min'] / rows['engine-ref']['wall_min']:.1f} |"
            )
            print(lines[-1], flush=True)
        out.extend(lines)
    print("\n".join(out))
    return float("nan")


def chunks(args) -> float:
    """Engine ms/step against the runs per chunk (interleaved, repeated), for R x m problems."""
    import cnnbias.engine as eng

    dev, dt = config.device(), config.dtype()
    print(f"automatic: CHUNK_BYTES = {eng.CHUNK_BYTES / 2**20:.0f} MiB of saved activations per chunk")
    for R, m in ((args.runs, args.m), (1000, 100), (1000, 12)):
        X, y, W, a = make_problem(R, args.channels, m, args.n, args.d, dev, dt)
        steps = max(5, args.steps * 1200 // (R * m))
        sizes = sorted({s for s in (1, 5, 10, 20, 50, 100, 200, 500, R) if s <= R}) + [None]
        t = {s: [] for s in sizes}
        for s in sizes:
            run_engine(X, y, W, a, 2, args.lr, chunk_runs=s)
        for rep in range(args.reps):
            for s in sizes[rep % len(sizes) :] + sizes[: rep % len(sizes)]:
                _, w, _ = _clock(lambda s=s, p=(X, y, W, a), k=steps: run_engine(*p, k, args.lr, chunk_runs=s))
                t[s].append(w / steps * 1e3)
        print(f"\nR={R}, m={m}, [R,m,C] = {R * m * args.channels * 8 / 1e6:.1f} MB, {steps} steps: "
              "ms/step min / median")
        print("| runs per chunk | " + " | ".join("auto" if s is None else str(s) for s in sizes) + " |")
        print("| --- " * (len(sizes) + 1) + "|")
        print("| ms/step | " + " | ".join(f"{min(v):.2f} / {statistics.median(v):.2f}" for v in t.values()) + " |")
    return float("nan")


def profile(args) -> float:
    """torch.profiler op table of the engine (kernel path) at the given size."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    dev, dt = config.device(), config.dtype()
    X, y, W, a = make_problem(args.runs, args.channels, args.m, args.n, args.d, dev, dt)
    run_engine(X, y, W, a, 5, args.lr)
    for ref in (False, True):
        with prof(activities=[ProfilerActivity.CPU]) as p:
            run_engine(X, y, W, a, args.steps, args.lr, ref=ref)
        print(f"\n{'reference' if ref else 'kernel'} path, {args.steps} steps:")
        print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=18, max_name_column_width=38))
    return float("nan")


if __name__ == "__main__":
    main()
