"""Price a visit's fee lines: the catalogue classifies each line, the one benefit engine prices
the bill, and the existing booking path settles it (2206 preview, 2207 settle).

A line becomes one bill item of its class for the part within the catalogue's price cap, and a
class C item for the part above it (over-limit, self-paid); the engine's per-item shares are
mapped back to the lines, so lines and bill add up to the fen.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from ecert import ledger
from ecert.benefits import Bill, BillItem, Layer, Split, YearToDate, compute, layer_of
from ecert.clock import business_date
from ecert.db.models import FeeLine, Person, Visit, VisitStatus
from ecert.security.audit import record_audit
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime
from ecert.settlement import idempotency
from ecert.settlement.basis import BasisLine
from ecert.settlement.context import PersonContext, designated_institution
from ecert.settlement.services import book, layer_usage
from ecert.settlement.visits import schemas
from ecert.settlement.visits.exceptions import VisitNotOpen
from ecert.settlement.visits.repositories import lines_of
from ecert.settlement.visits.services import (
    lock_open,
    owned,
)
from ecert.suspension import ensure_not_suspended


@dataclass(frozen=True)
class Priced:
    """The bill of a visit's lines and, per line, its class and where its items are."""

    bill: Bill
    lines: list[FeeLine]
    classes: list[ledger.Classified]
    #: Per line: (index of its item in the bill, index of its over-limit item or None).
    where: list[tuple[int, int | None]]


async def visit_context(session: AsyncSession, principal: Principal, visit: Visit) -> PersonContext:
    institution = await designated_institution(session, principal)
    person = await session.get(Person, visit.person_id, populate_existing=True)
    assert person is not None  # the visit's foreign key
    enrolment, policy, year = await ledger.person_policy(session, person)
    return PersonContext(person, institution, enrolment, policy, year)


async def price_input(
    session: AsyncSession, ctx: PersonContext, visit: Visit, lines: list[FeeLine], referred: bool
) -> Priced:
    found = await ledger.catalogue_entries(session, [line.list_code for line in lines])
    opened = business_date(visit.created_at)
    classes = [
        ledger.classify(
            None if found is None else found[line.list_code],
            gender=ctx.person.gender,
            birth_date=ctx.person.birth_date,
            med_type=visit.med_type,
            # Validity and age on the day the item was ordered (else the day the visit began).
            on=business_date(line.ordered_at) if line.ordered_at else opened,
            quantity=Decimal(line.quantity),
            unit_price=line.unit_price,
            declared_class=line.declared_class,  # type: ignore[arg-type]  # stored from A|B|C
            declared_ratio=line.declared_ratio,
        )
        for line in lines
    ]
    items, where = assemble(lines, classes)
    return Priced(ctx.bill(visit.med_type, items, referred), lines, classes, where)


def assemble(
    lines: list[FeeLine], classes: list[ledger.Classified]
) -> tuple[list[BillItem], list[tuple[int, int | None]]]:
    """Bill items of classified lines: the part within the price cap with the line's class, the
    part above it as class C; and where each line's items are."""
    items: list[BillItem] = []
    where: list[tuple[int, int | None]] = []
    for line, c in zip(lines, classes, strict=True):
        ratio = c.first_self_pay_ratio if c.item_class == "B" else None
        within = line.amount - c.over_limit
        items.append(BillItem(line.list_code, line.name, c.item_class, within, ratio))
        over = None
        if c.over_limit:
            name = f"{line.name[:180]}（超限价）"
            items.append(BillItem(line.list_code, name, "C", c.over_limit))
            over = len(items) - 1
        where.append((len(items) - 1 - (over is not None), over))
    return items, where


def basis_lines(priced: Priced) -> list[BasisLine]:
    """The lines as classified, kept with the settlement for returns."""
    return [
        BasisLine(
            line_no=line.line_no,
            list_code=line.list_code,
            name=line.name,
            quantity=line.quantity,
            unit_price=line.unit_price,
            item_class=c.item_class,
            first_self_pay_ratio=c.first_self_pay_ratio if c.item_class == "B" else None,
            price_cap=c.price_cap,
            reason=c.reason.value,
        )
        for line, c in zip(priced.lines, priced.classes, strict=True)
    ]


def line_splits(priced: Priced, split: Split, default_b: float) -> list[schemas.LineSplit]:
    out = []
    for line, c, (main, over) in zip(priced.lines, priced.classes, priced.where, strict=True):
        share = split.items[main]
        ratio = c.first_self_pay_ratio if c.first_self_pay_ratio is not None else default_b
        out.append(
            schemas.LineSplit(
                line_no=line.line_no,
                amount=line.amount,
                item_class=c.item_class,
                first_self_pay_ratio=ratio if c.item_class == "B" else None,
                fully_self_paid=share.fully_self_paid,
                over_limit_self_paid=c.over_limit if over is not None else 0,
                first_self_paid=share.first_self_paid,
                eligible_amount=share.eligible_amount,
                reason=c.reason.value,
            )
        )
    return out


def result(
    insurance: str,
    default_b: float,
    visit_id: uuid.UUID,
    priced: Priced,
    split: Split,
    layer: Layer | None,
) -> schemas.VisitSettlement:
    """The visit reply (pure): total = the four shares = the payments, to the fen."""
    fields = msgspec.structs.asdict(remaining(insurance, default_b, priced, split, layer))
    return schemas.VisitSettlement(settlement_id=None, visit_id=visit_id, **fields)


def fund_parts(insurance: str, layer: Layer | None, split: Split) -> list[schemas.FundPart]:
    """The basic pooled fund (national fund type <insurance type>100) and, with a policy layer
    above the cap, that layer's fund (e.g. 330100 large-expense, 390200 critical illness)."""
    basic = schemas.FundPart(
        fund_type=f"{insurance}100", amount=split.fund_paid - split.layer_fund_paid
    )
    if layer is None:
        return [basic]
    return [basic, schemas.FundPart(fund_type=layer.fund, amount=split.layer_fund_paid)]


def remaining(
    insurance: str, default_b: float, priced: Priced, split: Split, layer: Layer | None
) -> schemas.Remaining:
    """The visit fields and lines of a priced bill (pure); a return's reply uses them as well."""
    over_limit = sum(c.over_limit for c in priced.classes)
    fully = split.fully_self_paid - over_limit
    return schemas.Remaining(
        total=split.total,
        fully_self_paid=fully,
        over_limit_self_paid=over_limit,
        first_self_paid=split.first_self_paid,
        eligible_amount=split.total - split.fully_self_paid - split.first_self_paid,
        deductible_paid=split.deductible_paid + split.layer_deductible_paid,
        co_pay=split.copay_paid + split.out_of_area_paid + split.layer_copay_paid,
        over_cap_self_paid=split.over_cap_paid,
        fund_paid=split.fund_paid,
        fund_parts=fund_parts(insurance, layer, split),
        account_paid=split.account_paid,
        account_mutual_aid_paid=split.account_mutual_aid_paid,
        cash_paid=split.cash_paid,
        person_paid=split.total - split.fund_paid,
        balance_after=split.balance_after,
        lines=line_splits(priced, split, default_b),
        steps=split.steps,
    )


def _result(
    ctx: PersonContext, visit: Visit, priced: Priced, split: Split
) -> schemas.VisitSettlement:
    insurance, default_b = ctx.enrolment.insurance_type, ctx.policy.class_b_first_self_pay
    layer = layer_of(ctx.policy, visit.med_type)
    return result(insurance, default_b, visit.id, priced, split, layer)


async def price_lines(
    session: AsyncSession, principal: Principal, visit: Visit, lines: list[FeeLine]
) -> list[schemas.LineSplit]:
    """Each line's split as settling now would give it (no usage or account needed)."""
    if not lines:
        return []
    ctx = await visit_context(session, principal, visit)
    priced = await price_input(session, ctx, visit, lines, referred=False)
    # The line shares do not depend on usage or the account; those only move the later steps.
    split = compute(ctx.policy, priced.bill, YearToDate(), balance=None, use_account=False)
    return line_splits(priced, split, ctx.policy.class_b_first_self_pay)


async def preview(
    session: AsyncSession,
    principal: Principal,
    visit_id: uuid.UUID,
    data: schemas.VisitSettleRequest,
) -> schemas.VisitSettlement:
    """Price the open visit exactly as settling would now; nothing is written but the audit."""
    visit = await owned(session, principal, visit_id)
    if visit.status != VisitStatus.OPEN.value:
        raise VisitNotOpen(f"the visit is {visit.status}")
    ctx = await visit_context(session, principal, visit)
    priced = await price_input(
        session, ctx, visit, await lines_of(session, visit.id), data.referred
    )
    ytd = await ledger.usage(session, ctx.person.id, ctx.year, ctx.enrolment.insurance_type)
    balance = await ledger.balance(session, ctx.person.id)
    family = await ledger.mutual_aid_available(session, ctx.person.id) if data.mutual_aid else None
    split = compute(
        ctx.policy,
        priced.bill,
        ytd,
        balance=balance,
        use_account=data.use_account,
        mutual_aid=family,
        layer_ytd=await layer_usage(session, ctx, visit.med_type),
    )
    await record_audit(
        session, principal, ctx.person.id, "visit.preview", "ok", {"visit_id": str(visit.id)}
    )
    return _result(ctx, visit, priced, split)


async def settle(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    visit_id: uuid.UUID,
    data: schemas.VisitSettleRequest,
    key: str | None,
) -> tuple[int, dict[str, Any], bool]:
    return await idempotency.run_once_for(
        session,
        runtime,
        principal,
        key,
        f"/v1/visits/{visit_id}/settlements",
        data,
        lambda: _settle(session, principal, visit_id, data),
    )


async def _settle(
    session: AsyncSession,
    principal: Principal,
    visit_id: uuid.UUID,
    data: schemas.VisitSettleRequest,
) -> dict[str, Any]:
    # The guarded move to settled comes first: it holds concurrent fee changes off until this
    # commits, after which they find the visit settled.
    visit = await lock_open(session, principal, visit_id, VisitStatus.SETTLED)
    ctx = await visit_context(session, principal, visit)
    await ensure_not_suspended(session, visit.person_id)
    priced = await price_input(
        session, ctx, visit, await lines_of(session, visit.id), data.referred
    )
    answer: dict[str, schemas.VisitSettlement] = {}

    def detail(split: Split) -> dict[str, Any]:
        answer["result"] = _result(ctx, visit, priced, split)
        stored: dict[str, Any] = msgspec.to_builtins(answer["result"])
        # The split and lines as settled (returns will re-price against them); steps are stored
        # in their own column.
        return {k: v for k, v in stored.items() if k not in ("steps", "settlement_id")}

    settlement_id, _ = await book(
        session,
        principal,
        ctx,
        priced.bill,
        use_account=data.use_account,
        ec_token=visit.ec_token or "",
        visit_id=visit.id,
        detail=detail,
        lines=basis_lines(priced),
        mutual_aid=data.mutual_aid,
    )
    settled = msgspec.structs.replace(answer["result"], settlement_id=settlement_id)
    return msgspec.to_builtins(settled)  # type: ignore[no-any-return]
