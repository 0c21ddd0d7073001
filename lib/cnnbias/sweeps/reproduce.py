"""A claim's record from its sweep's cells (``python -m cnnbias reproduce <claim id>``)."""

from __future__ import annotations

from cnnbias.claims import Claims
from cnnbias.sweeps import spec
from cnnbias.sweeps.store import Store

__all__ = ["claim_from_store", "ClaimNotProduced"]


class ClaimNotProduced(RuntimeError):
    """The claim's compute function did not add the claim it is registered for."""


def claim_from_store(claim_id: str, scale: str, store: Store | str | None = None):
    """``(claim, claims)``: the :class:`~cnnbias.claims.Claim` ``claim_id`` computed at ``scale`` from the
    stored cells of its sweep (all claims the compute function made are in ``claims``).  Raises
    :class:`~cnnbias.sweeps.store.MissingCells` when cells are missing."""
    cs = spec.get_claim(claim_id)
    sweep = spec.get(cs.sweep)
    st = store if isinstance(store, Store) else Store(store)
    cells = st.load(sweep, scale, cs.select)
    claims = Claims(cs.prefix, scale=scale)
    cs.compute(cells, claims)
    for c in claims:
        if c.id == claim_id:
            return c, claims
    raise ClaimNotProduced(
        f"the compute function of claim {claim_id!r} (sweep {cs.sweep!r}) made {[c.id for c in claims]}, not {claim_id!r}"
    )
