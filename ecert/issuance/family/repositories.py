"""Family links' queries. Plain async functions taking the caller's session; none commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import FamilyLink


async def link_between(
    session: AsyncSession, holder_id: uuid.UUID, relative_id: uuid.UUID
) -> FamilyLink | None:
    """The holder's link to the relative, whatever its status."""
    link: FamilyLink | None = await session.scalar(
        select(FamilyLink).where(
            FamilyLink.holder_id == holder_id, FamilyLink.relative_id == relative_id
        )
    )
    return link


async def live_link_count(session: AsyncSession, holder_id: uuid.UUID) -> int:
    """How many relatives the holder has, pending or active."""
    live = await session.scalar(
        select(func.count())
        .select_from(FamilyLink)
        .where(FamilyLink.holder_id == holder_id, FamilyLink.status != "revoked")
    )
    return int(live or 0)


async def links_of(session: AsyncSession, person_id: uuid.UUID) -> Sequence[FamilyLink]:
    """Links where the person is the holder or the relative, not revoked, oldest first."""
    return (
        await session.scalars(
            select(FamilyLink)
            .where(
                or_(FamilyLink.holder_id == person_id, FamilyLink.relative_id == person_id),
                FamilyLink.status != "revoked",
            )
            .order_by(FamilyLink.created_at)
        )
    ).all()
