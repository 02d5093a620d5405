"""The person's reads. Every one takes the person from the token and is audited.

The reads run on the read replica when one is configured and fresh (``ecert.db.replica``),
otherwise on the request's primary session (in autocommit: no BEGIN and COMMIT around them); the
audit row is always written on the primary, by group commit with the other reads of the moment
(``ecert.security.auditbatch``), before the answer.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import msgspec
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload

from ecert import ledger
from ecert.benefits import Bill, compute, layer_of
from ecert.clock import BUSINESS_TZ
from ecert.db.engine import reads_only
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
from ecert.db.replica import read_where_fresh
from ecert.errors import NotFound
from ecert.identity import mask_id_number, mask_name
from ecert.lookup import schemas
from ecert.persons import person_id_number, person_name
from ecert.security.audit import audit_values
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime

T = TypeVar("T")
P = ParamSpec("P")


async def _me(session: AsyncSession, principal: Principal, *, enrolments: bool = False) -> Person:
    """The caller's person row. Enrolments only when asked (one query fewer): touching
    ``person.enrolments`` without them raises instead of quietly querying."""
    assert principal.person_id is not None  # person_guard
    options = [] if enrolments else [raiseload(Person.enrolments)]
    person = await session.get(Person, principal.person_id, options=options)
    if person is None:
        raise NotFound("the person is no longer registered")
    return person


Lookup = Callable[Concatenate[AsyncSession, Runtime, Principal, P], Awaitable[T]]


def audited(action: str) -> Callable[[Lookup[P, T]], Lookup[P, T]]:
    """Make a read into the person's lookup ``action``: the read runs where it is fresh enough
    (the replica, else the request's primary session, which is the one given to the lookup),
    then the audit row is added on the primary."""

    def wrap(read: Lookup[P, T]) -> Lookup[P, T]:
        async def lookup(
            session: AsyncSession,
            runtime: Runtime,
            principal: Principal,
            /,
            *args: P.args,
            **kwargs: P.kwargs,
        ) -> T:
            if not session.in_transaction():
                await reads_only(session)  # no BEGIN and COMMIT around the reads
            result = await read_where_fresh(
                runtime.replica,
                session,
                lambda reads: read(reads, runtime, principal, *args, **kwargs),
            )
            # Committed before the answer, together with the other reads' rows of the moment.
            row = audit_values(principal, principal.person_id, action, "ok")
            await runtime.audit_batches.append(row)
            return result

        return lookup

    return wrap


@audited("lookup.enrolment")
async def enrolment(
    session: AsyncSession, runtime: Runtime, principal: Principal
) -> schemas.Enrolments:
    person = await _me(session, principal)
    rows = (
        await session.scalars(
            select(Enrolment).where(Enrolment.person_id == person.id).order_by(Enrolment.start_date)
        )
    ).all()
    return schemas.Enrolments(
        person_category=person.category,
        insured_area=person.area,
        enrolments=[
            schemas.EnrolmentView(
                insurance_type=e.insurance_type,
                status=e.status,
                area=e.area,
                employer=e.employer,
                start_date=e.start_date,
                end_date=e.end_date,
            )
            for e in rows
        ],
    )


@audited("lookup.account")
async def account(
    session: AsyncSession, runtime: Runtime, principal: Principal
) -> schemas.AccountView:
    person = await _me(session, principal)
    return schemas.AccountView(balance=await ledger.balance(session, person.id))


def _day_bounds(start: dt.date | None, end: dt.date | None) -> list[Any]:
    conditions: list[Any] = []
    if start is not None:
        conditions.append(LedgerEntry.at >= dt.datetime.combine(start, dt.time(), BUSINESS_TZ))
    if end is not None:
        after = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), BUSINESS_TZ)
        conditions.append(LedgerEntry.at < after)
    return conditions


async def _family_parties(
    session: AsyncSession,
    runtime: Runtime,
    settlement_ids: set[uuid.UUID],
    *,
    holder_id: uuid.UUID,
) -> dict[uuid.UUID, schemas.FamilyParty]:
    """For the holder's family movements: the relative each settlement was for, masked."""
    if not settlement_ids:
        return {}
    rows = (
        await session.execute(
            select(MutualAidDraw.settlement_id, MutualAidAuthorisation)
            .join(
                MutualAidAuthorisation,
                MutualAidAuthorisation.id == MutualAidDraw.authorisation_id,
            )
            .where(
                MutualAidDraw.settlement_id.in_(settlement_ids),
                MutualAidDraw.holder_id == holder_id,
            )
        )
    ).all()
    people = {p.id: p for p in await _persons(session, {a.relative_id for _, a in rows})}
    return {sid: _party(runtime, people[a.relative_id], a.relation) for sid, a in rows}


async def _persons(session: AsyncSession, ids: set[uuid.UUID]) -> list[Person]:
    if not ids:
        return []
    found = await session.scalars(
        select(Person).where(Person.id.in_(ids)).options(raiseload(Person.enrolments))
    )
    return list(found.all())


def _party(runtime: Runtime, person: Person, relation: str) -> schemas.FamilyParty:
    return schemas.FamilyParty(
        name=mask_name(person_name(runtime.cipher, person)),
        id_number=mask_id_number(person_id_number(runtime.cipher, person)),
        relation=relation,
    )


@audited("lookup.transactions")
async def transactions(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    *,
    start: dt.date | None,
    end: dt.date | None,
    limit: int,
    offset: int,
) -> schemas.TransactionPage:
    person = await _me(session, principal)
    account_id = await session.scalar(select(Account.id).where(Account.person_id == person.id))
    where = [LedgerEntry.account_id == account_id, *_day_bounds(start, end)]
    total = await session.scalar(select(func.count()).select_from(LedgerEntry).where(*where))
    rows = (
        await session.scalars(
            select(LedgerEntry)
            .where(*where)
            .order_by(LedgerEntry.at.desc(), LedgerEntry.id.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    family = {r.settlement_id for r in rows if r.kind == "family" and r.settlement_id}
    relatives = await _family_parties(session, runtime, family, holder_id=person.id)
    items = [
        schemas.Transaction(
            id=r.id,
            at=r.at,
            kind=r.kind,
            amount=r.amount,
            balance_after=r.balance_after,
            settlement_id=str(r.settlement_id) if r.settlement_id else None,
            memo=r.memo,
            relative=relatives.get(r.settlement_id) if r.settlement_id else None,
            month=_month(r),
        )
        for r in rows
    ]
    return schemas.TransactionPage(items=items, limit=limit, offset=offset, total=total or 0)


def _month(entry: LedgerEntry) -> str:
    """A monthly credit belongs to its contribution month (memo ``contribution YYYYMM``)."""
    memo = entry.memo or ""
    if entry.kind == "credit" and memo.startswith("contribution ") and memo[-6:].isdigit():
        return memo[-6:]
    return entry.at.astimezone(BUSINESS_TZ).strftime("%Y%m")


@audited("lookup.benefits")
async def benefits(
    session: AsyncSession, runtime: Runtime, principal: Principal
) -> schemas.BenefitsView:
    person = await _me(session, principal, enrolments=True)
    enrolled, policy, year = await ledger.person_policy(session, person)
    used = await ledger.usage(session, person.id, year, enrolled.insurance_type)

    def care(kind: str) -> schemas.CareView:
        rules = getattr(policy, kind)
        fund = getattr(used, f"{kind}_fund_paid")
        return schemas.CareView(
            deductible=rules.deductible,
            deductible_by_level=rules.deductible_by_level,
            later_admission_deductible=rules.later_admission_deductible,
            ratios=rules.ratios,
            cap=rules.cap,
            deductible_used=getattr(used, f"{kind}_deductible_used"),
            fund_paid=fund,
            cap_left=max(rules.cap - fund, 0),
        )

    return schemas.BenefitsView(
        area=policy.area,
        insurance_type=policy.insurance_type,
        year=year,
        category=policy.category,
        class_b_first_self_pay=policy.class_b_first_self_pay,
        outpatient=care("outpatient"),
        inpatient=care("inpatient"),
        inpatient_admissions=used.inpatient_admissions,
    )


@audited("lookup.estimate")
async def estimate(
    session: AsyncSession, runtime: Runtime, principal: Principal, data: schemas.EstimateRequest
) -> ledger.Costs:
    """The settlement engine on the person's own policy, usage and balance; nothing is written."""
    person = await _me(session, principal, enrolments=True)
    enrolled, policy, year = await ledger.person_policy(session, person)
    used = await ledger.usage(session, person.id, year, enrolled.insurance_type)
    balance = await ledger.balance(session, person.id)
    bill = Bill(
        med_type=data.med_type, items=data.items, level=data.level, out_of_area=data.out_of_area
    )
    family = await ledger.mutual_aid_available(session, person.id) if data.mutual_aid else None
    layer = layer_of(policy, data.med_type)
    layer_used = None
    if layer is not None:
        layer_used = await ledger.usage(session, person.id, year, layer.insurance_type)
    split = compute(
        policy,
        bill,
        used,
        balance=balance,
        use_account=data.use_account,
        mutual_aid=family,
        layer_ytd=layer_used,
    )
    return ledger.Costs(**ledger.costs_of(split))


@audited("lookup.settlements")
async def settlements(
    session: AsyncSession, runtime: Runtime, principal: Principal, *, limit: int, offset: int
) -> schemas.SettlementPage:
    person = await _me(session, principal)
    where = [Settlement.person_id == person.id]
    total = await session.scalar(select(func.count()).select_from(Settlement).where(*where))
    rows = (
        await session.scalars(
            select(Settlement)
            .where(*where)
            .order_by(Settlement.created_at.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    draws = (
        await session.execute(
            select(MutualAidDraw, MutualAidAuthorisation.relation)
            .join(
                MutualAidAuthorisation,
                MutualAidAuthorisation.id == MutualAidDraw.authorisation_id,
            )
            .where(MutualAidDraw.settlement_id.in_([s.id for s in rows]))
            .order_by(MutualAidDraw.seq)
        )
    ).all()
    holders = {p.id: p for p in await _persons(session, {d.holder_id for d, _ in draws})}
    sources: dict[uuid.UUID, list[schemas.MutualAidSource]] = {}
    for d, relation in draws:
        holder = _party(runtime, holders[d.holder_id], relation)
        sources.setdefault(d.settlement_id, []).append(
            schemas.MutualAidSource(holder=holder, amount=d.amount)
        )
    items = [
        schemas.MySettlement(
            **msgspec.structs.asdict(ledger.settlement_view(s)), mutual_aid=sources.get(s.id, [])
        )
        for s in rows
    ]
    return schemas.SettlementPage(items=items, limit=limit, offset=offset, total=total or 0)


@audited("lookup.contributions")
async def contributions(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    *,
    start: str | None,
    end: str | None,
    limit: int,
    offset: int,
) -> schemas.ContributionPage:
    person = await _me(session, principal)
    where = [Contribution.person_id == person.id]
    if start:
        where.append(Contribution.month >= start)
    if end:
        where.append(Contribution.month <= end)
    year = func.substr(Contribution.month, 1, 4)
    paid = Contribution.status.in_((ContributionStatus.PAID, ContributionStatus.BACK_PAID))
    totals = (
        await session.execute(
            select(
                year,
                func.sum(Contribution.employer_amount),
                func.sum(Contribution.employee_amount),
                func.sum(case((paid, Contribution.account_credit), else_=0)),
                func.sum(case((paid, 1), else_=0)),
                func.sum(case((Contribution.status == ContributionStatus.ARREARS, 1), else_=0)),
            )
            .where(*where)
            .group_by(year)
            .order_by(year.desc())
        )
    ).all()
    rows = (
        await session.scalars(
            select(Contribution)
            .where(*where)
            .order_by(Contribution.month.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return schemas.ContributionPage(
        items=[
            schemas.ContributionView(
                month=c.month,
                base=c.base,
                employer_amount=c.employer_amount,
                employee_amount=c.employee_amount,
                account_credit=c.account_credit,
                status=c.status,
                credited=c.credited,
            )
            for c in rows
        ],
        totals_by_year=[
            schemas.YearTotals(
                year=int(y),
                employer_amount=int(er or 0),
                employee_amount=int(ee or 0),
                account_credit=int(cr or 0),
                months_paid=int(p or 0),
                months_in_arrears=int(a or 0),
            )
            for y, er, ee, cr, p, a in totals
        ],
        limit=limit,
        offset=offset,
        total=sum(int(p or 0) + int(a or 0) for *_, p, a in totals),
    )
