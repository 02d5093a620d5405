"""Mutual-aid authorisations and draws, and the settlement row lock a reversal takes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import MutualAidAuthorisation, MutualAidDraw, Reversal, Settlement


async def live_authorisation(
    session: AsyncSession, holder_id: uuid.UUID, relative_id: uuid.UUID
) -> MutualAidAuthorisation | None:
    """The pair's authorisation that nobody has revoked (at most one: partial unique index)."""
    row: MutualAidAuthorisation | None = await session.scalar(
        select(MutualAidAuthorisation).where(
            MutualAidAuthorisation.holder_id == holder_id,
            MutualAidAuthorisation.relative_id == relative_id,
            MutualAidAuthorisation.revoked_at.is_(None),
        )
    )
    return row


async def live_authorisations_of(
    session: AsyncSession, person_id: uuid.UUID
) -> Sequence[MutualAidAuthorisation]:
    """Live authorisations where the person is the holder or the relative, oldest first."""
    return (
        await session.scalars(
            select(MutualAidAuthorisation)
            .where(
                or_(
                    MutualAidAuthorisation.holder_id == person_id,
                    MutualAidAuthorisation.relative_id == person_id,
                ),
                MutualAidAuthorisation.revoked_at.is_(None),
            )
            .order_by(MutualAidAuthorisation.created_at, MutualAidAuthorisation.id)
        )
    ).all()


async def draws_of(session: AsyncSession, settlement_id: uuid.UUID) -> list[MutualAidDraw]:
    """A settlement's mutual-aid draws in drawing order, fresh from the database."""
    return list(
        (
            await session.scalars(
                select(MutualAidDraw)
                .where(MutualAidDraw.settlement_id == settlement_id)
                .order_by(MutualAidDraw.seq)
                .execution_options(populate_existing=True)
            )
        ).all()
    )


async def lock_settlement(session: AsyncSession, settlement_id: uuid.UUID) -> None:
    """Take the settlement's row lock (a no-op update: SQLite has no FOR UPDATE, and this locks
    on both)."""
    await session.execute(
        update(Settlement)
        .where(Settlement.id == settlement_id)
        .values(reversed_total=Settlement.reversed_total)
    )


async def was_reversed(session: AsyncSession, settlement_id: uuid.UUID) -> bool:
    """Whether any reversal or return of the settlement is booked (a 0-fen one included)."""
    found = await session.scalar(
        select(Reversal.id).where(Reversal.settlement_id == settlement_id).limit(1)
    )
    return found is not None
