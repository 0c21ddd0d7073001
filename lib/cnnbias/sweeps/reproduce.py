"""A claim's record from its sweep's cells (``python -m cnnbias reproduce <claim id>``)."""

from __future__ import annotations

from cnnbias.claims import Claims
from cnnbias.sweeps import spec
from cnnbias.sweeps.store import Store

__all__ = ["claim_from_store", "claims_at_scale", "ClaimNotProduced"]


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


def claims_at_scale(claim_ids, scale: str, store: Store | str | None = None) -> Claims:
    """The claims ``claim_ids`` (one chapter's prefix) computed at ``scale`` from the stored cells of their
    sweeps, in one :class:`~cnnbias.claims.Claims` whose records carry that scale.  A chapter shows them
    beside its own (book-scale) claims.  Fails loudly (:class:`~cnnbias.sweeps.store.MissingCells`, or
    :class:`~cnnbias.sweeps.store.CorruptResult` naming the file) when a cell is missing, stale or corrupt."""
    ids = list(claim_ids)
    if not ids:
        raise ValueError("claim_ids must name at least one registered claim")
    spec.discover()
    prefixes = {spec.get_claim(i).prefix for i in ids}
    if len(prefixes) != 1:
        raise ValueError(f"claim_ids must share one chapter prefix, got {sorted(prefixes)}")
    out = Claims(prefixes.pop(), scale=scale)
    for i in ids:
        claim, _ = claim_from_store(i, scale, store)
        out._add(claim)
    return out
