"""Issuance's queries: the revocation feed and a person's e-certs.

Plain async functions taking the caller's session; none commits. (E-cert lookups that the hot
paths share still sit beside their rules in ``services.py``.)"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import ECert, KeyEvent, RevocationEntry, SigningKey


async def feed_state(session: AsyncSession) -> tuple[int, int]:
    """(the feed's newest sequence number, the key table's version), in one index-only read."""
    head = select(func.max(RevocationEntry.id)).scalar_subquery()
    keys = select(func.max(KeyEvent.id)).scalar_subquery()
    row = (await session.execute(select(head, keys))).one()
    return int(row[0] or 0), int(row[1] or 0)


async def revocation_entries(
    session: AsyncSession, since: int, limit: int
) -> Sequence[RevocationEntry]:
    """Feed entries with ``seq > since`` in order, at most ``limit``."""
    return (
        await session.scalars(
            select(RevocationEntry)
            .where(RevocationEntry.id > since)
            .order_by(RevocationEntry.id)
            .limit(limit)
        )
    ).all()


async def revoked_kids(session: AsyncSession) -> list[str]:
    """The kids of emergency-revoked QR and feed keys, in order."""
    return list(
        (
            await session.scalars(
                select(SigningKey.kid)
                .where(SigningKey.state == "revoked", SigningKey.purpose.in_(("qr", "feed")))
                .order_by(SigningKey.kid)
            )
        ).all()
    )


async def person_ecerts(session: AsyncSession, person_id: uuid.UUID) -> Sequence[ECert]:
    """All of a person's e-certs, every channel and status."""
    return (await session.scalars(select(ECert).where(ECert.person_id == person_id))).all()
