"""The agency console's queries."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ecert.db.models import (
    AuditChainHead,
    AuditEvent,
    ECert,
    FamilyLink,
    Person,
    PersonSuspension,
    Staff,
)

#: The newest audit rows a trail shows.
TRAIL = 200


async def staff_by_login(session: AsyncSession, login: str) -> Staff | None:
    found: Staff | None = await session.scalar(select(Staff).where(Staff.login == login))
    return found


async def note_failed_sign_in(
    sessions: async_sessionmaker[AsyncSession],
    login: str,
    *,
    lock_after: int,
    lock_until: dt.datetime,
) -> None:
    """Count a failed sign-in in a transaction of its own: the request's rolls back with its 401.

    At ``lock_after`` failures in a row the login is locked until ``lock_until``.
    """
    async with sessions.begin() as session:
        member = await session.scalar(select(Staff).where(Staff.login == login).with_for_update())
        if member is None:
            return
        member.failed_logins += 1
        if member.failed_logins >= lock_after:
            member.locked_until, member.failed_logins = lock_until, 0


async def clear_failures(session: AsyncSession, member: Staff) -> None:
    if member.failed_logins or member.locked_until:
        await session.execute(
            update(Staff).where(Staff.id == member.id).values(failed_logins=0, locked_until=None)
        )


async def person_by_no(session: AsyncSession, person_no: str) -> Person | None:
    found: Person | None = await session.scalar(select(Person).where(Person.person_no == person_no))
    return found


async def ecerts(session: AsyncSession, person_id: uuid.UUID) -> Sequence[ECert]:
    return (
        await session.scalars(
            select(ECert).where(ECert.person_id == person_id).order_by(ECert.created_at.desc())
        )
    ).all()


async def suspensions(session: AsyncSession, person_id: uuid.UUID) -> Sequence[PersonSuspension]:
    return (
        await session.scalars(
            select(PersonSuspension).where(
                PersonSuspension.person_id == person_id, PersonSuspension.lifted_at.is_(None)
            )
        )
    ).all()


async def family(
    session: AsyncSession, person_id: uuid.UUID
) -> Sequence[tuple[FamilyLink, Person]]:
    """Each link with the person on its other side."""
    other = select(FamilyLink, Person).where(
        or_(FamilyLink.holder_id == person_id, FamilyLink.relative_id == person_id)
    )
    rows = await session.execute(
        other.join(
            Person,
            or_(
                (FamilyLink.holder_id == person_id) & (Person.id == FamilyLink.relative_id),
                (FamilyLink.relative_id == person_id) & (Person.id == FamilyLink.holder_id),
            ),
        )
    )
    return [(link, person) for link, person in rows.all()]


async def trail(session: AsyncSession, person_id: uuid.UUID) -> Sequence[AuditEvent]:
    return (
        await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.person_id == person_id)
            .order_by(AuditEvent.id.desc())
            .limit(TRAIL)
        )
    ).all()


async def successors(session: AsyncSession, hashes: set[str]) -> set[str]:
    """Those of ``hashes`` that a later row on the same chain names as its ``prev_hash``."""
    if not hashes:
        return set()
    found = await session.scalars(
        select(AuditEvent.prev_hash).where(AuditEvent.prev_hash.in_(hashes))
    )
    return {h for h in found.all() if h is not None}


async def chain_heads(session: AsyncSession) -> set[str]:
    """The newest row hash of each chain (a chain's last row has no successor)."""
    return set((await session.scalars(select(AuditChainHead.last_hash))).all())
