"""Preview and settle bills, read a settlement, reconcile a day."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.benefits import Bill, Split, Step, compute
from ecert.clock import business_date
from ecert.db.models import Reversal, Settlement
from ecert.runtime import Runtime
from ecert.security.audit import record_audit
from ecert.security.tokens import Principal
from ecert.settlement import accounts, idempotency
from ecert.settlement import mutual_aid as aid
from ecert.settlement.context import PersonContext, pricing_context, spend
from ecert.settlement.exceptions import SettlementNotFound
from ecert.settlement.schemas import (
    Costs,
    Reconciliation,
    ReconciliationLine,
    SettlementRequest,
    SettlementResult,
    SettlementView,
    Totals,
)

COST_FIELDS = tuple(f.name for f in msgspec.structs.fields(Costs))
#: Mutual aid is kept in ``settlements.detail`` (no column of its own).
COLUMN_FIELDS = tuple(f for f in COST_FIELDS if f != "account_mutual_aid_paid")


def costs_of(split: Split) -> dict[str, Any]:
    """The split's public fields (what previews, settlements and estimates return)."""
    return {name: getattr(split, name) for name in COST_FIELDS}


async def preview(
    session: AsyncSession, principal: Principal, data: SettlementRequest
) -> SettlementResult:
    """Price the bill exactly as settling would now; nothing is written but the audit row."""
    ctx = await pricing_context(session, principal, data.ec_token)
    ytd = await accounts.usage(session, ctx.person.id, ctx.year, ctx.enrolment.insurance_type)
    balance = await accounts.balance(session, ctx.person.id)
    family = await aid.available(session, ctx.person.id) if data.mutual_aid else None
    split = compute(
        ctx.policy,
        ctx.bill(data.med_type, data.items, data.referred),
        ytd,
        balance=balance,
        use_account=data.use_account,
        mutual_aid=family,
    )
    await record_audit(session, principal, ctx.person.id, "settlement.preview", "ok")
    return SettlementResult(settlement_id=None, **costs_of(split))


async def settle(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    data: SettlementRequest,
    key: str | None,
) -> tuple[int, dict[str, Any], bool]:
    """Settle once per Idempotency-Key: one transaction for debit, ledger, usage and record."""
    return await idempotency.run_once(
        session,
        runtime,
        principal.client_id,
        key,
        idempotency.fingerprint("/v1/settlements", data),
        lambda: _settle(session, principal, data),
    )


async def _settle(
    session: AsyncSession, principal: Principal, data: SettlementRequest
) -> dict[str, Any]:
    ctx = await pricing_context(session, principal, data.ec_token)
    await spend(session, ctx.token)  # before the money moves: a second settlement stops here
    settlement, split = await book(
        session,
        principal,
        ctx,
        ctx.bill(data.med_type, data.items, data.referred),
        use_account=data.use_account,
        ec_token=data.ec_token,
        mutual_aid=data.mutual_aid,
    )
    result = SettlementResult(settlement_id=settlement.id, **costs_of(split))
    return msgspec.to_builtins(result)  # type: ignore[no-any-return]


async def book(
    session: AsyncSession,
    principal: Principal,
    ctx: PersonContext,
    bill: Bill,
    *,
    use_account: bool,
    ec_token: str,
    visit_id: uuid.UUID | None = None,
    detail: Callable[[Split], dict[str, Any]] | None = None,
    mutual_aid: bool = False,
) -> tuple[Settlement, Split]:
    """Price and book a bill in the caller's transaction: lock the person's usage and account
    (and the accounts of relatives who authorised mutual aid, when asked), price, write the
    settlement, debit the accounts, store usage, audit. One-shot settlements and visits both
    come here, so a bill is never priced or booked two ways."""
    person_id, insurance = ctx.person.id, ctx.enrolment.insurance_type
    family = use_account and mutual_aid
    sources = await aid.sources(session, person_id) if family else []
    holders = [a.holder_id for a in sources]
    ytd, balance = await accounts.lock_person(session, person_id, ctx.year, insurance, also=holders)
    held = await aid.balances(session, holders)
    split = compute(
        ctx.policy,
        bill,
        ytd,
        balance=balance,
        use_account=use_account,
        mutual_aid=sum(held.values()) if family else None,
    )
    draws = aid.plan(split.account_mutual_aid_paid, sources, held)
    stored = {} if detail is None else detail(split)
    if family:
        stored |= aid.detail_of(draws)
    settlement = Settlement(
        institution_code=ctx.institution.code,
        person_id=person_id,
        ec_token=ec_token,
        med_type=bill.med_type,
        insurance_type=insurance,
        year=ctx.year,
        business_date=business_date(),
        items=msgspec.to_builtins(bill.items),
        visit_id=visit_id,
        detail=stored or None,
        **{
            **{f: getattr(split, f) for f in COLUMN_FIELDS},
            "steps": msgspec.to_builtins(split.steps),
        },
    )
    session.add(settlement)
    await session.flush()
    if split.account_paid:
        await accounts.move(
            session,
            person_id,
            -split.account_paid,
            kind="debit",
            settlement_id=settlement.id,
            memo=ctx.institution.code,
        )
    await aid.debit(session, settlement, draws, memo=ctx.institution.code)
    await accounts.store_usage(session, person_id, ctx.year, insurance, split.usage_after)
    await record_audit(
        session,
        principal,
        person_id,
        "settlement.settle",
        "ok",
        {"settlement_id": str(settlement.id), "total": split.total},
    )
    return settlement, split


async def owned(
    session: AsyncSession, principal: Principal, settlement_id: uuid.UUID
) -> Settlement:
    settlement = await session.get(Settlement, settlement_id, populate_existing=True)
    if settlement is None or settlement.institution_code != principal.institution_code:
        raise SettlementNotFound()
    return settlement


def view(settlement: Settlement) -> SettlementView:
    status = "settled"
    if settlement.reversed_total:
        status = (
            "reversed" if settlement.reversed_total == settlement.total else "partially_reversed"
        )
    return SettlementView(
        settlement_id=settlement.id,
        status=status,
        med_type=settlement.med_type,
        settled_at=settlement.created_at,
        business_date=settlement.business_date,
        reversed_total=settlement.reversed_total,
        account_mutual_aid_paid=mutual_aid_paid(settlement),
        **{
            **{name: getattr(settlement, name) for name in COLUMN_FIELDS},
            "steps": msgspec.convert(settlement.steps, list[Step]),
        },
    )


def mutual_aid_paid(settlement: Settlement) -> int:
    return int((settlement.detail or {}).get("account_mutual_aid_paid", 0))


async def reconcile(session: AsyncSession, principal: Principal, day: dt.date) -> Reconciliation:
    code = principal.institution_code or ""
    settlements = (
        await session.scalars(
            select(Settlement)
            .where(Settlement.institution_code == code, Settlement.business_date == day)
            .order_by(Settlement.created_at)
        )
    ).all()
    reversals = (
        await session.scalars(
            select(Reversal)
            .where(Reversal.institution_code == code, Reversal.business_date == day)
            .order_by(Reversal.created_at)
        )
    ).all()
    lines = [
        ReconciliationLine(
            "settlement",
            s.id,
            s.id,
            s.created_at,
            s.total,
            s.fund_paid,
            s.account_paid,
            s.cash_paid,
        )
        for s in settlements
    ] + [
        ReconciliationLine(
            "reversal",
            r.id,
            r.settlement_id,
            r.created_at,
            r.amount,
            r.fund_refund,
            r.account_refund,
            r.cash_refund,
        )
        for r in reversals
    ]
    sums = {kind: Totals() for kind in ("settlement", "reversal")}
    for line in lines:
        t = sums[line.kind]
        sums[line.kind] = Totals(
            t.count + 1,
            t.total + line.total,
            t.fund_paid + line.fund_paid,
            t.account_paid + line.account_paid,
            t.cash_paid + line.cash_paid,
        )
    s, r = sums["settlement"], sums["reversal"]
    net = Totals(
        s.count - r.count,
        s.total - r.total,
        s.fund_paid - r.fund_paid,
        s.account_paid - r.account_paid,
        s.cash_paid - r.cash_paid,
    )
    return Reconciliation(
        date=day, institution_code=code, settlements=s, reversals=r, net=net, details=lines
    )
