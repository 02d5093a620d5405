"""The gateway's own queries: the signing client, and signatures already seen."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import Client, Enrolment, UsedJti
from ecert.db.upsert import insert_ignore


async def signing_client(session: AsyncSession, client_id: str) -> Client | None:
    """An active institution client by id (its institution is loaded with it)."""
    if not client_id or len(client_id) > 64:
        return None
    client: Client | None = await session.scalar(
        select(Client).where(
            Client.client_id == client_id,
            Client.kind == "institution",
            Client.active.is_(True),
        )
    )
    return client


async def consume_signature(
    session: AsyncSession, client_id: str, signature: str, expires_at: dt.datetime
) -> bool:
    """True the first time a client's signature is seen: the unique key of ``used_jtis`` decides,
    so a replay is refused with Redis down or flushed (the store only rejects early)."""
    row = {"issuer": f"gw:{client_id}"[:64], "jti": signature[:128], "expires_at": expires_at}
    table = UsedJti.__table__
    return await insert_ignore(session, table, row, returning=table.c.id) is not None


async def enrolments_of(session: AsyncSession, person_id: uuid.UUID) -> list[Enrolment]:
    return list(
        (
            await session.scalars(
                select(Enrolment)
                .where(Enrolment.person_id == person_id)
                .order_by(Enrolment.insurance_type)
            )
        ).all()
    )
