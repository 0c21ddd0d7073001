"""Command line: ``python -m cnnbias sweep|reproduce|list ...``.

- ``sweep <experiment> [--scale paper] [--workers N | --scheduler ADDRESS]``: compute the cells of a
  sweep that the results store lacks (a rerun reuses finished cells); prints a progress bar
  (``CNNBIAS_PROGRESS=0``: none) and a one-line summary; exit status 1 when a cell failed.
- ``reproduce <claim id> [--scale paper] [...]``: run (or reuse) exactly the cells behind a claim and
  print the claim's line and JSON record at that scale; a claim without a sweep is computed by its
  chapter, so a copy of that chapter is executed at the scale (the stored notebook is untouched) and
  the claim's record is printed with how it compares with the stored one.
- ``list``: the sweeps with their cells per scale and how many are in the store, and the claims.
- ``index``: write ``results/sweeps.json``, the index of declared sweeps read by the book's cost table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from cnnbias.sweeps import spec

SCALES = spec.SCALES


def _sweep_epilog() -> str:
    lines = ["experiments (sweeps):"]
    for sw in spec.sweeps():
        n = "/".join(str(len(sw.configs(s))) for s in SCALES)
        lines.append(f"  {sw.name:<26} {sw.description} [cells smoke/book/paper: {n}]")
    runs = _whole_chapter_runs()
    if runs:
        lines.append("experiments run as whole chapters (CPU minutes at paper scale; "
                     "python -m booktools chapter-run --scale SCALE CHAPTER):")
        for nb, scale, wall in runs:
            lines.append(f"  {nb:<46} stored: {scale} ({wall:.0f} s)")
    return "\n".join(lines)


def _whole_chapter_runs() -> list[tuple[str, str, float]]:
    """``(chapter, scale, wall seconds)`` of the stored whole-chapter runs (``results/chapters/*.json`` of the
    repository; read as JSON, so this needs neither booktools nor the notebooks' kernel)."""
    root = _repo_root()
    if root is None:
        return []
    out = []
    for path in sorted((root / "results" / "chapters").glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            out.append((str(data["notebook"]), str(data["scale"]), float(data["provenance"]["wall_s"])))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a chapter-run record file ({type(e).__name__}: {e})") from None
    return out


def _claims_epilog() -> str:
    lines = ["claims with a sweep (computed from its cells):"]
    swept = set(spec.claim_ids())
    for cid in sorted(swept):
        lines.append(f"  {cid:<34} (sweep {spec.get_claim(cid).sweep})")
    root = _repo_root()
    try:
        from booktools.reproduce import chapter_claim_ids

        chapters = chapter_claim_ids(root) if root is not None else {}
    except (ImportError, ValueError, FileNotFoundError):
        chapters = {}
    if chapters:
        lines.append("claims computed by a chapter (reproduce executes a copy of the chapter at the scale):")
        for cid, nb in sorted(chapters.items()):
            if cid not in swept:
                lines.append(f"  {cid:<34} ({nb.as_posix()})")
    return "\n".join(lines)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", choices=SCALES, default=None,
                   help="smoke | book | paper (default: CNNBIAS_SCALE, else book)")
    ex = p.add_mutually_exclusive_group()
    ex.add_argument("--workers", type=int, metavar="N",
                    help="start a Dask LocalCluster of N worker processes (1 thread each) on this machine")
    ex.add_argument("--scheduler", metavar="ADDRESS",
                    help="use a running Dask cluster, e.g. tcp://10.0.0.1:8786 (workers must share the store)")
    p.add_argument("--store", metavar="DIR", default=None,
                   help="results folder (default: CNNBIAS_RESULTS, else results/ at the repository root)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="device for every cell (default: each worker's CNNBIAS_DEVICE, else CUDA when available)")
    p.add_argument("--dtype", choices=("float64", "float32"), default=None,
                   help="dtype (default: float64 on CPU, float32 on CUDA; CNNBIAS_DTYPE)")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="python -m cnnbias", description=__doc__.split("\n\n")[0], formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{sweep,reproduce,list,index}")
    ps = sub.add_parser("sweep", help="compute (or reuse) the cells of an experiment's sweep",
                        description="Compute the cells of a sweep that the results store lacks.",
                        epilog=_sweep_epilog(), formatter_class=fmt)
    ps.add_argument("experiment", help="a sweep name (listed below)")
    _add_run_options(ps)
    ps.add_argument("--dry-run", action="store_true", help="only say which cells are stored and which are missing")
    ps.add_argument("--prune", action="store_true",
                    help="after the sweep, delete stored files of other configs or older code versions")
    ps.add_argument("--only", action="append", metavar="KEY=VALUE", default=None,
                    help="only the cells whose config has KEY equal to VALUE (a JSON value, else a string; "
                         "repeat to require several), e.g. --only part=sgdl")
    pr = sub.add_parser("reproduce", help="run or reuse the cells behind a claim and print its record",
                        description="Run (or reuse) exactly the cells behind a claim; print the claim's record.",
                        epilog=_claims_epilog(), formatter_class=fmt)
    pr.add_argument("claim", help="a claim id (listed below)")
    _add_run_options(pr)
    pl = sub.add_parser("list", help="sweeps, their cells per scale and what the store holds; claims")
    pl.add_argument("--store", metavar="DIR", default=None)
    pi = sub.add_parser("index", help="write the index of declared sweeps (results/sweeps.json) read by the book's "
                        "cost table", description="Write the index of the declared sweeps: cells per scale and the "
                        "keys of the current paper-scale cells (cnnbias.sweeps.index).")
    pi.add_argument("--store", metavar="DIR", default=None,
                    help="results folder (default: CNNBIAS_RESULTS, else results/ at the repository root)")
    return parser


def _scale(args) -> str:
    if args.scale:
        return args.scale
    from cnnbias import config

    return config.scale()


def _run(args, name: str, scale: str, select=None):
    from cnnbias.sweeps.runner import run_sweep

    return run_sweep(name, scale, store=args.store, workers=args.workers, scheduler=args.scheduler,
                     select=select, device=args.device, dtype=args.dtype)


def _cmd_sweep(args) -> int:
    from cnnbias.sweeps.store import Store

    sw = spec.get(args.experiment)
    scale = _scale(args)
    if not sw.configs(scale):
        print(f"sweep {sw.name!r} declares no cells at scale {scale!r}", file=sys.stderr)
        return 2
    select = _only_filter(args.only, sw.configs(scale))
    if select is not None and not any(select(c) for c in sw.configs(scale)):
        print(f"--only {' '.join(args.only)}: no cell of {sw.name!r} at scale {scale!r} matches", file=sys.stderr)
        return 2
    if args.dry_run:
        st = Store(args.store).status(sw, scale)
        keep = select or (lambda c: True)
        missing = [c for c in st["missing"] if keep(c)]
        corrupt = [(c, m) for c, m in st["corrupt"] if keep(c)]
        done = [c for c in st["done"] if keep(c)]
        print(f"{sw.name} [{scale}]: {len(done)} stored, {len(missing)} missing, "
              f"{len(corrupt)} corrupt, {st['stale']} stale files (other configs or code versions)")
        for cfg in missing:
            print(f"  missing: {sw.cell_label(cfg)}")
        for cfg, msg in corrupt:
            print(f"  corrupt: {sw.cell_label(cfg)}: {msg}")
        return 0
    summary = _run(args, sw.name, scale, select=select)
    print(summary.report())
    if args.prune and summary.ok:
        gone = Store(args.store).prune(sw, scale)
        print(f"pruned {len(gone)} stale file(s) of {sw.name} [{scale}]")
    return 0 if summary.ok else 1


def _only_filter(only: list[str] | None, configs: list[dict]):
    """The cell filter of ``--only KEY=VALUE`` options (all must hold), or None without any.  A key that no
    cell of the sweep has is an error naming the keys it does have."""
    if not only:
        return None
    keys = sorted({k for c in configs for k in c})
    conds = []
    for item in only:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--only expects KEY=VALUE, got {item!r}")
        if key not in keys:
            raise SystemExit(f"--only {item}: no cell has the key {key!r}; the cells' keys are {', '.join(keys)}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        conds.append((key, value))
    return lambda c: all(k in c and (c[k] == v or str(c[k]) == str(v)) for k, v in conds)


def _repo_root():
    """The repository holding this package (the folder with ``_toc.yml``), or None (an installed copy)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    return root if (root / "_toc.yml").is_file() and (root / "book").is_dir() else None


def _cmd_reproduce(args) -> int:
    from cnnbias.sweeps.reproduce import claim_from_store

    spec.discover()
    if args.claim not in spec.claim_ids():
        return _reproduce_chapter_claim(args)
    cs = spec.get_claim(args.claim)
    scale = _scale(args)
    summary = _run(args, cs.sweep, scale, select=cs.select)
    print(summary.report(), file=sys.stderr)
    if not summary.ok:
        print(f"claim {args.claim}: not computed, {summary.failed} cell(s) failed", file=sys.stderr)
        return 1
    claim, _ = claim_from_store(args.claim, scale, args.store)
    print(claim.line())
    print(f"    {claim.statement}")
    print(json.dumps(claim.record(), indent=2, sort_keys=True))
    return 0


def _reproduce_chapter_claim(args) -> int:
    """A claim without a sweep is computed by its chapter: execute a copy of it at the scale (the
    repository's ``booktools`` runs notebooks; the stored chapter is untouched)."""
    root = _repo_root()
    try:
        from booktools.__main__ import print_reproduced
        from booktools.reproduce import chapter_claim_ids
    except ImportError:
        root = None
    if root is None or args.claim not in chapter_claim_ids(root):
        where = "no chapter records it" if root is not None else "chapters need the book's repository"
        raise LookupError(f"unknown claim {args.claim!r}: no sweep declares it and {where} "
                          "(python -m cnnbias reproduce --help lists the claims)")
    if args.workers or args.scheduler or args.store:
        raise ValueError(f"claim {args.claim!r} has no sweep (its chapter computes it): --workers, --scheduler "
                         "and --store apply only to claims with a sweep")
    return print_reproduced(args.claim, _scale(args), root, device=args.device, dtype=args.dtype)


def _cmd_list(args) -> int:
    from cnnbias.sweeps.store import Store

    store = Store(args.store)
    print(f"store: {store.root}")
    for sw in spec.sweeps():
        parts = []
        for s in SCALES:
            n = len(sw.configs(s))
            if n:
                st = store.status(sw, s)
                parts.append(f"{s} {len(st['done'])}/{n}" + (f" ({len(st['corrupt'])} corrupt)" if st["corrupt"] else ""))
        print(f"{sw.name:<22} code {sw.code_version()}  stored: {', '.join(parts)}")
        for cs in spec.claims_of(sw.name):
            print(f"    claim {cs.id}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "sweep":
            return _cmd_sweep(args)
        if args.command == "reproduce":
            return _cmd_reproduce(args)
        if args.command == "index":
            from cnnbias.sweeps.index import write_index

            print(f"index: wrote {write_index(args.store)}")
            return 0
        return _cmd_list(args)
    except KeyboardInterrupt:
        print("interrupted: finished cells are in the store; rerun the same command to resume", file=sys.stderr)
        return 130
    except (ValueError, LookupError, RuntimeError) as e:
        if os.environ.get("CNNBIAS_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
