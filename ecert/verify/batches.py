"""Group spend for online verify on PostgreSQL: the codes of every verify waiting at that
moment are checked and spent by one autocommitted statement, and each verify answers from its
own rows once that statement has committed.

A verify's one durable write used to be its own statement: per scan a round trip, a parse-bind-
execute and a commit in PostgreSQL, and the statement's Python on the worker. Verifies arriving
together now share them, as the audit rows of reads do (``ecert.security.auditbatch``). A verify
that finds nothing in flight sends its own statement at once; while one is in PostgreSQL the
next ones queue, and a writer then sends them all at once (at most ``MAX_BATCH``).

Nothing is weaker: each verify's checks run on its own rows in the statement, the use is still
``ON CONFLICT DO NOTHING`` on the unique key, a verify answers only after the COMMIT, and a
failed statement fails every verify it carried (none was spent). Two scans of one code never
share a batch: the second waits for the next one, where the unique key refuses it (or spends
it, when the first failed a check that the second, from another institution, passes).
Hand-written for the same reason as the audit's: a few lines of asyncio, no library groups
statements of a SQLAlchemy session.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ecert.verify import repositories

#: Verifies a statement carries at most.
MAX_BATCH = 128

Spent = tuple[list[repositories.HolderRow], str | None]


#: A verify's values, its answer, and its context (its trace and log fields).
Waiting = tuple[dict[str, Any], asyncio.Future[Spent], contextvars.Context]


def _key(values: dict[str, Any]) -> tuple[str, str, str]:
    return values["u_iss"], values["u_sub"], values["u_jti"]


class SpendBatches:
    """One per worker (``for_runtime``)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._waiting: list[Waiting] = []
        #: A statement is in PostgreSQL (a lone verify's own, or the writer's).
        self._busy = False
        #: The writer task while it runs (held: the loop keeps only a weak reference).
        self._writer: asyncio.Task[None] | None = None

    async def spend(self, values: dict[str, Any]) -> Spent:
        """The holder's rows and the new ``ec_token`` (None when a check failed or the code was
        used already) for one verify's ``values`` (``repositories.SPEND_ARRAYS`` but ``n``);
        no rows when the pseudonym matches no e-cert. Raises what the statement raised.

        A verify that finds no statement in flight sends its own at once from the request's
        task (no queue, no extra task: a lone verify costs what it did before batching); the
        verifies that arrive meanwhile queue, and a writer task sends them together after it."""
        if self._busy:
            done: asyncio.Future[Spent] = asyncio.get_running_loop().create_future()
            self._waiting.append((values, done, contextvars.copy_context()))
            return await asyncio.shield(done)  # a cancelled verify does not cancel the others'
        self._busy = True
        try:
            spent = await self._run([values])
        finally:
            self._hand_over()
        return spent.get(0, ([], None))

    def _hand_over(self) -> None:
        """After a statement: the verifies that queued meanwhile go to a writer task."""
        if self._waiting:
            self._writer = asyncio.create_task(self._write(), context=contextvars.Context())
        else:
            self._busy = False

    def _next(self) -> list[Waiting]:
        """The next batch: the waiting verifies in order, one per code, at most MAX_BATCH."""
        batch: list[Waiting] = []
        later: list[Waiting] = []
        codes: set[tuple[str, str, str]] = set()
        for waiting in self._waiting:
            key = _key(waiting[0])
            if len(batch) >= MAX_BATCH or key in codes:
                later.append(waiting)
            else:
                codes.add(key)
                batch.append(waiting)
        self._waiting = later
        return batch

    async def _run(self, verifies: list[dict[str, Any]]) -> dict[int, Spent]:
        """The statement, sent again once on a fresh connection when the first one was found
        dead (after a PostgreSQL restart the pool's connections all are). Safe: the unique key
        decides, so a statement that had committed before its answer was lost refuses its codes
        as used the second time, which is what the verify's own retry after a 503 would get."""
        try:
            async with self._sessions() as session:
                return await repositories.spend_many(session, verifies)
        except OperationalError as exc:
            if not exc.connection_invalidated:
                raise
        async with self._sessions() as session:
            return await repositories.spend_many(session, verifies)

    async def _write(self) -> None:
        """Send the queued verifies, a batch at a time, until none is left (still busy)."""
        try:
            while self._waiting:
                await self._send(self._next())
        finally:
            self._busy = False

    async def _send(self, batch: list[Waiting]) -> None:
        try:
            # In the first verify's context: the statement's span is a child of its request,
            # and a log line of the statement's carries its request id.
            spent = await asyncio.create_task(
                self._run([v for v, _, _ in batch]), context=batch[0][2]
            )
        except Exception as exc:  # every verify of this batch gets the failure
            for _, done, _ in batch:
                if not done.done():
                    done.set_exception(exc)
        else:
            for n, (_, done, _) in enumerate(batch):
                if not done.done():
                    done.set_result(spent.get(n, ([], None)))


_KEY = "verify.spends"


def for_runtime(
    state: dict[str, object], sessions: async_sessionmaker[AsyncSession]
) -> SpendBatches:
    """The worker's batches, kept in its runtime's ``worker_state``."""
    found = state.get(_KEY)
    if not isinstance(found, SpendBatches):
        found = state[_KEY] = SpendBatches(sessions)
    return found
