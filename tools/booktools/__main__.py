"""Command line of the book tooling (used by the Makefile)::

    python -m booktools list                       # notebooks in execution order
    python -m booktools execute [--jobs N] [NB ...] # execute in place (appendix last), record times
    python -m booktools cache [--jobs N]          # fill jupyter-book's execution cache in parallel
    python -m booktools claims                     # the claims records of every chapter, as text
    python -m booktools fix-fences FILE ...        # ```{prf:..} titles with roles -> :::{prf:..}
    python -m booktools reproduce ID [--scale S]   # execute a copy of a claim's chapter, print its record
    python -m booktools costs                      # write book/appendix/paper_costs.csv (store + benchmark)
    python -m booktools chapter-run NB [--scale S]  # run a chapter at a scale, store its claim records
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from booktools.claims import book_claims, claims_counts
from booktools.execute import TIMINGS_PATH, ExecutionFailed, execute_notebooks
from booktools.lint import fix_fences
from booktools.toc import execution_order, is_appendix, repo_root


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m booktools", description="Tools of the executable book.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="print the notebooks in execution order")
    ex = sub.add_parser("execute", help="execute notebooks in place and record their wall times")
    ex.add_argument("notebooks", nargs="*", help="notebooks to execute (default: all; the appendix always last)")
    ex.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    ex.add_argument("--jobs", type=int, default=int(os.environ.get("BOOK_JOBS", "2")),
                    help="notebooks executed at once (default: $BOOK_JOBS or 2)")
    ex.add_argument("--timings", default=str(TIMINGS_PATH), help="timings CSV, relative to the root")
    ca = sub.add_parser("cache", help="execute the chapters missing from jupyter-book's cache, in parallel")
    ca.add_argument("--jobs", type=int, default=int(os.environ.get("BOOK_JOBS", "2")), help="notebooks at once")
    ca.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    sub.add_parser("claims", help="print the claims records found in the chapters' stored outputs")
    ff = sub.add_parser("fix-fences", help="rewrite ```{directive} titles with roles as :::{directive} (in place)")
    ff.add_argument("files", nargs="+", help="notebooks or markdown files")
    rp = sub.add_parser("reproduce", help="execute a copy of the chapter holding a claim; print the claim's record")
    rp.add_argument("claim", help="a claim id recorded in a chapter")
    rp.add_argument("--scale", choices=("smoke", "book", "paper"), default="book")
    rp.add_argument("--device", choices=("cpu", "cuda"), default=None)
    rp.add_argument("--dtype", choices=("float64", "float32"), default=None)
    rp.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    sub.add_parser("costs", help="write the appendix's paper-scale cost table from results/ and benchmarks/")
    cr = sub.add_parser("chapter-run", help="execute copies of chapters at a scale; store their claim records")
    cr.add_argument("notebooks", nargs="+", help="chapter notebooks")
    cr.add_argument("--scale", choices=("smoke", "book", "paper"), default="paper")
    cr.add_argument("--device", choices=("cpu", "cuda"), default=None)
    args = parser.parse_args(argv)
    root = repo_root()
    if args.cmd == "chapter-run":
        from booktools.chapter_runs import run_chapter

        for nb in args.notebooks:
            rel = Path(os.path.relpath(os.path.abspath(nb), root))
            print(f"chapter-run: executing {rel.as_posix()} at scale {args.scale} ...", flush=True)
            try:
                path = run_chapter(rel, args.scale, root, device=args.device)
            except ExecutionFailed as e:
                print(f"chapter-run: FAILED: {e}", file=sys.stderr)
                return 1
            print(f"chapter-run: wrote {path.relative_to(root)}")
        return 0
    if args.cmd == "costs":
        from booktools.costs import write_costs

        print(f"costs: wrote {write_costs(root).relative_to(root)}")
        return 0
    if args.cmd == "reproduce":
        return print_reproduced(args.claim, args.scale, root, args.device, args.dtype, args.timeout)
    if args.cmd == "list":
        for p in execution_order(root):
            print(p)
    elif args.cmd == "execute":
        if args.jobs < 1:
            parser.error(f"--jobs must be >= 1, got {args.jobs}")
        paths = []
        for nb in args.notebooks:
            p = Path(os.path.abspath(nb))
            if not p.is_file() or p.suffix != ".ipynb":
                parser.error(f"{nb} is not a notebook file")
            paths.append(p.relative_to(root))
        paths = paths or execution_order(root)
        # The appendix reads the chapters' stored outputs: re-execute it after any chapter, last.
        if any(not is_appendix(p) for p in paths):
            paths += [p for p in execution_order(root) if is_appendix(p) and p not in paths]
        t0 = time.perf_counter()
        try:
            execute_notebooks(paths, root, args.timings, args.timeout, jobs=args.jobs)
        except ExecutionFailed as e:
            print(f"execute: FAILED: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("execute: interrupted; notebooks not finished were left unchanged", file=sys.stderr)
            return 130
        print(f"executed {len(paths)} notebooks in {time.perf_counter() - t0:.0f} s ({args.jobs} at a time)")
        from booktools.costs import write_costs

        write_costs(root)  # the appendix's cost table follows the chapters (which sweeps they show)
    elif args.cmd == "cache":
        from booktools.cache import prefill

        n, failures = prefill(root, jobs=args.jobs, timeout=args.timeout)
        for f in failures:
            print(f"cache: FAILED: {f}", file=sys.stderr)
        print(f"cache: {n} notebook(s) executed, {len(failures)} failed")
        return 1 if failures else 0
    elif args.cmd == "claims":
        claims = book_claims(root)
        for p, recs in claims.items():
            print(f"{p}: {len(recs)} claims, {sum(not r.passed for r in recs)} failed")
            for r in recs:
                print(f"  {r.id}  {r.status}  [{r.scale}] measured={r.measured} | paper={r.paper} | tol={r.tolerance}")
        c = claims_counts(claims)
        print(f"{c['claims']} claims in {c['chapters']} chapters: {c['passed']} passed, {c['failed']} failed;"
              f" {c['chapters_without_claims']} chapters without claims")
    elif args.cmd == "fix-fences":
        for f in args.files:
            print(f"{f}: {fix_fences(f)} directive(s) rewritten with colon fences")
    return 0


def print_reproduced(claim: str, scale: str, root, device=None, dtype=None, timeout: int = 1800) -> int:
    """Execute a copy of ``claim``'s chapter at ``scale``; print the record and how it compares with the
    stored one.  Exit status 0 when it ran (whatever the claim's status), 1 when a cell failed."""
    import json
    from dataclasses import asdict

    from booktools.reproduce import chapter_of, compare, reproduce_claim

    nb = chapter_of(claim, root)
    print(f"reproduce: {claim} is computed by {nb.as_posix()}; executing a copy at scale {scale!r} ...",
          file=sys.stderr, flush=True)
    try:
        res = reproduce_claim(claim, scale, root, device=device, dtype=dtype, timeout=timeout)
    except ExecutionFailed as e:
        print(f"reproduce: FAILED: {e}", file=sys.stderr)
        return 1
    r = res.record
    print(f"{r.id}  {r.status}  [{r.scale}] measured={r.measured} | paper={r.paper} | tol={r.tolerance}")
    print(f"    {r.statement}")
    print(json.dumps(asdict(r), indent=2, sort_keys=True))
    print(f"{compare(r, res.stored)}; chapter executed in {res.seconds:.0f} s", file=sys.stderr)
    return 0


def _main() -> int:
    try:
        return main()
    except (FileNotFoundError, ValueError, LookupError) as e:  # a missing page, a malformed toc or notebook: one line
        print(f"booktools: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_main())
