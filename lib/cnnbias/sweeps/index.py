"""The index of declared sweeps, ``results/sweeps.json``: what the book's tooling needs to know about the
sweeps without importing torch or the experiments.

For every registered sweep (the self-test sweeps excepted): its description, the claims that rest on
it, its number of cells at each scale and the keys of its current paper-scale cells.  With the keys,
a reader of the results store (the appendix's cost table, ``booktools.costs``) tells which stored
files are current and how many of the declared cells are still missing, so a sweep that is partly
computed is reported as partial, and a sweep with no stored cell at all still appears (as pending).

The file is generated (``python -m cnnbias index``; ``make execute`` and ``make chapter-runs`` do it)
and committed; a test checks that it equals a fresh one, so a changed sweep declaration or code
version cannot leave it behind.  It is written atomically, one sweep per line, sorted.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from cnnbias.sweeps import spec
from cnnbias.sweeps.store import default_root

__all__ = ["FORMAT", "INDEX_NAME", "INDEX_SCALE", "build_index", "index_text", "write_index"]

FORMAT = "cnnbias.sweeps-index/1"
#: File name of the index in the results folder.
INDEX_NAME = "sweeps.json"
#: The scale whose cell keys the index lists (the one whose results are committed).
INDEX_SCALE = "paper"


def build_index() -> dict[str, Any]:
    """``{"format", "scale", "sweeps": {name: {"description", "claims", "cells", "keys"}}}`` for every
    registered sweep except the self-tests; ``cells`` maps each scale to its number of cells, ``keys``
    lists the current keys of the cells at :data:`INDEX_SCALE` in declaration order."""
    out: dict[str, Any] = {}
    for sw in spec.sweeps():
        if sw.name.startswith("selftest"):
            continue
        version = sw.code_version()
        out[sw.name] = {
            "description": sw.description,
            "claims": [cs.id for cs in spec.claims_of(sw.name)],
            "cells": {s: len(sw.configs(s)) for s in spec.SCALES},
            "keys": [sw.key(INDEX_SCALE, c, version) for c in sw.configs(INDEX_SCALE)],
        }
    return {"format": FORMAT, "scale": INDEX_SCALE, "sweeps": out}


def index_text(index: dict[str, Any] | None = None) -> str:
    """The index as the committed file's text: a header line, then one sweep per line (sorted), so a
    change shows as a one-line diff."""
    index = build_index() if index is None else index
    lines = ["{", f'"format":{json.dumps(index["format"])},', f'"scale":{json.dumps(index["scale"])},', '"sweeps":{']
    items = sorted(index["sweeps"].items())
    for i, (name, entry) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        lines.append(f"{json.dumps(name)}:{spec.canonical(entry)}{comma}")
    lines += ["}", "}"]
    return "\n".join(lines) + "\n"


def write_index(root: str | os.PathLike | None = None) -> Path:
    """Write :data:`INDEX_NAME` under the results folder ``root`` (default
    :func:`~cnnbias.sweeps.store.default_root`) atomically; returns its path."""
    folder = Path(root) if root is not None else default_root()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / INDEX_NAME
    tmp = folder / f".{INDEX_NAME}.{secrets.token_hex(4)}.tmp"
    try:
        tmp.write_text(index_text(), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
