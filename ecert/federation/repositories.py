"""Queries of the federation package: routed visits, clearing records, routed institutions and
the month's figures on both sides of a province pair."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import ClearingRecord, FederatedVisit, Institution, Reversal, Settlement
from ecert.db.upsert import insert_ignore, upsert


async def visit_province(session: AsyncSession, visit_id: uuid.UUID) -> str | None:
    """The province a routed visit lives in; None for our own visits."""
    province: str | None = await session.scalar(
        select(FederatedVisit.province).where(FederatedVisit.remote_id == visit_id)
    )
    return province


async def settlement_province(session: AsyncSession, settlement_id: uuid.UUID) -> str | None:
    """The province a routed settlement lives in; None for our own settlements."""
    province: str | None = await session.scalar(
        select(ClearingRecord.province).where(
            ClearingRecord.remote_id == settlement_id, ClearingRecord.kind == "settlement"
        )
    )
    return province


async def add_visit(
    session: AsyncSession, visit_id: uuid.UUID, province: str, institution_code: str
) -> None:
    await insert_ignore(
        session,
        FederatedVisit.__table__,
        {
            "remote_id": visit_id,
            "province": province,
            "institution_code": institution_code,
        },
    )


async def add_clearing(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Record once (a replayed reply names the same remote id); False when it was there."""
    added = await insert_ignore(
        session, ClearingRecord.__table__, values, returning=ClearingRecord.__table__.c.id
    )
    return added is not None


async def institution(session: AsyncSession, code: str) -> Institution | None:
    found: Institution | None = await session.scalar(
        select(Institution).where(Institution.code == code)
    )
    return found


async def put_institution(session: AsyncSession, values: dict[str, Any]) -> None:
    """Create or update a routed institution (another province's hospital) by its code."""
    update = ["name", "kind", "level", "area", "designated"]
    await upsert(session, Institution.__table__, [values], keys=["code"], update=update)


def _month(column: Any, first: dt.date, after: dt.date) -> list[Any]:
    return [column >= first, column < after]


async def treated(
    session: AsyncSession, first: dt.date, after: dt.date
) -> Sequence[Row[tuple[str, str, int, int, int, int, int, int]]]:
    """Our clearing records of the month by insured province and kind: count and pool sums."""
    c = ClearingRecord
    statement = (
        select(
            c.province,
            c.kind,
            func.count(),
            func.coalesce(func.sum(c.total), 0),
            func.coalesce(func.sum(c.fund_paid), 0),
            func.coalesce(func.sum(c.account_paid), 0),
            func.coalesce(func.sum(c.mutual_aid_paid), 0),
            func.coalesce(func.sum(c.cash_paid), 0),
        )
        .where(*_month(c.business_date, first, after))
        .group_by(c.province, c.kind)
    )
    return (await session.execute(statement)).all()


async def insured_settlements(
    session: AsyncSession, own_prefix: str, first: dt.date, after: dt.date
) -> Sequence[Row[tuple[str, int, int, int, int, int, int]]]:
    """Our settlements of the month at other provinces' institutions, by their province prefix."""
    s, prefix = Settlement, func.substr(Institution.area, 1, 2)
    statement = (
        select(
            prefix,
            func.count(),
            func.coalesce(func.sum(s.total), 0),
            func.coalesce(func.sum(s.fund_paid), 0),
            func.coalesce(func.sum(s.account_paid), 0),
            # The split's fourth pool is not a column: total = fund + account + mutual aid + cash.
            func.coalesce(func.sum(s.total - s.fund_paid - s.account_paid - s.cash_paid), 0),
            func.coalesce(func.sum(s.cash_paid), 0),
        )
        .join(Institution, Institution.code == s.institution_code)
        .where(prefix != own_prefix, *_month(s.business_date, first, after))
        .group_by(prefix)
    )
    return (await session.execute(statement)).all()


async def insured_reversals(
    session: AsyncSession, own_prefix: str, first: dt.date, after: dt.date
) -> Sequence[Row[tuple[str, int, int, int, int, int, int]]]:
    """Our reversals of the month at other provinces' institutions, by their province prefix."""
    r, prefix = Reversal, func.substr(Institution.area, 1, 2)
    statement = (
        select(
            prefix,
            func.count(),
            func.coalesce(func.sum(r.amount), 0),
            func.coalesce(func.sum(r.fund_refund), 0),
            func.coalesce(func.sum(r.account_refund), 0),
            func.coalesce(func.sum(r.account_mutual_aid_refund), 0),
            func.coalesce(func.sum(r.cash_refund), 0),
        )
        .join(Institution, Institution.code == r.institution_code)
        .where(prefix != own_prefix, *_month(r.business_date, first, after))
        .group_by(prefix)
    )
    return (await session.execute(statement)).all()


async def routed_entries(
    session: AsyncSession, prefix: str, first: dt.date, after: dt.date
) -> list[dict[str, Any]]:
    """Our settlements and reversals of the month at institutions of province ``prefix``."""
    s, r, area = Settlement, Reversal, func.substr(Institution.area, 1, 2)
    settled = (
        select(
            s.id.label("remote_id"),
            s.id.label("settlement_id"),
            s.institution_code,
            s.business_date,
            s.total,
            s.fund_paid,
            s.account_paid,
            (s.total - s.fund_paid - s.account_paid - s.cash_paid).label("account_mutual_aid_paid"),
            s.cash_paid,
        )
        .join(Institution, Institution.code == s.institution_code)
        .where(area == prefix, *_month(s.business_date, first, after))
    )
    reversed_ = (
        select(
            r.id.label("remote_id"),
            r.settlement_id,
            r.institution_code,
            r.business_date,
            r.amount.label("total"),
            r.fund_refund.label("fund_paid"),
            r.account_refund.label("account_paid"),
            r.account_mutual_aid_refund.label("account_mutual_aid_paid"),
            r.cash_refund.label("cash_paid"),
        )
        .join(Institution, Institution.code == r.institution_code)
        .where(area == prefix, *_month(r.business_date, first, after))
    )
    rows = [{"kind": "settlement", **m} for m in (await session.execute(settled)).mappings()]
    rows += [{"kind": "reversal", **m} for m in (await session.execute(reversed_)).mappings()]
    return rows
