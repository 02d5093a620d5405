"""Preview and settle bills (the one booking path), find an institution's settlement."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from ecert import ledger
from ecert.benefits import Bill, Split, YearToDate, compute, layer_of
from ecert.clock import business_date
from ecert.db.models import Settlement, utcnow
from ecert.ledger import COLUMN_FIELDS, costs_of
from ecert.metrics import SETTLEMENTS
from ecert.security import auditchain
from ecert.security.audit import audit_values, record_audit
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime
from ecert.settlement import idempotency, repositories
from ecert.settlement import mutual_aid as aid
from ecert.settlement.basis import Basis, BasisLine, one_shot_lines
from ecert.settlement.context import PersonContext, loaded_context, pricing_context, spend
from ecert.settlement.exceptions import SettlementNotFound
from ecert.settlement.schemas import SettlementRequest, SettlementResult

#: A new settlement has reversed nothing yet.
REVERSED_COLUMNS = (
    "reversed_total",
    "reversed_fund",
    "reversed_account",
    "reversed_cash",
    "reversed_deductible",
)


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
    return await idempotency.run_once_storing(
        session,
        runtime,
        principal.client_id,
        key,
        idempotency.fingerprint("/v1/settlements", data),
        lambda claimed: _settle(session, runtime, principal, data, claimed),
    )


def _body(settlement_id: uuid.UUID, split: Split) -> dict[str, Any]:
    result = SettlementResult(settlement_id=settlement_id, **costs_of(split))
    return msgspec.to_builtins(result)  # type: ignore[no-any-return]


async def _settle(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    data: SettlementRequest,
    claimed: idempotency.Claim,
) -> tuple[dict[str, Any], bool]:
    """The settlement's answer, and whether the write stored it (PostgreSQL's one-shot path)."""
    if data.mutual_aid and data.use_account:
        # Relatives' accounts are locked with the person's, in person order, before pricing:
        # the path that loads and locks step by step (``book`` without ``locked``).
        priced = await pricing_context(session, principal, data.ec_token)
        priced.allow(data.med_type)
        await spend(session, priced.token)  # before the money moves: a second one stops here
        ctx: PersonContext = priced
        locked, token_id, head = None, None, None
    else:
        year = ledger.business_year()
        loaded = await repositories.load(
            session, data.ec_token, principal.institution_code or "", year, utcnow()
        )
        ctx = await loaded_context(session, runtime.policies, principal, loaded, year)
        ctx.allow(data.med_type)
        assert loaded is not None  # loaded_context refuses a missing token
        locked, token_id, head = loaded.locked, loaded.token_id, loaded.head
    answer = None
    if head is not None:  # the write stores the answer with the audit row (the load's chain)
        answer = idempotency.Answer(claimed, 201, _body)
    settlement_id, split = await book(
        session,
        principal,
        ctx,
        ctx.bill(data.med_type, data.items, data.referred),
        use_account=data.use_account,
        ec_token=data.ec_token,
        mutual_aid=data.mutual_aid,
        locked=locked,
        token_id=token_id,
        head=head,
        answer=answer,
    )
    return _body(settlement_id, split), answer is not None


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
    locked: repositories.Locked | None = None,
    token_id: int | None = None,
    head: tuple[int, str] | None = None,
    answer: idempotency.Answer | None = None,
) -> tuple[uuid.UUID, Split]:
    """Price and book a bill in the caller's transaction: lock the person's usage and account
    (and the accounts of relatives who authorised mutual aid, when asked), price, write the
    settlement, debit the accounts, store usage, audit. One-shot settlements and visits both
    come here, so a bill is never priced or booked two ways. ``lines``: the visit's lines as
    classified (default: the bill's items by position), kept with what the bill was priced
    against so that returns can price what remains the same way. ``locked``: the usage row and
    account as the caller's load already locked them (PostgreSQL's one-shot settle; never with
    mutual aid). ``token_id``: the ``ec_token`` row to spend with the write. ``head``: the audit
    chain head the load locked (PostgreSQL): the audit row is then written by the write, and so
    is ``answer``, the Idempotency-Key's (only with ``head``)."""
    person_id, insurance = ctx.person.id, ctx.enrolment.insurance_type
    family = use_account and mutual_aid
    sources = await ledger.mutual_aid_sources(session, person_id) if family else []
    holders = [a.holder_id for a in sources]
    if locked is None:
        ytd, balance = await ledger.lock_person(
            session, person_id, ctx.year, insurance, also=holders
        )
    else:
        ytd, balance = locked.usage, locked.balance
    held = await ledger.holder_balances(session, holders) if holders else {}
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
    now = utcnow()
    settlement_id = uuid7()
    row: dict[str, Any] = {
        "id": settlement_id,
        "institution_code": ctx.institution.code,
        "person_id": person_id,
        "ec_token": ec_token,
        "med_type": bill.med_type,
        "insurance_type": insurance,
        "year": ctx.year,
        "business_date": business_date(),
        "items": msgspec.to_builtins(bill.items),
        **{f: getattr(split, f) for f in COLUMN_FIELDS},
        "steps": msgspec.to_builtins(split.steps),
        **dict.fromkeys(REVERSED_COLUMNS, 0),
        "visit_id": visit_id,
        "detail": stored or None,
        "pricing": msgspec.to_builtins(basis),
        "created_at": now,
        "updated_at": now,
    }
    memo = ctx.institution.code
    audit = {"settlement_id": str(settlement_id), "total": split.total}
    values = audit_values(principal, person_id, "settlement.settle", "ok", audit)
    linked = None
    if head is not None:  # the row chained here, its MAC computed before the write sends it
        linked = auditchain.link(session, *await auditchain.take_link(session, *head), values)
    storing = None if answer is None else answer.stored(settlement_id, split)
    free = await repositories.write(
        session,
        repositories.Booking(
            settlement=row,
            person_id=person_id,
            year=ctx.year,
            insurance_type=insurance,
            usage_after=split.usage_after,
            debit=split.account_paid,
            memo=memo,
            token_id=token_id,
            now=now,
            audit=linked,
            answer=storing,
        ),
    )
    # Here, once a settlement is written (one-shot or visit), never on an idempotent replay.
    SETTLEMENTS.labels(bill.med_type).inc()
    await aid.debit(session, settlement_id, draws, memo=memo)
    if layer is not None and split.layer_usage_after is not None:
        await ledger.store_usage(
            session, person_id, ctx.year, layer.insurance_type, split.layer_usage_after
        )
    if linked is not None:  # written by the write
        return settlement_id, split
    if free is None:  # SQLite, or no chain was free: written at the commit, last
        await record_audit(session, principal, person_id, "settlement.settle", "ok", audit)
    else:  # the chain the write locked: the row in one statement of its own
        chain, prev = await auditchain.take_link(session, *free)
        await auditchain.insert_linked(session, chain, prev, values)
    return settlement_id, split


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
