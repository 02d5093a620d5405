"""Purge the oldest audit rows past ``ECERT_RETENTION_AUDIT_DAYS`` and leave an anchor.

Each batch, in one transaction: the rows ``id <= through`` are deleted and an
:class:`~ecert.db.models.AuditAnchor` records ``through``, that row's MAC, the number of rows and
the time, MACed under the audit key and chained to the previous anchor. ``ecert audit verify``
then walks from the newest anchor. Without the audit key no valid anchor can be written, so a
deletion outside this path still breaks the chain, as before.

On PostgreSQL the append-only trigger refuses every DELETE: the batch switches it off inside its
own transaction (``ALTER TABLE … DISABLE TRIGGER``, transactional, and only the table's owner may:
run this as the role that runs ``ecert db upgrade``). That ALTER locks the table against audit
appends until the batch commits, so batches stay small.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ecert.clock import utcnow
from ecert.db.models import AuditAnchor, AuditChainHead, AuditEvent
from ecert.security.auditchain import GENESIS, anchor_mac, anchors

_TRIGGER = "audit_events_append_only"


async def purge_through(session: AsyncSession, cutoff: dt.datetime) -> int | None:
    """The last id of the log's prefix whose rows are all older than ``cutoff`` (never past the
    head: rows being appended are left alone); None when there is nothing to purge."""
    head = await session.get(AuditChainHead, 1)
    if head is None or head.last_id is None:
        return None
    young = await session.scalar(select(func.min(AuditEvent.id)).where(AuditEvent.at >= cutoff))
    bound = head.last_id if young is None else min(head.last_id, young - 1)
    last = await session.scalar(select(func.max(AuditEvent.id)).where(AuditEvent.id <= bound))
    return None if last is None else int(last)


async def count_purgeable(session: AsyncSession, cutoff: dt.datetime) -> int:
    through = await purge_through(session, cutoff)
    if through is None:
        return 0
    statement = select(func.count()).select_from(AuditEvent).where(AuditEvent.id <= through)
    return int(await session.scalar(statement) or 0)


async def _batch(session: AsyncSession, key: bytes, cutoff: dt.datetime, size: int) -> int:
    through = await purge_through(session, cutoff)
    if through is None:
        return 0
    ids = select(AuditEvent.id).where(AuditEvent.id <= through).order_by(AuditEvent.id)
    last = await session.scalar(select(func.max(ids.limit(size).subquery().c.id)))
    if last is None:
        return 0
    row = await session.get(AuditEvent, last)
    assert row is not None
    earlier = await anchors(session)
    anchor = AuditAnchor(
        through_id=last,
        through_hash=row.row_hash or GENESIS,
        rows=0,
        at=utcnow(),
        prev_mac=earlier[-1].mac if earlier else GENESIS,
        mac="",
    )
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        await session.execute(text(f"ALTER TABLE audit_events DISABLE TRIGGER {_TRIGGER}"))
    result = await session.execute(
        delete(AuditEvent).where(AuditEvent.id <= last).execution_options(synchronize_session=False)
    )
    if postgres:
        await session.execute(text(f"ALTER TABLE audit_events ENABLE TRIGGER {_TRIGGER}"))
    anchor.rows = int(getattr(result, "rowcount", 0) or 0)
    anchor.mac = anchor_mac(key, anchor)
    session.add(anchor)
    return anchor.rows


async def purge_audit(
    sessions: async_sessionmaker[AsyncSession],
    key: bytes,
    cutoff: dt.datetime,
    *,
    batch: int = 5_000,
    advance: Callable[[int], None] = lambda _: None,
) -> int:
    """Purge the log's rows older than ``cutoff``, ``batch`` rows (and one anchor) a transaction.

    Idempotent: a second run finds no row older than the cutoff and writes no anchor.
    """
    removed = 0
    while True:
        async with sessions.begin() as session:
            done = await _batch(session, key, cutoff, batch)
        removed += done
        advance(done)
        if done < batch:
            return removed
