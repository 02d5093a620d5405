"""``INSERT … ON CONFLICT`` for both engines (SQLAlchemy has one construct per dialect), and the
bulk forms imports use: on PostgreSQL, ``COPY`` (asyncpg's binary copy) instead of many-row
``INSERT`` statements, which cost SQLAlchemy ~40–60 µs a row in parameter handling alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import FromClause, Table, insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def dialect_insert(session: AsyncSession, table: FromClause) -> Any:
    """The engine's own ``insert`` construct, which has ``on_conflict_*``."""
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


async def insert_ignore(
    session: AsyncSession, table: FromClause, values: dict[str, Any], *, returning: Any = None
) -> Any:
    """Insert unless a unique key already holds the row; returns ``returning`` or None."""
    statement = dialect_insert(session, table).values(**values).on_conflict_do_nothing()
    if returning is not None:
        return (await session.execute(statement.returning(returning))).scalar_one_or_none()
    await session.execute(statement)
    return None


async def upsert(
    session: AsyncSession,
    table: FromClause,
    rows: Sequence[dict[str, Any]],
    *,
    keys: Sequence[str],
    update: Sequence[str],
) -> None:
    """Insert rows, updating ``update`` columns where the ``keys`` already exist (or leaving the
    existing row alone when ``update`` is empty). One statement, executed for many rows, so it
    compiles once and SQLAlchemy batches the parameters."""
    if not rows:
        return
    statement = dialect_insert(session, table)
    if update:
        statement = statement.on_conflict_do_update(
            index_elements=list(keys), set_={c: statement.excluded[c] for c in update}
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    await session.execute(statement, list(rows))


async def raw_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's (already begun) transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def bulk_insert(
    session: AsyncSession, table: FromClause, rows: Sequence[dict[str, Any]]
) -> None:
    """Insert many rows (all with the same keys); ``COPY`` on PostgreSQL."""
    assert isinstance(table, Table)
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        await session.execute(insert(table), list(rows))
        return
    columns = list(rows[0])
    await (await raw_connection(session)).copy_records_to_table(
        table.name, records=[tuple(r[c] for c in columns) for r in rows], columns=columns
    )


async def bulk_upsert(
    session: AsyncSession,
    table: FromClause,
    rows: Sequence[dict[str, Any]],
    *,
    keys: Sequence[str],
    update: Sequence[str],
) -> None:
    """``upsert`` for import batches. PostgreSQL: ``COPY`` into a temporary table of the same
    shape, then one ``INSERT … SELECT … ON CONFLICT`` merges it (rows must not repeat a key)."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        await upsert(session, table, rows, keys=keys, update=update)
        return
    assert isinstance(table, Table)
    columns = list(rows[0])
    staging = f"import_{table.name}"
    # Names below come from our own table metadata, never from input.
    await session.execute(
        text(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} "
            f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
    )
    await (await raw_connection(session)).copy_records_to_table(
        staging, records=[tuple(r[c] for c in columns) for r in rows], columns=columns
    )
    names = ", ".join(columns)
    action = (
        "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in update)
        if update
        else "DO NOTHING"
    )
    await session.execute(
        text(
            f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staging} "  # noqa: S608
            f"ON CONFLICT ({', '.join(keys)}) {action}"
        )
    )
