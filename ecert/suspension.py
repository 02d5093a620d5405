"""Is a person suspended? One rule, shared by issuance, verification and settlement.

A suspension is kept on the person (``person_suspensions``), so it covers every e-cert the
person holds or is given later. Hot paths embed :func:`in_force` in the query they already
run; everything else (activation, family codes, a future visit) calls
:func:`ensure_not_suspended`. Both raise the same :class:`ECertSuspended`.

This module is also the repository of ``person_suspensions`` (its queries live here, taking the
caller's session; none commits): who may impose and lift is issuance's rule
(``ecert.issuance.suspensions``).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import ColumnElement, Exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from ecert.db.models import PersonSuspension, utcnow
from ecert.errors import ECertSuspended


def in_force(
    person_id: uuid.UUID | ColumnElement[uuid.UUID] | InstrumentedAttribute[uuid.UUID],
) -> Exists:
    """SQL: the person has a suspension that nobody has lifted."""
    return (
        select(PersonSuspension.id)
        .where(PersonSuspension.person_id == person_id, PersonSuspension.lifted_at.is_(None))
        .exists()
    )


def refuse_if(suspended: bool | None) -> None:
    """Raise for a person whose :func:`in_force` came back true."""
    if suspended:
        raise ECertSuspended()


async def ensure_not_suspended(session: AsyncSession, person_id: uuid.UUID) -> None:
    """Raise :class:`ECertSuspended` while any suspension of the person is in force."""
    refuse_if(await session.scalar(select(in_force(person_id))))


async def kinds_in_force(session: AsyncSession, person_id: uuid.UUID) -> set[str]:
    kinds = await session.scalars(
        select(PersonSuspension.kind).where(
            PersonSuspension.person_id == person_id, PersonSuspension.lifted_at.is_(None)
        )
    )
    return set(kinds)


async def lift(
    session: AsyncSession, person_id: uuid.UUID, kinds: Collection[str], lifted_by: str
) -> None:
    """Lift the person's suspensions of these kinds that are in force."""
    await session.execute(
        update(PersonSuspension)
        .where(
            PersonSuspension.person_id == person_id,
            PersonSuspension.lifted_at.is_(None),
            PersonSuspension.kind.in_(kinds),
        )
        .values(lifted_at=utcnow(), lifted_by=lifted_by)
    )
