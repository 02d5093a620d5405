"""The day's settlements and reversals as reconciliation reads them: sums and keyset pages.

Plain functions taking the caller's session (or a session maker, for the detail stream's short
reads); none commits."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import Row, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from ecert.db.models import Person, Reversal, Settlement
from ecert.settlement.reconciliation.schemas import Totals

Filters = list[ColumnElement[bool]]
Runner = Callable[[Select[Any]], Awaitable[Sequence[Row[Any]]]]


def runner(session: AsyncSession) -> Runner:
    """Run each page in the caller's session."""

    async def run(statement: Select[Any]) -> Sequence[Row[Any]]:
        return (await session.execute(statement)).all()

    return run


def fresh_session_runner(sessions: async_sessionmaker[AsyncSession]) -> Runner:
    """Run each page in a short session of its own: a slow reader holds no transaction."""

    async def run(statement: Select[Any]) -> Sequence[Row[Any]]:
        async with sessions() as session:
            return (await session.execute(statement)).all()

    return run


def settlement_filters(
    *,
    med_types: list[str] | None = None,
    other_than: list[str] | None = None,
    insurance: str | None = None,
) -> Filters:
    """Conditions on the settlement (a reversal is filtered by the bill it reverses)."""
    where: Filters = []
    if other_than is not None:
        where.append(Settlement.med_type.not_in(other_than))
    if med_types is not None:
        where.append(Settlement.med_type.in_(med_types))
    if insurance is not None:
        where.append(Settlement.insurance_type == insurance)
    return where


async def day_totals(
    session: AsyncSession, code: str, day: dt.date, where: Filters
) -> tuple[Totals, Totals]:
    """Settlements and reversals of the day, summed by the database."""
    settled = (
        await session.execute(
            select(
                func.count(Settlement.id),
                *(
                    func.coalesce(func.sum(column), 0)
                    for column in (
                        Settlement.total,
                        Settlement.fund_paid,
                        Settlement.account_paid,
                        Settlement.cash_paid,
                    )
                ),
            ).where(Settlement.institution_code == code, Settlement.business_date == day, *where)
        )
    ).one()
    reversed_ = (
        await session.execute(
            select(
                func.count(Reversal.id),
                *(
                    func.coalesce(func.sum(column), 0)
                    for column in (
                        Reversal.amount,
                        Reversal.fund_refund,
                        Reversal.account_refund,
                        Reversal.cash_refund,
                    )
                ),
            )
            .join(Settlement, Settlement.id == Reversal.settlement_id)
            .where(Reversal.institution_code == code, Reversal.business_date == day, *where)
        )
    ).one()
    # PostgreSQL sums bigint as numeric: back to int fen.
    fields = Totals.__struct_fields__
    return (
        Totals(**{f: int(v) for f, v in zip(fields, settled, strict=True)}),
        Totals(**{f: int(v) for f, v in zip(fields, reversed_, strict=True)}),
    )


def _after(at: Any, ident: Any, after: tuple[dt.datetime, uuid.UUID] | None) -> Filters:
    if after is None:
        return []
    return [or_(at > after[0], and_(at == after[0], ident > after[1]))]


def settlement_lines(
    code: str, day: dt.date, where: Filters, after: tuple[dt.datetime, uuid.UUID] | None
) -> Select[Any]:
    return (
        select(
            Settlement.id,
            Settlement.id.label("settlement_id"),
            Settlement.created_at.label("at"),
            Settlement.business_date,
            Settlement.business_date.label("settlement_date"),
            Settlement.med_type,
            Settlement.insurance_type,
            Person.person_no,
            Settlement.visit_id,
            Settlement.total,
            Settlement.fund_paid,
            Settlement.account_paid,
            Settlement.cash_paid,
        )
        .join(Person, Person.id == Settlement.person_id)
        .where(
            Settlement.institution_code == code,
            Settlement.business_date == day,
            *where,
            *_after(Settlement.created_at, Settlement.id, after),
        )
        .order_by(Settlement.created_at, Settlement.id)
    )


def reversal_lines(
    code: str, day: dt.date, where: Filters, after: tuple[dt.datetime, uuid.UUID] | None
) -> Select[Any]:
    return (
        select(
            Reversal.id,
            Reversal.settlement_id,
            Reversal.created_at.label("at"),
            Reversal.business_date,
            Settlement.business_date.label("settlement_date"),
            Settlement.med_type,
            Settlement.insurance_type,
            Person.person_no,
            Settlement.visit_id,
            Reversal.amount.label("total"),
            Reversal.fund_refund.label("fund_paid"),
            Reversal.account_refund.label("account_paid"),
            Reversal.cash_refund.label("cash_paid"),
        )
        .join(Settlement, Settlement.id == Reversal.settlement_id)
        .join(Person, Person.id == Settlement.person_id)
        .where(
            Reversal.institution_code == code,
            Reversal.business_date == day,
            *where,
            *_after(Reversal.created_at, Reversal.id, after),
        )
        .order_by(Reversal.created_at, Reversal.id)
    )
