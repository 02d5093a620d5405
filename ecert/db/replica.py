"""Reads that may be served by a streaming replica, falling back to the primary.

Only reads that tolerate a bounded staleness come here (the person's lookups). The replica is
used while a recent check found it at most ``ECERT_DATABASE_READ_MAX_LAG_S`` behind; one check
per ``ECERT_DATABASE_READ_CHECK_S`` a worker. A replica that lags, is gone, or fails a query
sends the read to the primary: the caller never sees an error for it. One log line when the
replica stops being used and one when it is used again; the counts are metrics.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ecert.metrics import REPLICA_LAG, REPLICA_READS

T = TypeVar("T")
_log = structlog.get_logger("ecert.replica")

#: Behind by nothing when the replica replayed all the primary had flushed when asked; otherwise
#: by the age of the last transaction it replayed (NULL when it never replayed one).
_LAG = text(
    "SELECT pg_is_in_recovery(),"
    " CASE WHEN pg_last_wal_replay_lsn() >= CAST(CAST(:lsn AS text) AS pg_lsn) THEN 0"
    " ELSE EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()) END"
)
#: A lookup reads a few indexed rows of one person: on a replica that takes longer than this,
#: the replica is in trouble (hung, partitioned) and the primary answers instead.
READ_BOUND_S = 2.0
#: Connection-level trouble with the replica; a domain error raised by the read passes through.
_REPLICA_TROUBLE = (SQLAlchemyError, OSError, TimeoutError)


class ReadReplica:
    """The replica's engine and this worker's last opinion of it."""

    def __init__(
        self, primary: AsyncEngine, replica: AsyncEngine, *, max_lag_s: float, check_s: float
    ) -> None:
        self.engine = replica
        self.sessions = async_sessionmaker(replica, expire_on_commit=False)
        self._primary = primary
        self._max_lag = max_lag_s
        self._check_s = check_s
        self._checked_at = -math.inf
        self._checking = asyncio.Lock()
        self._usable = False
        self.reason = "unchecked"

    async def usable(self) -> bool:
        """Whether to read there now; checks at most once per interval, one caller at a time."""
        if time.monotonic() - self._checked_at < self._check_s or self._checking.locked():
            return self._usable
        async with self._checking:
            self._checked_at = time.monotonic()
            try:
                async with asyncio.timeout(max(self._check_s, 1.0)):
                    lag = await self.lag()
            except _REPLICA_TROUBLE as exc:
                self._judge(False, type(exc).__name__)
            else:
                REPLICA_LAG.set(math.inf if lag is None else lag)
                if lag is None:
                    self._judge(False, "not_a_replica")
                else:
                    self._judge(lag <= self._max_lag, "ok" if lag <= self._max_lag else "lagging")
        return self._usable

    async def lag(self) -> float | None:
        """Seconds the replica is behind (infinite: behind, and replayed nothing since it
        started); None when the server is not a replica at all (a promoted or wrong server)."""
        async with self._primary.connect() as primary:
            flushed = await primary.scalar(text("SELECT pg_current_wal_flush_lsn()::text"))
        async with self.engine.connect() as replica:
            recovering, lag = (await replica.execute(_LAG, {"lsn": flushed})).one()
        if not recovering:
            return None
        return math.inf if lag is None else max(float(lag), 0.0)

    def failed(self, reason: str) -> None:
        """A read on the replica failed: use the primary until the next check says otherwise."""
        self._checked_at = time.monotonic()
        self._judge(False, reason)

    def _judge(self, usable: bool, reason: str) -> None:
        if usable != self._usable or (self.reason == "unchecked" and not usable):
            if usable:
                _log.warning("read replica in use")
            else:
                # A warning like the store breaker's: it must survive ECERT_LOG_LEVEL=WARNING.
                _log.warning("read replica not used; lookups read the primary", reason=reason)
        self._usable, self.reason = usable, reason


async def read_where_fresh(
    replica: ReadReplica | None,
    primary: AsyncSession,
    read: Callable[[AsyncSession], Awaitable[T]],
) -> T:
    """Run ``read`` on the replica when it is fresh enough, else (or when it fails) on the
    request's own primary session. ``read`` must only read: it may run twice."""
    if replica is not None and await replica.usable():
        try:
            result = await _bounded(replica, read)
        except _REPLICA_TROUBLE as exc:
            replica.failed(type(exc).__name__)
            REPLICA_READS.labels("primary_after_error").inc()
        else:
            REPLICA_READS.labels("replica").inc()
            return result
    elif replica is not None:
        REPLICA_READS.labels("primary").inc()
    return await read(primary)


async def _bounded(replica: ReadReplica, read: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """``read`` on the replica within READ_BOUND_S. Cut short, its connection is dropped, not
    rolled back: a rollback would wait on the very server that does not answer."""
    session = replica.sessions()
    try:
        async with asyncio.timeout(READ_BOUND_S):
            result = await read(session)
    except (TimeoutError, asyncio.CancelledError):
        await session.invalidate()
        raise
    except BaseException:
        await session.close()
        raise
    await session.close()
    return result
