"""``INSERT … ON CONFLICT`` for both engines (SQLAlchemy has one construct per dialect)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import FromClause
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
