"""The documented bodies of the money routes whose services hand back stored JSON.

Settle, reverse, open a visit and settle a visit answer with what the idempotency record keeps
(a replay sends the same bytes), so their handlers return plain dicts; these shapes are what those
dicts are, for the OpenAPI schema and the client SDK.
"""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec

from ecert.settlement.schemas import ReversalResult, SettlementResult
from ecert.settlement.visits.schemas import Remaining, VisitOpened, VisitSettlement


class ReversalReply(ReversalResult, kw_only=True):
    """A reversal; after a line return, ``repriced`` is what remains, priced again."""

    # The stored dict is exactly a Remaining; the service keeps it loose, the schema need not.
    repriced: Remaining | None = None  # type: ignore[assignment]


def created(shape: type, description: str) -> dict[int, ResponseSpec]:
    """The 201 response of an idempotent money route (a replay adds ``Idempotent-Replayed``)."""
    return {201: ResponseSpec(data_container=shape, description=description)}


SETTLED = created(SettlementResult, "Settled (or the stored answer to the same Idempotency-Key)")
REVERSED = created(ReversalReply, "Reversed (or the stored answer to the same Idempotency-Key)")
VISIT_OPENED = created(VisitOpened, "Opened (or the stored answer to the same Idempotency-Key)")
VISIT_SETTLED = created(
    VisitSettlement, "Settled (or the stored answer to the same Idempotency-Key)"
)
