"""The ``idempotency_records`` statements behind ``ecert.settlement.idempotency`` (the claim,
takeover, stored answer and release, each fenced by the claim's token). None commits."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db import native
from ecert.db.models import IdempotencyRecord, utcnow


@functools.cache
def _claim_statement() -> native.Native:
    # A plain INSERT, built once: the dialects' INSERT … ON CONFLICT is compiled afresh for
    # every request by SQLAlchemy 2.0 (sqlalchemy#10445); a held key is a unique violation.
    # On the table, not the ORM class: an ORM INSERT goes through the bulk-persistence layer.
    table = cast(Table, IdempotencyRecord.__table__)
    names = ("scope", "key", "request_hash", "status", "started_at", "fence_token")
    return native.Native(
        insert(table).values({name: bindparam(name) for name in names}).returning(table.c.id)
    )


async def insert_claim(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """Insert a claim row; its id, or None when the unique (scope, key) says the key is held."""
    try:
        rows = await native.fetch(session, _claim_statement(), values)
    except IntegrityError:  # another attempt holds the key
        return None
    return int(rows[0][0])


async def record_of(session: AsyncSession, scope: str, key: str) -> IdempotencyRecord | None:
    record: IdempotencyRecord | None = await session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
        )
    )
    return record


async def take_over(
    session: AsyncSession, record_id: int, started_at: dt.datetime, token: str
) -> bool:
    """Give a stale claim a new start and fencing token, unless someone else moved it first."""
    taken = await session.execute(
        update(IdempotencyRecord)
        .where(
            IdempotencyRecord.id == record_id,
            IdempotencyRecord.started_at == started_at,
            IdempotencyRecord.status == "in_progress",
        )
        .values(started_at=utcnow(), fence_token=token)
    )
    return bool(taken.rowcount == 1)  # type: ignore[attr-defined]


async def store_answer(
    session: AsyncSession, record_id: int, token: str, status: int, response: dict[str, Any]
) -> bool:
    """Mark the claim done with its answer, if ``token`` still holds it."""
    done = await session.execute(
        update(IdempotencyRecord)
        .where(
            IdempotencyRecord.id == record_id,
            IdempotencyRecord.fence_token == token,
            IdempotencyRecord.status == "in_progress",
        )
        .values(status="done", response_status=status, response=response)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


async def delete_claim(session: AsyncSession, record_id: int, token: str) -> None:
    """Delete an unfinished claim, if ``token`` still holds it."""
    await session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.id == record_id,
            IdempotencyRecord.fence_token == token,
            IdempotencyRecord.status == "in_progress",
        )
    )


async def delete_claim_of(session: AsyncSession, scope: str, key: str, token: str) -> None:
    """Delete ``(scope, key)``'s unfinished claim if ``token`` holds it (found by the unique
    key: for an insert whose outcome was lost with its connection, no id came back)."""
    await session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.scope == scope,
            IdempotencyRecord.key == key,
            IdempotencyRecord.fence_token == token,
            IdempotencyRecord.status == "in_progress",
        )
    )
