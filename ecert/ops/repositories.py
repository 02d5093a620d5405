"""Operations' statements: the readiness probe's round trip, and the retention purge's count and
batched delete. Plain async functions on the caller's engine or connection."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Table, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection


async def ping(connection: AsyncConnection) -> None:
    """One round trip; raises when the database does not answer."""
    await connection.execute(text("SELECT 1"))


async def count_where(connection: AsyncConnection, condition: ColumnElement[bool]) -> int:
    return int((await connection.scalar(select(func.count()).where(condition))) or 0)


async def delete_batch(
    connection: AsyncConnection, table: Table, condition: ColumnElement[bool], batch: int
) -> int:
    """Delete at most ``batch`` of the rows meeting ``condition``, lowest ids first (``DELETE …
    WHERE id IN (SELECT id … LIMIT n)``); how many went."""
    ids = table.c.id
    chosen = select(ids).where(condition).order_by(ids).limit(batch)
    result = await connection.execute(delete(table).where(ids.in_(chosen)))
    return int(result.rowcount or 0)
