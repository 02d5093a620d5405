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
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from ecert import ledger
from ecert.benefits import Bill, compute, layer_of
from ecert.clock import BUSINESS_TZ
from ecert.db.engine import reads_only
from ecert.db.models import Person
from ecert.db.replica import read_where_fresh
from ecert.errors import NotFound
from ecert.identity import mask_id_number, mask_name
from ecert.lookup import repositories, schemas
from ecert.persons import open_id_number, open_name
from ecert.security.audit import audit_values
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime

T = TypeVar("T")
P = ParamSpec("P")


def _mine(principal: Principal) -> uuid.UUID:
    assert principal.person_id is not None  # person_guard
    return principal.person_id


def _gone() -> NotFound:
    return NotFound("the person is no longer registered")


async def _me(session: AsyncSession, principal: Principal) -> Person:
    """The caller's person row with its enrolments, for the ledger's policy and usage reads."""
    person = await repositories.person(session, _mine(principal))
    if person is None:
        raise _gone()
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
            await runtime.audit_batches.append(row, session)
            return result

        return lookup

    return wrap


@audited("lookup.enrolment")
async def enrolment(
    session: AsyncSession, runtime: Runtime, principal: Principal
) -> schemas.Enrolments:
    rows = await repositories.enrolments(session, _mine(principal))
    if not rows:
        raise _gone()
    return schemas.Enrolments(
        person_category=rows[0].category,
        insured_area=rows[0].insured_area,
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
            if e.insurance_type is not None
        ],
    )


@audited("lookup.account")
async def account(
    session: AsyncSession, runtime: Runtime, principal: Principal
) -> schemas.AccountView:
    found = await repositories.account(session, _mine(principal))
    if found is None:
        raise _gone()
    return schemas.AccountView(balance=None if found.balance is None else int(found.balance))


def _day_bounds(start: dt.date | None, end: dt.date | None) -> dict[str, dt.datetime | None]:
    """Business days as the instants they start and end at (Asia/Shanghai)."""
    after = None if end is None else end + dt.timedelta(days=1)
    return {
        "start": None if start is None else dt.datetime.combine(start, dt.time(), BUSINESS_TZ),
        "end": None if after is None else dt.datetime.combine(after, dt.time(), BUSINESS_TZ),
    }


def _party(
    runtime: Runtime, id_cipher: bytes, name_cipher: bytes, relation: str
) -> schemas.FamilyParty:
    return schemas.FamilyParty(
        name=mask_name(open_name(runtime.cipher, name_cipher)),
        id_number=mask_id_number(open_id_number(runtime.cipher, id_cipher)),
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
    person_id = _mine(principal)
    found = await repositories.account(session, person_id)
    if found is None:
        raise _gone()
    if found.account_id is None:
        return schemas.TransactionPage(items=[], limit=limit, offset=offset, total=0)
    rows, total = await repositories.movements(
        session, found.account_id, bounds=_day_bounds(start, end), limit=limit, offset=offset
    )
    family = {r.settlement_id for r in rows if r.kind == "family" and r.settlement_id}
    relatives = {
        r.settlement_id: _party(runtime, r.id_cipher, r.name_cipher, r.relation)
        for r in await repositories.relatives(session, family, person_id)
    }
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
    return schemas.TransactionPage(items=items, limit=limit, offset=offset, total=total)


def _month(entry: Row[Any]) -> str:
    """A monthly credit belongs to its contribution month (memo ``contribution YYYYMM``)."""
    memo: str = entry.memo or ""
    if entry.kind == "credit" and memo.startswith("contribution ") and memo[-6:].isdigit():
        return memo[-6:]
    at: dt.datetime = entry.at
    return at.astimezone(BUSINESS_TZ).strftime("%Y%m")


@audited("lookup.benefits")
async def benefits(
    session: AsyncSession, runtime: Runtime, principal: Principal
) -> schemas.BenefitsView:
    person = await _me(session, principal)
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
    person = await _me(session, principal)
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
    person_id = _mine(principal)
    rows, total = await repositories.settlements(session, person_id, limit=limit, offset=offset)
    if not rows and not await repositories.exists(session, person_id):
        raise _gone()
    sources: dict[uuid.UUID, list[schemas.MutualAidSource]] = {}
    for d in await repositories.sources(session, [s.id for s in rows]):
        holder = _party(runtime, d.id_cipher, d.name_cipher, d.relation)
        sources.setdefault(d.settlement_id, []).append(
            schemas.MutualAidSource(holder=holder, amount=d.amount)
        )
    items = [
        schemas.MySettlement(
            **msgspec.structs.asdict(ledger.settlement_view(s)), mutual_aid=sources.get(s.id, [])
        )
        for s in rows
    ]
    return schemas.SettlementPage(items=items, limit=limit, offset=offset, total=total)


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
    rows = await repositories.contributions(
        session, _mine(principal), start=start, end=end, limit=limit, offset=offset
    )
    parts: dict[int, list[repositories.ContributionRow]] = {
        repositories.MONTH: [],
        repositories.YEAR: [],
    }
    for row in rows:
        parts.setdefault(row.part, []).append(row)
    if repositories.PERSON not in parts:
        raise _gone()
    months = sorted(parts[repositories.MONTH], key=lambda r: r.key, reverse=True)
    years = sorted(parts[repositories.YEAR], key=lambda r: r.key, reverse=True)
    return schemas.ContributionPage(
        items=[
            schemas.ContributionView(
                month=c.key,
                base=c.base,
                employer_amount=c.employer_amount,
                employee_amount=c.employee_amount,
                account_credit=c.account_credit,
                status=c.status,
                credited=c.credited,
            )
            for c in months
        ],
        totals_by_year=[
            schemas.YearTotals(
                year=int(y.key),
                employer_amount=int(y.employer_amount or 0),
                employee_amount=int(y.employee_amount or 0),
                account_credit=int(y.account_credit or 0),
                months_paid=int(y.paid or 0),
                months_in_arrears=int(y.arrears or 0),
            )
            for y in years
        ],
        limit=limit,
        offset=offset,
        total=sum(int(y.paid or 0) + int(y.arrears or 0) for y in years),
    )
