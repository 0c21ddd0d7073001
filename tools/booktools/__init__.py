"""Book tooling: table of contents, claims records, notebook execution, source checks.

Runs without torch (it never imports :mod:`cnnbias`): it reads the book's sources and the notebooks'
stored outputs.  Command line: ``python -m booktools --help``.

- :mod:`booktools.toc`      the pages of ``_toc.yml`` (parsed with ``sphinx_external_toc``)
- :mod:`booktools.claims`   the claims records of every chapter, read from the stored outputs
- :mod:`booktools.execute`  execute notebooks in place (in parallel), atomically, with per-notebook times
- :mod:`booktools.lint`     source checks (directive fences)
- :mod:`booktools.reproduce` one claim recomputed by executing a copy of its chapter at a scale
- :mod:`booktools.chapter_runs` whole chapters run at another scale, their records in ``results/chapters``
- :mod:`booktools.costs`    the appendix's paper-scale cost table (results store, chapter runs, benchmark)
"""

from booktools.claims import (
    CLAIMS_MIME,
    ClaimRecord,
    book_claims,
    claims_counts,
    claims_markdown,
    notebook_title,
    read_claims,
    scale_comparison,
    scale_markdown,
)
from booktools.lint import fence_problems, fix_fences
from booktools.toc import chapter_notebooks, execution_order, is_appendix, repo_root, toc_entries

__all__ = [
    "CLAIMS_MIME",
    "ClaimRecord",
    "book_claims",
    "chapter_notebooks",
    "claims_counts",
    "claims_markdown",
    "execution_order",
    "fence_problems",
    "fix_fences",
    "is_appendix",
    "notebook_title",
    "read_claims",
    "repo_root",
    "scale_comparison",
    "scale_markdown",
    "toc_entries",
]
