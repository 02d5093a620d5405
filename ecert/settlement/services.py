"""Preview and settle bills (the one booking path), find an institution's settlement."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from ecert import ledger
from ecert.benefits import Bill, Split, YearToDate, compute, layer_of
from ecert.clock import business_date
from ecert.db.models import Settlement
from ecert.ledger import COLUMN_FIELDS, costs_of
from ecert.metrics import SETTLEMENTS
from ecert.security.audit import record_audit
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime
from ecert.settlement import idempotency
from ecert.settlement import mutual_aid as aid
from ecert.settlement.basis import Basis, BasisLine, one_shot_lines
from ecert.settlement.context import PersonContext, pricing_context, spend
from ecert.settlement.exceptions import SettlementNotFound
from ecert.settlement.schemas import SettlementRequest, SettlementResult


async def preview(
    session: AsyncSession, principal: Principal, data: SettlementRequest
) -> SettlementResult:
    """Price the bill exactly as settling would now; nothing is written but the audit row."""
    ctx = await pricing_context(session, principal, data.ec_token)
    ctx.allow(data.med_type)
    ytd = await ledger.usage(session, ctx.person.id, ctx.year, ctx.enrolment.insurance_type)
    balance = await ledger.balance(session, ctx.person.id)
    family = await ledger.mutual_aid_available(session, ctx.person.id) if data.mutual_aid else None
    split = compute(
        ctx.policy,
        ctx.bill(data.med_type, data.items, data.referred),
        ytd,
        balance=balance,
        use_account=data.use_account,
        mutual_aid=family,
        layer_ytd=await layer_usage(session, ctx, data.med_type),
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
    ctx.allow(data.med_type)
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
    lines: list[BasisLine] | None = None,
) -> tuple[Settlement, Split]:
    """Price and book a bill in the caller's transaction: lock the person's usage and account
    (and the accounts of relatives who authorised mutual aid, when asked), price, write the
    settlement, debit the accounts, store usage, audit. One-shot settlements and visits both
    come here, so a bill is never priced or booked two ways. ``lines``: the visit's lines as
    classified (default: the bill's items by position), kept with what the bill was priced
    against so that returns can price what remains the same way."""
    person_id, insurance = ctx.person.id, ctx.enrolment.insurance_type
    family = use_account and mutual_aid
    sources = await ledger.mutual_aid_sources(session, person_id) if family else []
    holders = [a.holder_id for a in sources]
    ytd, balance = await ledger.lock_person(session, person_id, ctx.year, insurance, also=holders)
    held = await ledger.holder_balances(session, holders)
    available = sum(held.values()) if family else None
    layer = layer_of(ctx.policy, bill.med_type)
    layer_ytd = None
    if layer is not None:
        layer_ytd = await ledger.lock_usage(session, person_id, ctx.year, layer.insurance_type)
    split = compute(
        ctx.policy,
        bill,
        ytd,
        balance=balance,
        use_account=use_account,
        mutual_aid=available,
        layer_ytd=layer_ytd,
    )
    draws = aid.plan(split.account_mutual_aid_paid, sources, held)
    stored = {} if detail is None else detail(split)
    if family:
        stored |= aid.detail_of(draws)
    basis = Basis(
        policy=ctx.policy,
        insurance_type=insurance,
        med_type=bill.med_type,
        level=bill.level,
        out_of_area=bill.out_of_area,
        usage_before=ytd,
        balance_before=balance,
        use_account=use_account,
        lines=one_shot_lines(bill) if lines is None else lines,
        mutual_aid_before=available,
        layer_usage_before=layer_ytd,
    )
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
        pricing=msgspec.to_builtins(basis),
        **{
            **{f: getattr(split, f) for f in COLUMN_FIELDS},
            "steps": msgspec.to_builtins(split.steps),
        },
    )
    session.add(settlement)
    await session.flush()
    # Here, once a settlement is written (one-shot or visit), never on an idempotent replay.
    SETTLEMENTS.labels(bill.med_type).inc()
    if split.account_paid:
        await ledger.move(
            session,
            person_id,
            -split.account_paid,
            kind="debit",
            settlement_id=settlement.id,
            memo=ctx.institution.code,
        )
    await aid.debit(session, settlement, draws, memo=ctx.institution.code)
    await ledger.store_usage(session, person_id, ctx.year, insurance, split.usage_after)
    if layer is not None and split.layer_usage_after is not None:
        await ledger.store_usage(
            session, person_id, ctx.year, layer.insurance_type, split.layer_usage_after
        )
    await record_audit(
        session,
        principal,
        person_id,
        "settlement.settle",
        "ok",
        {"settlement_id": str(settlement.id), "total": split.total},
    )
    return settlement, split


async def layer_usage(
    session: AsyncSession, ctx: PersonContext, med_type: str
) -> YearToDate | None:
    """The usage of the policy's layer above the cap for this care (None: no layer)."""
    layer = layer_of(ctx.policy, med_type)
    if layer is None:
        return None
    return await ledger.usage(session, ctx.person.id, ctx.year, layer.insurance_type)


async def owned(
    session: AsyncSession, principal: Principal, settlement_id: uuid.UUID
) -> Settlement:
    settlement = await session.get(Settlement, settlement_id, populate_existing=True)
    if settlement is None or settlement.institution_code != principal.institution_code:
        raise SettlementNotFound()
    return settlement
