"""Issuance's queries: the revocation feed, a person's e-certs, and what the hot mint path reads.

Plain async functions taking the caller's session; none commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import (
    ECert,
    ECertStatus,
    Enrolment,
    EnrolmentStatus,
    KeyEvent,
    RevocationEntry,
    SigningKey,
    utcnow,
)
from ecert.db.upsert import insert_ignore
from ecert.suspension import in_force


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


async def has_active_enrolment(session: AsyncSession, person_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(Enrolment.id)
        .where(Enrolment.person_id == person_id, Enrolment.status == EnrolmentStatus.ACTIVE)
        .limit(1)
    )
    return found is not None


async def find_ecert(session: AsyncSession, person_id: uuid.UUID, channel: str) -> ECert | None:
    ecert: ECert | None = await session.scalar(
        select(ECert).where(ECert.person_id == person_id, ECert.channel == channel)
    )
    return ecert


async def claim_ecert(
    session: AsyncSession, person_id: uuid.UUID, channel: str, number: str, pseudonym: str
) -> tuple[ECert, bool]:
    """The person's e-cert on ``channel``, made if missing, locked for this transaction.

    Concurrent first requests (four taps on "activate") each insert-or-skip on the unique
    (person, channel) key and then read the one row, instead of three failing on the key.
    Returns the e-cert and whether this call made it.
    """
    made = await insert_ignore(
        session,
        ECert.__table__,
        {
            "person_id": person_id,
            "channel": channel,
            "number": number,
            "pseudonym": pseudonym,
            "version": 1,
            "status": ECertStatus.ACTIVE,
            "bound_at": utcnow(),
        },
        returning=ECert.__table__.c.id,
    )
    ecert = await session.scalar(
        select(ECert)
        .where(ECert.person_id == person_id, ECert.channel == channel)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert ecert is not None  # inserted above, or by the concurrent request that won
    return ecert, made is not None


class MintState(NamedTuple):
    """What minting needs of an e-cert, and whether its person is suspended."""

    ecert_id: uuid.UUID
    pseudonym: str
    version: int
    status: str
    suspended: bool


_PERSON = bindparam("person_id", type_=ECert.person_id.type)
#: Built once (Core, five columns, no ORM identity map): the statement's cache key is then
#: found without rebuilding the select on every mint.
_MINT_STATE = select(
    ECert.id, ECert.pseudonym, ECert.version, ECert.status, in_force(_PERSON)
).where(ECert.person_id == _PERSON, ECert.channel == bindparam("channel"))


async def mint_state(session: AsyncSession, person_id: uuid.UUID, channel: str) -> MintState | None:
    """The person's e-cert on ``channel`` as minting sees it; None when there is none."""
    row = (await session.execute(_MINT_STATE, {"person_id": person_id, "channel": channel})).first()
    if row is None:
        return None
    return MintState(row[0], row[1], row[2], str(row[3]), bool(row[4]))
