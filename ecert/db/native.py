"""One Core statement, two executors: asyncpg directly on PostgreSQL, the session on SQLite.

A hot path's statement through ``session.execute`` costs ~90 µs of client CPU on PostgreSQL
(cache lookup, parameter processing, the execution context, the result layer) against ~38 µs
through asyncpg itself. :class:`Native` compiles its statement for PostgreSQL once a process and
runs it on the session's own asyncpg connection — prepared and cached per connection by asyncpg —
converting values with the column types' own bind and result processors (the public
``dialect_impl(dialect)`` of each type), so it returns what ``session.execute`` would. On SQLite
it is ``session.execute`` of the same statement.

The statement runs in whatever the connection is in: SQLAlchemy opens its transaction lazily, at
the first statement it sends itself, so a :func:`fetch` on a session that has sent nothing yet
runs in autocommit (say so with ``ecert.db.engine.reads_only`` first, which makes SQLite do the
same). Use it for a path's lone writing statement or its reads, not between ORM statements that
expect one transaction. A writer whose statements all go through here takes its transaction
from :func:`transaction` (asyncpg's own BEGIN and COMMIT on PostgreSQL).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
from sqlalchemy import Insert, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.sql.dml import ReturningInsert, ReturningUpdate

Processor = Callable[[Any], Any] | None
#: Runs a :class:`Native` for its values: ``functools.partial(fetch, session)``, or
#: ``ecert.db.held.HeldConnection.fetch``.
Fetch = Callable[["Native", Mapping[str, Any]], Awaitable[list[tuple[Any, ...]]]]
#: What :class:`Native` runs: statements that return rows, or (:func:`execute_many`) an INSERT.
Statement = Select[Any] | ReturningInsert[Any] | ReturningUpdate[Any] | Insert


class _Compiled:
    """The PostgreSQL text, and for each ``$n`` its bind name, fixed value and processor."""

    def __init__(self, statement: Statement, dialect: Dialect) -> None:
        compiled: Compiled = statement.compile(dialect=dialect)
        if "POSTCOMPILE" in compiled.string:
            # An expanding ``IN (…)`` would need a text per list length.
            raise ValueError("a native statement cannot have expanding binds (IN of a list)")
        self.sql = compiled.string
        fixed = compiled.params  # the values bound in the statement itself (literals)
        binds = compiled.binds  # type: ignore[attr-defined]
        self.binds: list[tuple[str, Any, Processor]] = [
            (name, fixed.get(name), binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup or []  # type: ignore[attr-defined]
        ]
        self.results: list[Processor] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in getattr(statement, "exported_columns", ())
        ]
        self.converts = any(p is not None for p in self.results)

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        out = []
        for name, default, processor in self.binds:
            value = values.get(name, default)
            out.append(processor(value) if processor is not None else value)
        return out

    def row(self, record: Sequence[Any]) -> tuple[Any, ...]:
        if not self.converts:
            return tuple(record)
        return tuple(
            p(v) if p is not None else v for p, v in zip(self.results, record, strict=True)
        )


class Native:
    """A statement built once (binds, not values): a ``SELECT``, a DML statement with
    ``RETURNING`` for :func:`fetch`, or an ``INSERT`` for :func:`execute_many`."""

    def __init__(self, statement: Statement) -> None:
        self.statement = statement
        self._postgres: _Compiled | None = None

    def compiled(self, dialect: Dialect) -> _Compiled:
        if self._postgres is None:
            self._postgres = _Compiled(self.statement, dialect)
        return self._postgres


async def _driver(session: AsyncSession) -> tuple[Dialect, Any]:
    """The session's dialect and, on PostgreSQL, its asyncpg connection (None elsewhere)."""
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        return connection.dialect, None
    raw = await connection.get_raw_connection()
    return connection.dialect, raw.driver_connection


#: A connection asyncpg can no longer use: its socket, or its protocol's state (a statement of
#: a connection that died mid-operation meets "another operation is in progress").
_BROKEN = (asyncpg.exceptions.InterfaceError, asyncpg.exceptions.InternalClientError, OSError)
#: What asyncpg raises (its own classes, or the socket's), translated by :func:`_failed`.
DRIVER_ERRORS = (asyncpg.exceptions.PostgresError, *_BROKEN)
#: SQLSTATEs after which the connection is gone: the 08 class, and the server shutting down.
_GONE = ("08", "57P01", "57P02", "57P03")


def gone(error: Exception) -> bool:
    """Whether asyncpg's ``error`` means the connection can no longer be used."""
    return isinstance(error, _BROKEN) or (getattr(error, "sqlstate", None) or "").startswith(_GONE)


async def dropped(connection: AsyncConnection, error: Exception) -> None:
    """Invalidate a connection that met ``error`` (:func:`gone`), and have the pool recycle the
    connections it made before (``Engine.dispose(close=False)``), as SQLAlchemy does when its
    own statement meets one (after a server restart they all are dead)."""
    with contextlib.suppress(Exception):  # already closed: nothing left to invalidate
        await connection.invalidate(error)
    await connection.engine.dispose(close=False)


def translated(sql: str, error: Exception) -> DBAPIError:
    """asyncpg's ``error`` as the SQLAlchemy exception the session's own path would raise, so
    that callers and ``server/problems.py`` see one kind (a unique violation is an
    ``IntegrityError``, a dropped connection a retryable 503, a timeout by its SQLSTATE)."""
    state = getattr(error, "sqlstate", None) or ""
    if gone(error):
        return OperationalError(sql, None, error, connection_invalidated=True)
    if state.startswith("23"):
        return IntegrityError(sql, None, error)
    return (
        OperationalError(sql, None, error)
        if state[:2] in ("40", "55", "57")
        else DBAPIError(sql, None, error)
    )


async def _failed(session: AsyncSession, sql: str, error: Exception) -> DBAPIError:
    """:func:`translated`, the session's connection invalidated when it is :func:`gone`."""
    if gone(error):
        await dropped(await session.connection(), error)
    return translated(sql, error)


#: The tracer of ``ecert.server.tracing`` while tracing is on, else None. SQLAlchemy's
#: instrumentation sees the session's statements only; these go past it, so they open their
#: own client span (with the statement's placeholders, never its values).
tracer: Any = None


def span(sql: str) -> contextlib.AbstractContextManager[Any]:
    if tracer is None:
        return contextlib.nullcontext()
    opened: contextlib.AbstractContextManager[Any] = tracer.start_as_current_span(
        sql.lstrip().split(None, 1)[0],
        kind=_CLIENT,
        attributes={"db.system": "postgresql", "db.statement": sql},
    )
    return opened


#: ``opentelemetry.trace.SpanKind.CLIENT``'s value, without importing the optional package.
_CLIENT: Any = None


def trace_with(found: Any, client_kind: Any) -> None:
    """Open spans with ``found`` (a tracer; None: stop), of kind ``client_kind``."""
    global tracer, _CLIENT
    tracer, _CLIENT = found, client_kind


async def fetch(
    session: AsyncSession, native: Native, values: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Every row ``native`` returns for ``values`` (bind name → value)."""
    dialect, driver = await _driver(session)
    if driver is None:
        result = await session.execute(native.statement, dict(values))
        return [tuple(row) for row in result.all()]
    compiled = native.compiled(dialect)
    try:
        with span(compiled.sql):
            records = await driver.fetch(compiled.sql, *compiled.args(values))
    except DRIVER_ERRORS as exc:
        raise await _failed(session, compiled.sql, exc) from exc
    return [compiled.row(record) for record in records]


async def execute_many(
    session: AsyncSession, native: Native, rows: Sequence[Mapping[str, Any]]
) -> None:
    """``native`` once for each of ``rows``, in their order: pipelined by asyncpg on PostgreSQL
    (one round trip), ``executemany`` through the session on SQLite."""
    dialect, driver = await _driver(session)
    if driver is None:
        await session.execute(native.statement, [dict(row) for row in rows])
        return
    compiled = native.compiled(dialect)
    try:
        with span(compiled.sql):
            await driver.executemany(compiled.sql, [compiled.args(row) for row in rows])
    except DRIVER_ERRORS as exc:
        raise await _failed(session, compiled.sql, exc) from exc


async def release(session: AsyncSession) -> None:
    """Give the session's PostgreSQL connection back to the pool when nothing on it is open (no
    BEGIN was sent: its statements autocommitted), for a path that then waits on something else
    (the audit group commit) and would otherwise hold a connection through the wait. At 32
    requests in flight a worker needed a connection each, past its pool, and the overflow ones
    were opened and closed again per request (docs/performance.md, "Fifth round"). A later
    statement on the session checks one out again. Inside a transaction, or on SQLite: nothing."""
    if not session.in_transaction():
        return
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        return
    driver = (await connection.get_raw_connection()).driver_connection
    if driver is None or driver.is_in_transaction():
        return
    await session.close()


@contextlib.asynccontextmanager
async def transaction(session: AsyncSession) -> AsyncIterator[None]:
    """Commit what runs inside on leaving, roll it back on an error: on PostgreSQL asyncpg's own
    transaction on the session's connection (for statements run through this module only: the
    session's ORM knows nothing of it), on SQLite the session's. For a fresh session."""
    _, driver = await _driver(session)
    if driver is not None:
        try:
            async with driver.transaction():
                yield
        except DRIVER_ERRORS as exc:  # BEGIN, COMMIT or ROLLBACK on a dropped connection
            raise await _failed(session, "COMMIT", exc) from exc
        return
    try:
        yield
    except BaseException:
        await session.rollback()
        raise
    await session.commit()
