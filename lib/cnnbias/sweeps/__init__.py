"""Sweeps: the cells behind each figure, a results store, and a runner (serial or Dask).

- :mod:`cnnbias.sweeps.spec`: :class:`Sweep` and :class:`ClaimSpec` declarations (made at the end
  of each experiments module), the registry, cell keys and code versions;
- :mod:`cnnbias.sweeps.store`: one JSON file per finished cell under
  ``results/<experiment>/<scale>/<key>.json``, written atomically, read with checks;
- :mod:`cnnbias.sweeps.runner`: computes the missing cells in this process or on a Dask cluster;
- :mod:`cnnbias.sweeps.reproduce`: a claim's record from its sweep's cells.

A chapter reads stored cells with :func:`load`, which fails loudly (naming the file, or the
command that computes the missing cells) when a result is missing or corrupt::

    from cnnbias import sweeps
    cells = sweeps.load("convlin.fig2", "paper")   # [(config, result), ...]

Command line: ``python -m cnnbias sweep|reproduce|list ...`` (see ``python -m cnnbias --help``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cnnbias.sweeps.spec import (
    SCALES,
    ClaimSpec,
    Sweep,
    cell_key,
    claim_ids,
    claims_of,
    code_version,
    discover,
    get,
    get_claim,
    names,
    register,
    register_claim,
)
from cnnbias.sweeps.store import CorruptResult, MissingCells, Store, StoreError, default_root, read_file, read_folder

__all__ = [
    "SCALES",
    "Sweep",
    "ClaimSpec",
    "register",
    "register_claim",
    "get",
    "get_claim",
    "names",
    "claim_ids",
    "claims_of",
    "discover",
    "cell_key",
    "code_version",
    "Store",
    "StoreError",
    "CorruptResult",
    "MissingCells",
    "default_root",
    "read_file",
    "read_folder",
    "load",
]


def load(experiment: str, scale: str, select: Callable[[Mapping[str, Any]], bool] | None = None,
         store: Store | str | None = None) -> list[tuple[dict, dict]]:
    """``[(config, result), ...]`` of sweep ``experiment``'s cells at ``scale`` from the store (default
    :func:`~cnnbias.sweeps.store.default_root`), in declaration order.  Raises :class:`MissingCells`
    (with the command that computes them) or :class:`CorruptResult` (naming the file)."""
    st = store if isinstance(store, Store) else Store(store)
    return st.load(get(experiment), scale, select)
