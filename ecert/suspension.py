"""Is a person suspended? One rule, shared by issuance, verification and settlement.

A suspension is kept on the person (``person_suspensions``), so it covers every e-cert the
person holds or is given later. Hot paths embed :func:`in_force` in the query they already
run; everything else (activation, family codes, a future visit) calls
:func:`ensure_not_suspended`. Both raise the same :class:`ECertSuspended`.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, Exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from ecert.db.models import PersonSuspension
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
