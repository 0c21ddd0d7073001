"""Run a sweep: compute the cells missing from the store, serially or on a Dask cluster.

Executors:

- default: in this process, one cell after the other;
- ``workers=N``: a :class:`dask.distributed.LocalCluster` of N worker processes with one thread
  each (and ``CNNBIAS_THREADS=1``), started and stopped by :func:`run_sweep`;
- ``scheduler="tcp://host:port"``: an existing Dask cluster (``dask scheduler`` + ``dask worker``
  on several machines, or dask-jobqueue's ``SLURMCluster``); its workers must see the same results
  folder (a shared filesystem) and run the same code (checked per cell: a worker whose code version
  differs from the client's refuses the cell);
- ``client=``: a :class:`dask.distributed.Client` made by the caller.

Each cell is computed by :func:`compute_cell` on a worker, which writes it to the store itself
(atomically), so an interrupted sweep (Ctrl-C, SIGKILL, a lost worker or machine) loses at most the
cells in flight, and a rerun computes only what is missing.  Dask reschedules the cells of a
worker that dies.  A cell that raises is reported by name with its error; the other cells finish
and ``Summary.ok`` is False (the CLI exits with status 1).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cnnbias.sweeps import spec
from cnnbias.sweeps.store import CorruptResult, Store, provenance, read_file

__all__ = ["Failure", "Summary", "compute_cell", "run_sweep", "local_cluster", "progress_enabled"]


@dataclass(frozen=True)
class Failure:
    label: str
    key: str
    error: str
    detail: str = ""


@dataclass
class Summary:
    """What a run did: cells in total, computed now, reused from the store, failed; wall time."""

    sweep: str
    scale: str
    store: str
    cells: int = 0
    computed: int = 0
    reused: int = 0
    failures: list[Failure] = field(default_factory=list)
    wall_s: float = 0.0
    executor: str = "serial"

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def ok(self) -> bool:
        return not self.failures and self.computed + self.reused == self.cells

    def line(self) -> str:
        return (f"{self.sweep} [{self.scale}]: {self.cells} cells: {self.computed} computed, {self.reused} reused, "
                f"{self.failed} failed in {self.wall_s:.1f} s ({self.executor}; store {self.store})")

    def report(self) -> str:
        out = [f"FAILED {self.sweep} [{self.scale}] cell {f.label} (key {f.key}): {f.error}" for f in self.failures]
        return "\n".join(out + [self.line()])


def progress_enabled() -> bool:
    """Progress bars are on unless ``CNNBIAS_PROGRESS=0``."""
    return os.environ.get("CNNBIAS_PROGRESS", "").strip() != "0"


def _resolve_device(device: str | None, dtype: str | None):
    from cnnbias import config

    dev = config.device() if device is None else __import__("torch").device(device)
    if dtype is None:
        dt = config.dtype(dev)
    else:
        if dtype not in config.DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(config.DTYPES)}, got {dtype!r}")
        dt = getattr(__import__("torch"), dtype)
    return dev, dt


def compute_cell(name: str, scale: str, cfg: Mapping[str, Any], key: str, version: str, root: str,
                 device: str | None = None, dtype: str | None = None) -> dict:
    """Compute one cell and write it to the store at ``root`` (runs on a worker).

    ``device``/``dtype`` None: this process's :func:`cnnbias.config.device` / ``dtype`` (a worker on
    a GPU machine uses its GPU).  Raises when this process's code version of the sweep differs from
    ``version`` (the client's), so results are never filed under another code's key.
    """
    import cnnbias  # noqa: F401  (applies CNNBIAS_THREADS)

    sweep = spec.get(name)
    mine = sweep.code_version()
    if mine != version:
        raise RuntimeError(
            f"code version {mine} of sweep {name!r} on this worker differs from the client's {version}: "
            "workers must run the same library source as the client"
        )
    dev, dt = _resolve_device("cpu", "float64") if sweep.cpu_only else _resolve_device(device, dtype)
    t0 = time.perf_counter()
    result = sweep.cell_fn(dict(cfg), dev, dt)
    wall = time.perf_counter() - t0
    prov = provenance(dev.type, str(dt).replace("torch.", ""), wall)
    path = Store(root).write(sweep, scale, cfg, result, version, prov)
    if path.stem != key:
        raise RuntimeError(f"cell written under key {path.stem}, expected {key} (config changed in flight?)")
    return {"key": key, "wall_s": wall}


def local_cluster(n_workers: int, **kwargs):
    """A LocalCluster of ``n_workers`` processes with one thread each, ``CNNBIAS_THREADS=1``, HTTP server on a free port."""
    if int(n_workers) < 1:
        raise ValueError(f"workers must be >= 1, got {n_workers}")
    from distributed import LocalCluster

    env = {"CNNBIAS_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    opts = dict(n_workers=int(n_workers), threads_per_worker=1, processes=True, dashboard_address=":0",
                env=env, silence_logs=40)
    opts.update(kwargs)
    return LocalCluster(**opts)


def _tb(e: BaseException) -> str:
    return "".join(traceback.format_exception(type(e), e, e.__traceback__)[-4:])


def run_sweep(
    name: str,
    scale: str,
    *,
    store: Store | str | os.PathLike | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    client=None,
    select: Callable[[Mapping[str, Any]], bool] | None = None,
    device: str | None = None,
    dtype: str | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> Summary:
    """Compute the cells of sweep ``name`` at ``scale`` that the store lacks (``select``: only the
    cells whose config it accepts); returns a :class:`Summary`.  At most one of ``workers``,
    ``scheduler``, ``client``.  A corrupt stored cell is reported and recomputed."""
    if scale not in spec.SCALES:
        raise ValueError(f"scale must be one of {', '.join(spec.SCALES)}, got {scale!r}")
    if sum(x is not None for x in (workers, scheduler, client)) > 1:
        raise ValueError("give at most one of workers, scheduler, client")
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    sweep = spec.get(name)
    store = store if isinstance(store, Store) else Store(store)
    version = sweep.code_version()
    cfgs = [c for c in sweep.configs(scale) if select is None or select(c)]
    if not cfgs:
        raise ValueError(f"sweep {name!r} declares no cells at scale {scale!r} (selected)")
    t0 = time.perf_counter()
    summary = Summary(name, scale, str(store.root), cells=len(cfgs))
    todo = []
    for cfg in cfgs:
        key = sweep.key(scale, cfg, version)
        p = store.path(name, scale, key)
        if p.exists():
            try:
                read_file(p)
                summary.reused += 1
                continue
            except CorruptResult as e:
                log(f"WARNING {e}; recomputing it")
        todo.append((cfg, key))

    bar = None
    if todo and (progress_enabled() if progress is None else progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cfgs), initial=summary.reused, desc=f"{name} [{scale}]", unit="cell",
                   file=sys.stderr, dynamic_ncols=True)

    def done(cfg, key, err: BaseException | None) -> None:
        if err is None:
            summary.computed += 1
        else:
            f = Failure(sweep.cell_label(cfg), key, f"{type(err).__name__}: {err}", _tb(err))
            summary.failures.append(f)
            msg = f"FAILED {name} [{scale}] cell {f.label} (key {key}): {f.error}"
            (bar.write(msg, file=sys.stderr) if bar is not None else log(msg))
        if bar is not None:
            bar.update(1)

    try:
        if not todo:
            summary.executor = "nothing to compute"
        elif workers is None and scheduler is None and client is None:
            for cfg, key in todo:
                try:
                    compute_cell(name, scale, cfg, key, version, str(store.root), device, dtype)
                except Exception as e:  # noqa: BLE001  (reported, the other cells go on)
                    done(cfg, key, e)
                else:
                    done(cfg, key, None)
        else:
            summary.executor = _run_dask(name, scale, todo, version, store, workers, scheduler, client,
                                         device, dtype, done)
    finally:
        if bar is not None:
            bar.close()
        summary.wall_s = time.perf_counter() - t0
    return summary


def _run_dask(name, scale, todo, version, store, workers, scheduler, client, device, dtype, done) -> str:
    from distributed import Client, as_completed

    own_cluster = own_client = None
    try:
        if client is None:
            if workers is not None:
                own_cluster = local_cluster(workers)
                client = own_client = Client(own_cluster)
                what = f"dask LocalCluster, {workers} worker{'s' if workers != 1 else ''}"
            else:
                client = own_client = Client(scheduler)
                what = f"dask scheduler {scheduler}"
        else:
            what = f"dask client {client.scheduler.address}"
        futures = {}
        for cfg, key in todo:
            fut = client.submit(compute_cell, name, scale, cfg, key, version, str(store.root), device, dtype,
                                key=f"cnnbias-{name}-{scale}-{key}", pure=False, retries=0)
            futures[fut] = (cfg, key)
        for fut in as_completed(list(futures)):
            cfg, key = futures[fut]
            err = fut.exception()
            done(cfg, key, err)
            fut.release()
        return what
    finally:
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()
