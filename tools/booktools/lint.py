"""Source checks of the book's pages (no execution, no build).

CommonMark forbids backticks in the info string of a backtick fence, so a directive opened with
```{prf:theorem} Theorem 2 of {cite}`key` is NOT a directive: MyST renders it as a paragraph with
inline code, silently (no warning), and its :label: is never defined.  Colon fences (:::{prf:...})
accept roles in the title (myst colon_fence extension, enabled in _config.yml).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from booktools.claims import load_notebook
from booktools.execute import atomic_write_text

__all__ = ["fence_problems", "fix_fences"]

_BACKTICK_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]{0,3})(?P<fence>`{3,})(?P<info>\{[^}]+\}.*`.*)$")


def _markdown_sources(path: Path) -> list[tuple[int | None, str]]:
    if path.suffix == ".ipynb":
        cells = load_notebook(path).get("cells", [])
        return [(i, "".join(c.get("source", ""))) for i, c in enumerate(cells) if c.get("cell_type") == "markdown"]
    return [(None, path.read_text(encoding="utf-8"))]


def fence_problems(path: str | os.PathLike) -> list[str]:
    """Directives opened with a backtick fence whose title contains a backtick (e.g. a ``{cite}`` role):
    they do not render as directives.  Returns one message per occurrence (cell index and line)."""
    path = Path(path)
    out = []
    for cell, text in _markdown_sources(path):
        for n, line in enumerate(text.splitlines(), 1):
            if _BACKTICK_DIRECTIVE.match(line):
                where = f"cell {cell}, line {n}" if cell is not None else f"line {n}"
                out.append(f"{path} ({where}): {line.strip()}")
    return out


def _fix_text(text: str) -> tuple[str, int]:
    lines = text.split("\n")
    fixed = 0
    i = 0
    while i < len(lines):
        m = _BACKTICK_DIRECTIVE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = m["indent"], m["fence"]
        close = re.compile(rf"^[ \t]{{0,3}}`{{{len(fence)},}}[ \t]*$")
        for j in range(i + 1, len(lines)):
            if close.match(lines[j]):
                colons = ":" * max(3, len(fence))
                lines[i] = f"{indent}{colons}{m['info']}"
                lines[j] = f"{indent}{colons}"
                fixed += 1
                i = j
                break
        i += 1
    return "\n".join(lines), fixed


def fix_fences(path: str | os.PathLike) -> int:
    """Rewrite the directives found by :func:`fence_problems` with colon fences, in place (markdown
    cells only; outputs untouched).  Returns the number of directives rewritten."""
    path = Path(path)
    if path.suffix != ".ipynb":
        text, n = _fix_text(path.read_text(encoding="utf-8"))
        if n:
            atomic_write_text(path, text)
        return n
    raw = path.read_text(encoding="utf-8")
    nb = json.loads(raw)
    total = 0
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        src = cell.get("source", "")
        text, n = _fix_text("".join(src))
        if n:
            total += n
            cell["source"] = text.splitlines(keepends=True) if isinstance(src, list) else text
    if total:
        indent = 1 if raw.startswith("{\n \"") else 2
        atomic_write_text(path, json.dumps(nb, indent=indent, ensure_ascii=False) + "\n")
    return total


