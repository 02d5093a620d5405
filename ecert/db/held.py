"""A connection a serialised writer keeps between its statements.

A worker's group writers (``ecert.verify.batches``, ``ecert.security.auditbatch``) send one
statement at a time, thousands a second. Through a fresh session each statement paid the
session, the pool's checkout and check-in and two greenlet switches: ~170 µs of the worker's
CPU against ~40 µs for the statement on an asyncpg connection held open (docs/performance.md,
"Eighth round"). :class:`HeldConnection` checks one connection out of the writers' engine and
keeps it, so the engine's settings (timeouts, the generic plans, a pooler's mode) still apply.

A connection that fails (:func:`ecert.db.native.gone`) is invalidated and the next statement
checks out a fresh one; so is one held longer than the pool's recycle time, and one whose
statement was cancelled midway (asyncpg cannot be trusted with it afterwards). Hand-written:
SQLAlchemy's pool lends connections per checkout, and keeping one is what this saves.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ecert.db import native


class HeldConnection:
    """For one writer that never runs two statements at once."""

    def __init__(self, engine: AsyncEngine, recycle_s: float = -1) -> None:
        self._engine = engine
        self._recycle_s = recycle_s
        self._connection: AsyncConnection | None = None
        self._driver: Any = None
        self._since = 0.0
        #: A statement was cancelled while in flight: drop the connection before the next one.
        self._suspect = False

    async def _checked_out(self) -> Any:
        if self._connection is not None:
            unusable = self._suspect or self._driver.is_closed()  # the pool must not lend it
            old = self._recycle_s >= 0 and time.monotonic() - self._since > self._recycle_s
            if unusable or old:
                await self.close(invalidate=unusable)
        if self._connection is None:
            connection = await self._engine.connect()
            try:
                raw = await connection.get_raw_connection()
            except BaseException:
                await connection.close()
                raise
            self._connection, self._driver = connection, raw.driver_connection
            self._since, self._suspect = time.monotonic(), False
        return self._driver

    async def fetch(
        self, statement: native.Native, values: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Every row ``statement`` returns for ``values``, autocommitted; errors as
        :func:`ecert.db.native.fetch` raises them (a dropped connection: ``OperationalError``
        with ``connection_invalidated``, and the next call connects afresh)."""
        driver = await self._checked_out()
        compiled = statement.compiled(self._engine.dialect)
        try:
            with native.span(compiled.sql):
                records = await driver.fetch(compiled.sql, *compiled.args(values))
        except native.DRIVER_ERRORS as exc:
            if native.gone(exc) and self._connection is not None:
                connection, self._connection, self._driver = self._connection, None, None
                await native.dropped(connection, exc)
                with contextlib.suppress(Exception):  # gives the invalidated one back
                    await connection.close()
            raise native.translated(compiled.sql, exc) from exc
        except asyncio.CancelledError:
            self._suspect = True
            raise
        return [compiled.row(record) for record in records]

    async def close(self, invalidate: bool = False) -> None:
        """Give the connection back to the pool (or, ``invalidate``, have the pool discard it)."""
        connection, self._connection, self._driver = self._connection, None, None
        if connection is None:
            return
        if invalidate:
            await connection.invalidate()
        await connection.close()
