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
from ecert.benefits import Bill, BillItem, Split, YearToDate, compute
from ecert.clock import business_date
from ecert.db.models import FeeLine, Person, Settlement, Visit, VisitStatus
from ecert.runtime import Runtime
from ecert.security.audit import record_audit
from ecert.security.tokens import Principal
from ecert.settlement import idempotency
from ecert.settlement.basis import BasisLine
from ecert.settlement.context import PersonContext, designated_institution
from ecert.settlement.services import book
from ecert.settlement.visits import schemas
from ecert.settlement.visits.exceptions import VisitNotOpen
from ecert.settlement.visits.services import (
    lines_of,
    lock_open,
    masked_person,
    owned,
    settlements_of,
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
    insurance: str, default_b: float, visit_id: uuid.UUID, priced: Priced, split: Split
) -> schemas.VisitSettlement:
    """The visit reply (pure): total = the four shares = the payments, to the fen."""
    fields = msgspec.structs.asdict(remaining(insurance, default_b, priced, split))
    return schemas.VisitSettlement(settlement_id=None, visit_id=visit_id, **fields)


def remaining(insurance: str, default_b: float, priced: Priced, split: Split) -> schemas.Remaining:
    """The visit fields and lines of a priced bill (pure); a return's reply uses them as well."""
    over_limit = sum(c.over_limit for c in priced.classes)
    fully = split.fully_self_paid - over_limit
    return schemas.Remaining(
        total=split.total,
        fully_self_paid=fully,
        over_limit_self_paid=over_limit,
        first_self_paid=split.first_self_paid,
        eligible_amount=split.total - split.fully_self_paid - split.first_self_paid,
        deductible_paid=split.deductible_paid,
        co_pay=split.copay_paid + split.out_of_area_paid,
        over_cap_self_paid=split.over_cap_paid,
        fund_paid=split.fund_paid,
        # Only the basic pooled fund (national fund type <insurance type>100) in this slice.
        fund_parts=[schemas.FundPart(f"{insurance}100", split.fund_paid)],
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
    return result(insurance, default_b, visit.id, priced, split)


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
    return await idempotency.run_once(
        session,
        runtime,
        principal.client_id,
        key,
        idempotency.fingerprint(f"/v1/visits/{visit_id}/settlements", data),
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

    settlement, _ = await book(
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
    settled = msgspec.structs.replace(answer["result"], settlement_id=settlement.id)
    return msgspec.to_builtins(settled)  # type: ignore[no-any-return]


async def view(
    session: AsyncSession, runtime: Runtime, principal: Principal, visit_id: uuid.UUID
) -> schemas.VisitView:
    """The visit, its lines (as settled, or as they would price now) and its settlements."""
    visit = await owned(session, principal, visit_id)
    person = await session.get(Person, visit.person_id)
    assert person is not None
    lines = await lines_of(session, visit.id)
    settlements = await settlements_of(session, visit.id)
    splits: dict[str, schemas.LineSplit] = {}
    if settlements:
        stored = await _settled_lines(session, settlements[-1].settlement_id)
        splits = {s.line_no: s for s in stored}
    else:
        splits = {s.line_no: s for s in await price_lines(session, principal, visit, lines)}
    await record_audit(
        session, principal, person.id, "visit.read", "ok", {"visit_id": str(visit.id)}
    )
    return schemas.VisitView(
        visit_id=visit.id,
        status=visit.status,
        person=masked_person(runtime, person),
        insurance_type=visit.insurance_type,
        med_type=visit.med_type,
        opened_at=visit.created_at,
        his_visit_no=visit.his_visit_no,
        dept_code=visit.dept_code,
        dept_name=visit.dept_name,
        doctor_code=visit.doctor_code,
        doctor_name=visit.doctor_name,
        diagnoses=msgspec.convert(visit.diagnoses, list[schemas.Diagnosis]),
        admitted_at=visit.admitted_at,
        lines=[_line_view(line, splits[line.line_no]) for line in lines],
        settlements=settlements,
    )


async def _settled_lines(
    session: AsyncSession, settlement_id: uuid.UUID
) -> list[schemas.LineSplit]:
    row = await session.get(Settlement, settlement_id)
    detail = (row.detail if row is not None else None) or {}
    return msgspec.convert(detail.get("lines", []), list[schemas.LineSplit])


def _line_view(line: FeeLine, split: schemas.LineSplit) -> schemas.FeeLineView:
    return schemas.FeeLineView(
        **{f: getattr(split, f) for f in split.__struct_fields__},
        list_code=line.list_code,
        hospital_code=line.hospital_code,
        name=line.name,
        quantity=line.quantity,
        unit_price=line.unit_price,
        ordered_at=line.ordered_at,
        doctor_code=line.doctor_code,
    )
