"""The FHIR face's own reads."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import Visit


async def visit_of_token(
    session: AsyncSession, institution_code: str, ec_token: str
) -> Visit | None:
    """The visit this institution opened with ``ec_token`` (one token opens one visit)."""
    visit: Visit | None = await session.scalar(
        select(Visit)
        .where(Visit.institution_code == institution_code, Visit.ec_token == ec_token)
        .order_by(Visit.created_at.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    return visit
