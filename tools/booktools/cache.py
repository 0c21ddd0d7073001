"""Fill jupyter-book's execution cache in parallel before ``make book`` builds the pages.

jupyter-book (myst-nb, ``execute_notebooks: cache``) executes a notebook whose code is not in its
jupyter-cache while it reads the page, one notebook at a time.  :func:`prefill` executes the
chapters missing from the cache ``jobs`` at a time, the way myst-nb would (same executor, the
notebook's folder as working directory), and stores them in the same cache; the build then finds
every notebook cached.  A failing notebook is reported in one line and not cached, so the build
re-executes it and fails with its error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from booktools.toc import is_appendix, repo_root, toc_entries

__all__ = ["CACHE_PATH", "prefill"]

#: jupyter-book 1.x's cache folder, relative to the root (``<build dir>/.jupyter_cache``).
CACHE_PATH = Path("_build") / ".jupyter_cache"


def prefill(root: str | os.PathLike | None = None, jobs: int = 2, timeout: int = 1800,
            log: Callable[[str], None] | None = None) -> tuple[int, list[str]]:
    """Execute the chapter notebooks (appendix excluded, as in ``_config.yml``) that are missing from the
    cache, ``jobs`` at a time; returns (number executed, one-line failure messages)."""
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from jupyter_cache.executors.utils import single_nb_execution

    if int(jobs) < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    log = log or (lambda msg: print(msg, flush=True))
    root = repo_root() if root is None else Path(root)
    cache = get_cache(str(root / CACHE_PATH))
    todo = []
    for rel in toc_entries(root):
        if rel.suffix != ".ipynb" or is_appendix(rel):
            continue
        nb = nbformat.read(root / rel, as_version=4)
        try:
            cache.match_cache_notebook(nb)
        except KeyError:
            todo.append((rel, nb))

    def run(item):
        rel, nb = item
        log(f"executing {rel} ...")
        return single_nb_execution(nb, cwd=str((root / rel).parent), allow_errors=False, timeout=timeout,
                                   meta_override=True)

    failures = []
    with ThreadPoolExecutor(max_workers=int(jobs)) as pool:
        results = list(pool.map(run, todo))
    for (rel, nb), result in zip(todo, results):
        if result.err is not None:
            failures.append(f"{rel}: {type(result.err).__name__}: {str(result.err).splitlines()[0] if str(result.err) else ''}")
            continue
        record = cache.add_nb_to_project(str(root / rel))
        cache.cache_notebook_bundle(CacheBundleIn(nb, record.uri, data={"execution_seconds": result.time}),
                                    check_validity=False, overwrite=True)
        log(f"  {rel}: {result.time:.1f} s")
    return len(todo), failures
