"""Group commit for the audit rows of reads: one transaction appends the rows of every read
waiting at that moment, and each read answers only once its row is committed.

A person's lookup writes nothing but its audit row, yet that row cost it four of its eight
round trips (BEGIN, the chain lock, the INSERT, COMMIT: ``ecert.security.auditchain``). Reads
arriving together now share them: while one batch is being written, the next ones queue, and the
writer takes them all at once (at most ``MAX_BATCH``). Durability is unchanged — a read's answer
still waits for its audit row's COMMIT, and a failed write fails the reads it carried — and the
chain is the same (the rows of one batch are consecutive links of one chain). A writer also
remembers the chain and link its last batch ended on: on PostgreSQL the next batch goes there in
one autocommitted statement that checks the link on the locked head
(``auditchain.append_after``), and only when another writer moved that head does it take the
four round trips again. Hand-written: this
is a few lines of asyncio around the existing chain, no library does it for a SQLAlchemy session.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ecert.db import native
from ecert.db.held import HeldConnection
from ecert.security import auditchain

#: Rows a batch carries at most (one pipelined INSERT per row, one round trip).
MAX_BATCH = 256


class AuditBatches:
    """One per worker (``Runtime.audit_batches``)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], held: HeldConnection | None = None
    ) -> None:
        """``held``: this writer's own connection for the one-statement append (PostgreSQL);
        without it every batch takes the lock in a session of ``sessions``."""
        self._sessions = sessions
        self._held = held
        #: The sessions' audit key, read by the first batch (``auditchain.append_after``).
        self._key: bytes | None = None
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        #: The chain and link the last batch ended on (``auditchain.append_after``).
        self._hint: auditchain.Hint | None = None

    async def append(self, row: dict[str, Any], caller: AsyncSession | None = None) -> None:
        """Return once ``row`` (``audit_values``) is committed (raises what the write raised).
        ``caller``: the request's session, whose connection is given back while it waits unless
        a transaction is open on it (``native.release``)."""
        if caller is not None:
            await native.release(caller)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((row, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        await asyncio.shield(done)  # a cancelled reader does not cancel the others' batch

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            rows = [row for row, _ in batch]
            try:
                # Where this writer left off, in one statement; else the four round trips.
                hint = None
                if self._held is not None and self._hint is not None and self._key is not None:
                    hint = await auditchain.append_after(self._held, self._key, rows, self._hint)
                if hint is None:
                    self._key, hint = await auditchain.append_alone(self._sessions, rows)
                self._hint = hint
            except Exception as exc:  # every reader of this batch gets the failure
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
