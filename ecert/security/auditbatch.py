"""Group commit for the audit rows of reads: one transaction appends the rows of every read
waiting at that moment, and each read answers only once its row is committed.

A person's lookup writes nothing but its audit row, yet that row cost it four of its eight
round trips (BEGIN, the chain lock, the INSERT, COMMIT: ``ecert.security.auditchain``). Reads
arriving together now share them: while one batch is being written, the next ones queue, and the
writer takes them all at once (at most ``MAX_BATCH``). Durability is unchanged — a read's answer
still waits for its audit row's COMMIT, and a failed write fails the reads it carried — and the
chain is the same (the rows of one batch are consecutive links of one chain). Hand-written: this
is a few lines of asyncio around the existing chain, no library does it for a SQLAlchemy session.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ecert.db.models import AuditEvent
from ecert.security.auditchain import link, take_link

#: Rows a batch carries at most (one multi-row INSERT).
MAX_BATCH = 256
#: The columns a read's row sets (``ecert.security.audit.audit_values``); the chain adds its own.
_FIELDS = ("at", "actor", "actor_kind", "person_id", "action", "outcome", "request_id", "detail")


class AuditBatches:
    """One per worker (``Runtime.audit_batches``)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._waiting: list[tuple[AuditEvent, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def append(self, row: AuditEvent) -> None:
        """Return once ``row`` is committed (raises what the write raised)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((row, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        await asyncio.shield(done)  # a cancelled reader does not cancel the others' batch

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                async with self._sessions.begin() as session:
                    await _append(session, [row for row, _ in batch])
            except Exception as exc:  # every reader of this batch gets the failure
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)


async def _append(session: AsyncSession, rows: list[AuditEvent]) -> None:
    """Lock a chain's head, link the rows one after another, insert them in one Core statement
    (the ORM's unit of work was most of a batch's CPU); the trigger moves the head to the last."""
    chain, prev = await take_link(session, None, None)
    values: list[dict[str, Any]] = []
    for row in rows:
        linked = link(session, chain, prev, {name: getattr(row, name) for name in _FIELDS})
        prev = linked["row_hash"]
        values.append(linked)
    await session.execute(insert(cast(Table, AuditEvent.__table__)), values)
