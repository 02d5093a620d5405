"""The ``ec_token`` a bill is priced against, read with its context (the ORM path), the caller's
institution, and the guarded spend of a token."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import contains_eager

from ecert.db.models import ECert, EcToken, Institution, Person, utcnow
from ecert.suspension import in_force


async def token_context(session: AsyncSession, ec_token: str) -> Row[Any] | None:
    """(token, institution or None, e-cert or None, person with its enrolments, suspended) of
    ``ec_token`` in one round trip; None for an unknown token. ``populate_existing`` so that a
    revocation committed before this read is seen."""
    statement = (
        select(EcToken, Institution, ECert, Person, in_force(EcToken.person_id))
        .outerjoin(Institution, Institution.code == EcToken.institution_code)
        .outerjoin(ECert, ECert.id == EcToken.ecert_id)
        .join(Person, Person.id == EcToken.person_id)
        .outerjoin(Person.enrolments)
        .options(contains_eager(Person.enrolments))
        .where(EcToken.token == ec_token)
        .execution_options(populate_existing=True)
    )
    # All rows, made unique: each carries one enrolment of the collection.
    rows = (await session.execute(statement)).unique().all()
    return rows[0] if rows else None


async def institution_fresh(session: AsyncSession, code: str | None) -> Institution | None:
    """The institution of ``code``, re-read (a designation withdrawn meanwhile is seen)."""
    institution: Institution | None = await session.scalar(
        select(Institution)
        .where(Institution.code == code)
        .execution_options(populate_existing=True)
    )
    return institution


async def spend_token(session: AsyncSession, token_id: int) -> bool:
    """Mark the token spent unless it already is; whether this call spent it (a guarded update:
    of two concurrent callers exactly one sees the row change)."""
    spent = await session.execute(
        update(EcToken)
        .where(EcToken.id == token_id, EcToken.spent_at.is_(None))
        .values(spent_at=utcnow())
    )
    return bool(spent.rowcount == 1)  # type: ignore[attr-defined]
