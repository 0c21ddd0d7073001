"""The book's pages, from ``_toc.yml`` parsed by ``sphinx_external_toc`` (what jupyter-book itself uses)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["APPENDIX", "repo_root", "toc_entries", "is_appendix", "execution_order", "chapter_notebooks"]

#: Folder of the appendix notebooks (executed after the chapters; not part of the claims table).
APPENDIX = Path("book") / "appendix"


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The repository root: the first folder at or above ``start`` (default: cwd) with ``_toc.yml``.

    Notebooks execute with their own folder as the working directory (nbval, jupyter-book), so the
    appendix notebook finds the book from wherever it runs.
    """
    here = Path(start if start is not None else os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    raise FileNotFoundError(f"no _toc.yml at or above {here}")


def toc_entries(root: str | os.PathLike) -> list[Path]:
    """The documents of ``_toc.yml`` in reading order (root first), as existing ``.md``/``.ipynb`` files
    relative to ``root``.  A toc entry with no matching file raises FileNotFoundError naming it; a
    malformed toc raises ValueError naming the file."""
    from sphinx_external_toc.parsing import MalformedError, parse_toc_yaml

    root = Path(root)
    try:
        site_map = parse_toc_yaml(root / "_toc.yml")
    except MalformedError as e:
        raise ValueError(f"{root / '_toc.yml'}: malformed table of contents ({e})") from e
    out: list[Path] = []
    for docname in site_map:
        found = [Path(docname + ext) for ext in (".ipynb", ".md") if (root / (docname + ext)).is_file()]
        if not found:
            raise FileNotFoundError(f"_toc.yml names {docname}, which does not exist under {root}")
        out.append(found[0])
    return out


def is_appendix(path: str | os.PathLike) -> bool:
    """Whether ``path`` (relative to the root) is an appendix page."""
    return APPENDIX in Path(path).parents


def execution_order(root: str | os.PathLike) -> list[Path]:
    """Every notebook under ``book/`` (relative to ``root``): chapters first, in toc order (notebooks the
    toc does not name come after, sorted), then the appendix notebooks, which read the chapters'
    stored outputs."""
    root = Path(root)
    all_nbs = sorted(
        p.relative_to(root)
        for p in (root / "book").rglob("*.ipynb")
        if ".ipynb_checkpoints" not in p.parts and "_build" not in p.parts
    )
    rank = {p: i for i, p in enumerate(p for p in toc_entries(root) if p.suffix == ".ipynb")}
    return sorted(all_nbs, key=lambda p: (is_appendix(p), rank.get(p, len(rank)), str(p)))


def chapter_notebooks(root: str | os.PathLike) -> list[Path]:
    """The chapter notebooks named in the toc (appendix excluded), in toc order."""
    return [p for p in toc_entries(root) if p.suffix == ".ipynb" and not is_appendix(p)]
