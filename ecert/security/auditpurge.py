"""Purge the oldest audit rows past ``ECERT_RETENTION_AUDIT_DAYS`` and leave an anchor.

Each batch, in one transaction: the rows ``id <= through`` (of every chain) are deleted and, for
each chain that lost rows, an :class:`~ecert.db.models.AuditAnchor` records the chain, its last
deleted row's id and MAC, the number of its rows and the time, MACed under the audit key and
chained to the previous anchor. ``ecert audit verify`` then walks each chain from its newest
anchor. Without the audit key no valid anchor can be written, so a
deletion outside this path still breaks the chain, as before.

On PostgreSQL the append-only trigger refuses every DELETE: the batch switches it off inside its
own transaction (``ALTER TABLE … DISABLE TRIGGER``, transactional, and only the table's owner may:
run this as the role that runs ``ecert db upgrade``). The batch locks the table against audit
appends from its start until it commits (the lock that ALTER takes, taken first so the appends in
flight on every chain have committed before the batch reads the log), so batches stay small.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ecert.clock import utcnow
from ecert.db.models import AuditAnchor, AuditEvent
from ecert.security import repositories
from ecert.security.auditchain import GENESIS, anchor_mac, anchors


async def purge_through(session: AsyncSession, cutoff: dt.datetime) -> int | None:
    """The last id of the log's prefix whose rows are all older than ``cutoff`` (never past the
    newest head: rows being appended are left alone); None when there is nothing to purge.

    A chain's rows rise in id in the order they commit (its head is locked from the row's insert
    to the commit), so a row still being appended to a chain is newer than every row of that
    chain the prefix takes: the anchor stays its predecessor."""
    newest = await repositories.newest_chain_head(session)
    if newest is None:
        return None
    young = await repositories.first_audit_id_since(session, cutoff)
    bound = newest if young is None else min(newest, young - 1)
    return await repositories.last_audit_id_through(session, bound)


async def count_purgeable(session: AsyncSession, cutoff: dt.datetime) -> int:
    through = await purge_through(session, cutoff)
    if through is None:
        return 0
    return await repositories.audit_count_through(session, through)


async def _batch(session: AsyncSession, key: bytes, cutoff: dt.datetime, size: int) -> int:
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        # First wait for the appends in flight and hold new ones off (the lock the ALTER below
        # takes anyway): a row still being appended to one chain may have an id below another
        # chain's newest, and must not be deleted behind its chain's anchor.
        await repositories.lock_audit_log(session)
    through = await purge_through(session, cutoff)
    if through is None:
        return 0
    last = await repositories.audit_batch_end(session, through, size)
    if last is None:
        return 0
    per_chain = await repositories.audit_chains_through(session, last)
    earlier = await anchors(session)
    prev_mac = earlier[-1].mac if earlier else GENESIS
    now = utcnow()
    written: list[AuditAnchor] = []
    # In rising through_id: the anchors' chain checks that.
    for chain, through, rows in sorted(per_chain, key=lambda r: int(r[1])):
        through_hash = GENESIS  # rows written before the chains: no MAC
        if chain is not None:
            row = await session.get(AuditEvent, through)
            assert row is not None
            through_hash = row.row_hash or GENESIS
        anchor = AuditAnchor(
            chain=chain,
            through_id=int(through),
            through_hash=through_hash,
            rows=int(rows),
            at=now,
            prev_mac=prev_mac,
            mac="",
        )
        anchor.mac = prev_mac = anchor_mac(key, anchor)
        written.append(anchor)
    removed = await repositories.delete_audit_through(session, last, postgres=postgres)
    session.add_all(written)
    return removed


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
