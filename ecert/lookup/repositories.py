"""The lookups' queries: Core statements built once a process (binds, not values), plain rows out.

Building a statement costs more Python than running it, and an ORM load more than a Core row, so
the person's reads select only the columns their answer shows. Each statement also says whether
the token's person still exists (``persons`` is its first table): no read of the person first.
Plain async functions taking the caller's session; none writes.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Integer,
    Row,
    Select,
    String,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from ecert.db import native
from ecert.db.models import (
    Account,
    Contribution,
    ContributionStatus,
    Enrolment,
    LedgerEntry,
    MutualAidAuthorisation,
    MutualAidDraw,
    Person,
    Settlement,
)

#: Open bounds of a contribution month range (YYYYMM compares as text).
FIRST_MONTH, LAST_MONTH = "000000", "999999"
#: ``part`` of a row of :func:`contributions`.
MONTH, YEAR, PERSON = 0, 1, 2


async def person(session: AsyncSession, person_id: uuid.UUID) -> Person | None:
    """The person row, with its enrolments, for the ledger's policy and usage reads (they take
    a :class:`Person`)."""
    return await session.get(Person, person_id, options=[selectinload(Person.enrolments)])


def _part(part: int) -> Any:
    return literal_column(str(part), Integer)  # inline: no bind to type in a UNION


class ContributionRow(NamedTuple):
    """A row of :func:`contributions`; which columns are set depends on ``part`` (a month's
    columns, a year's sums, or none for the person's row), hence ``Any``."""

    part: int
    key: Any
    base: Any
    employer_amount: Any
    employee_amount: Any
    account_credit: Any
    paid: Any
    arrears: Any
    status: Any
    credited: Any


@functools.cache
def _native_contributions() -> native.Native:
    return native.Native(_contributions())


@functools.cache
def _contributions() -> Select[Any]:
    """The page of months, the totals of every year in the range and the person's existence in
    one statement (a ``UNION ALL`` of three parts, told apart by ``part``). Both contribution
    parts walk the ``(person_id, month)`` unique index."""
    c = Contribution
    where = (
        c.person_id == bindparam("person_id"),
        c.month >= bindparam("start"),
        c.month <= bindparam("end"),
    )
    page = (
        select(
            _part(MONTH).label("part"),
            c.month.label("key"),
            c.base,
            c.employer_amount,
            c.employee_amount,
            c.account_credit,
            cast(null(), BigInteger).label("paid"),
            cast(null(), BigInteger).label("arrears"),
            c.status,
            c.credited,
        )
        .where(*where)
        .order_by(c.month.desc())
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
        .subquery()
    )
    year = func.substr(c.month, 1, 4)
    # Two comparisons, not IN of a list: an IN is expanded per execution (and cannot be native).
    paid = or_(c.status == ContributionStatus.PAID, c.status == ContributionStatus.BACK_PAID)

    def total(value: Any) -> Any:
        # PostgreSQL sums bigint as numeric: back to bigint, as the page's columns are.
        return cast(func.sum(value), BigInteger)

    totals = (
        select(
            _part(YEAR),
            year,
            cast(null(), BigInteger),
            total(c.employer_amount),
            total(c.employee_amount),
            total(case((paid, c.account_credit), else_=0)),
            total(case((paid, 1), else_=0)),
            total(case((c.status == ContributionStatus.ARREARS, 1), else_=0)),
            cast(null(), String),
            cast(null(), Boolean),
        )
        .where(*where)
        .group_by(year)
    )
    exists = select(
        _part(PERSON),
        cast(null(), String),
        *[cast(null(), BigInteger) for _ in range(6)],
        cast(null(), String),
        cast(null(), Boolean),
    ).where(Person.id == bindparam("person_id"))
    return union_all(select(*page.c), totals, exists).subquery().select()


async def contributions(
    session: AsyncSession,
    person_id: uuid.UUID,
    *,
    start: str | None,
    end: str | None,
    limit: int,
    offset: int,
) -> list[ContributionRow]:
    """Rows of :func:`_contributions` in no particular order: ``part`` is MONTH (``key`` the
    month, the month's columns), YEAR (``key`` the year; ``employer_amount``,
    ``employee_amount``, ``account_credit``, ``paid``, ``arrears`` summed) or PERSON (present
    when the person exists)."""
    values = {
        "person_id": person_id,
        "start": start or FIRST_MONTH,
        "end": end or LAST_MONTH,
        "limit": limit,
        "offset": offset,
    }
    # Natively on PostgreSQL: the statement is the lookup's only one (ecert.db.native).
    rows = await native.fetch(session, _native_contributions(), values)
    return [ContributionRow(*row) for row in rows]


@functools.cache
def _enrolments() -> Select[Any]:
    return (
        select(
            Person.category,
            Person.area.label("insured_area"),
            Enrolment.insurance_type,
            Enrolment.status,
            Enrolment.area,
            Enrolment.employer,
            Enrolment.start_date,
            Enrolment.end_date,
        )
        .outerjoin(Enrolment, Enrolment.person_id == Person.id)
        .where(Person.id == bindparam("person_id"))
        .order_by(Enrolment.start_date)
    )


@functools.cache
def _exists() -> Select[Any]:
    return select(Person.id).where(Person.id == bindparam("person_id"))


async def exists(session: AsyncSession, person_id: uuid.UUID) -> bool:
    return await session.scalar(_exists(), {"person_id": person_id}) is not None


async def enrolments(session: AsyncSession, person_id: uuid.UUID) -> Sequence[Row[Any]]:
    """The person's category and area on every row, one row per enrolment (oldest first; one
    with ``insurance_type`` None when there is none); no row when the person is gone."""
    return (await session.execute(_enrolments(), {"person_id": person_id})).all()


@functools.cache
def _account() -> Select[Any]:
    return (
        select(Person.id, Account.id.label("account_id"), Account.balance)
        .outerjoin(Account, Account.person_id == Person.id)
        .where(Person.id == bindparam("person_id"))
    )


async def account(session: AsyncSession, person_id: uuid.UUID) -> Row[Any] | None:
    """``(id, account_id, balance)``, the account's None when the person has no personal
    account; None when the person is gone."""
    return (await session.execute(_account(), {"person_id": person_id})).first()


@functools.cache
def _movements(start: bool, end: bool) -> Select[Any]:
    """A page of an account's movements, newest first, each row with the count of them all (a
    window: counted before the page is cut, in the same statement)."""
    e = LedgerEntry
    return (
        select(
            e.id,
            e.at,
            e.kind,
            e.amount,
            e.balance_after,
            e.settlement_id,
            e.memo,
            func.count().over().label("total"),
        )
        .where(*_in_days(start, end))
        .order_by(e.at.desc(), e.id.desc())
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )


@functools.cache
def _movement_count(start: bool, end: bool) -> Select[Any]:
    return select(func.count()).select_from(LedgerEntry).where(*_in_days(start, end))


def _in_days(start: bool, end: bool) -> list[ColumnElement[bool]]:
    """An account's movements, from ``start`` and before ``end`` when they are bound."""
    e = LedgerEntry
    where = [e.account_id == bindparam("account_id")]
    if start:
        where.append(e.at >= bindparam("start"))
    if end:
        where.append(e.at < bindparam("end"))
    return where


async def movements(
    session: AsyncSession, account_id: uuid.UUID, *, bounds: dict[str, Any], limit: int, offset: int
) -> tuple[Sequence[Row[Any]], int]:
    """A page of the account's movements in ``bounds`` (``start``/``end`` datetimes, either
    optional) and how many there are in all."""
    start, end = bounds.get("start") is not None, bounds.get("end") is not None
    values = {
        "account_id": account_id,
        "limit": limit,
        "offset": offset,
        **{k: v for k, v in bounds.items() if v is not None},
    }
    rows = (await session.execute(_movements(start, end), values)).all()
    return rows, await _total(session, rows, offset, _movement_count(start, end), values)


async def _total(
    session: AsyncSession,
    rows: Sequence[Row[Any]],
    offset: int,
    count: Select[Any],
    values: dict[str, Any],
) -> int:
    """The window's count; a page past the end has no row to carry it: counted apart then."""
    if rows:
        return int(rows[0].total)
    return int(await session.scalar(count, values) or 0) if offset else 0


@functools.cache
def _draws(for_relatives: bool) -> Select[Any]:
    """Mutual aid draws of some settlements with the other party's sealed ID number and name:
    the relative each was for (a holder's family movements), else the holder who paid."""
    d, a = MutualAidDraw, MutualAidAuthorisation
    party = a.relative_id if for_relatives else d.holder_id
    where: list[ColumnElement[bool]] = [
        d.settlement_id.in_(bindparam("settlements", expanding=True))
    ]
    if for_relatives:
        where.append(d.holder_id == bindparam("holder_id"))
    return (
        select(d.settlement_id, d.amount, a.relation, Person.id_cipher, Person.name_cipher)
        .join(a, a.id == d.authorisation_id)
        .join(Person, Person.id == party)
        .where(*where)
        .order_by(d.seq)
    )


async def relatives(
    session: AsyncSession, settlement_ids: Collection[uuid.UUID], holder_id: uuid.UUID
) -> Sequence[Row[Any]]:
    """For the holder's family movements: ``(settlement_id, amount, relation, id_cipher,
    name_cipher)`` of the relative each settlement was for."""
    if not settlement_ids:
        return []
    values = {"settlements": list(settlement_ids), "holder_id": holder_id}
    return (await session.execute(_draws(True), values)).all()


@functools.cache
def _settlements() -> Select[Any]:
    return (
        select(Settlement, func.count().over().label("total"))
        .where(Settlement.person_id == bindparam("person_id"))
        .order_by(Settlement.created_at.desc())
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )


@functools.cache
def _settlement_count() -> Select[Any]:
    where = Settlement.person_id == bindparam("person_id")
    return select(func.count()).select_from(Settlement).where(where)


async def settlements(
    session: AsyncSession, person_id: uuid.UUID, *, limit: int, offset: int
) -> tuple[list[Settlement], int]:
    """A page of the person's settlements, newest first (the ledger's view reads the row), and
    how many there are in all."""
    values = {"person_id": person_id, "limit": limit, "offset": offset}
    rows = (await session.execute(_settlements(), values)).all()
    total = await _total(session, rows, offset, _settlement_count(), values)
    return [row[0] for row in rows], total


async def sources(
    session: AsyncSession, settlement_ids: Collection[uuid.UUID]
) -> Sequence[Row[Any]]:
    """The mutual aid draws that paid these settlements, in order: ``(settlement_id, amount,
    relation, id_cipher, name_cipher)`` with the holder's sealed ID number and name."""
    if not settlement_ids:
        return []
    return (await session.execute(_draws(False), {"settlements": list(settlement_ids)})).all()
