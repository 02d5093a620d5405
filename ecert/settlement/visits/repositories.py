"""Visits' queries: the visit's guarded lock, its fee lines, its settlements and reversals.

Plain async functions taking the caller's session; none commits."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import FeeLine, Reversal, Settlement, Visit, VisitStatus


async def lock_if_open(
    session: AsyncSession, visit_id: uuid.UUID, institution_code: str | None, values: dict[str, Any]
) -> bool:
    """Update the institution's visit while it is open (taking its row lock); False if none."""
    changed = await session.execute(
        update(Visit)
        .where(
            Visit.id == visit_id,
            Visit.institution_code == institution_code,
            Visit.status == VisitStatus.OPEN.value,
        )
        .values(**values)
    )
    return bool(changed.rowcount == 1)  # type: ignore[attr-defined]


async def lines_of(session: AsyncSession, visit_id: uuid.UUID) -> list[FeeLine]:
    """The visit's fee lines in upload order."""
    return list(
        (
            await session.scalars(
                select(FeeLine).where(FeeLine.visit_id == visit_id).order_by(FeeLine.id)
            )
        ).all()
    )


async def fingerprints(
    session: AsyncSession, visit_id: uuid.UUID, line_nos: Collection[str]
) -> dict[str, str]:
    """The fingerprints of those of ``line_nos`` the visit already holds, by line number."""
    return {
        line.line_no: line.fingerprint
        for line in await session.scalars(
            select(FeeLine).where(FeeLine.visit_id == visit_id, FeeLine.line_no.in_(line_nos))
        )
    }


async def delete_line(session: AsyncSession, visit_id: uuid.UUID, line_no: str) -> bool:
    """Delete one fee line; False if the visit has no such line."""
    gone = await session.execute(
        delete(FeeLine).where(FeeLine.visit_id == visit_id, FeeLine.line_no == line_no)
    )
    return bool(gone.rowcount == 1)  # type: ignore[attr-defined]


async def settlements_of(session: AsyncSession, visit_id: uuid.UUID) -> Sequence[Settlement]:
    """The visit's settlements, oldest first, fresh from the database."""
    return (
        await session.scalars(
            select(Settlement)
            .where(Settlement.visit_id == visit_id)
            .order_by(Settlement.created_at)
            .execution_options(populate_existing=True)
        )
    ).all()


async def reversals_of(
    session: AsyncSession, settlement_ids: list[uuid.UUID]
) -> Sequence[Reversal]:
    """The reversals of these settlements, oldest first."""
    return (
        await session.scalars(
            select(Reversal)
            .where(Reversal.settlement_id.in_(settlement_ids))
            .order_by(Reversal.created_at, Reversal.id)
        )
    ).all()
