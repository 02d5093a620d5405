"""Returns that re-price (docs/settlement.md): lines given back, the rest of the bill priced again.

A settlement keeps what it was priced against (:mod:`ecert.settlement.basis`). A return adds the
returned quantities to those of earlier returns, prices the remaining bill against the original's
policy, year-to-date usage and balance, and each pool gets back what it pays before this return
minus what it pays after; year-to-date usage (deductible, fund and cap used, admissions) moves
back by the same difference. So after any sequence of returns every pool and counter is exactly
where pricing the remaining bill from scratch would put it: a returned class C drug gives the
patient's cash its whole amount back and the fund nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from ecert import ledger
from ecert.benefits import INPATIENT_TYPES, Bill, Split, YearToDate, compute, layer_of
from ecert.clock import business_date
from ecert.db.models import FeeLine, Reversal, ReversalKind, Settlement
from ecert.errors import ValidationFailed
from ecert.ledger import Classified, Reason, fen, over_limit
from ecert.metrics import REVERSALS
from ecert.security.audit import record_audit
from ecert.security.tokens import Principal
from ecert.settlement import mutual_aid
from ecert.settlement.basis import Basis
from ecert.settlement.exceptions import (
    ReturnExceedsLine,
    ReturnLineNotFound,
    ReturnNotPossible,
    ReversalTooLarge,
)
from ecert.settlement.schemas import ReturnLine, ReversalRequest, ReversalResult
from ecert.settlement.visits.fees import parse_quantity
from ecert.settlement.visits.pricing import Priced, assemble, remaining
from ecert.settlement.visits.schemas import Remaining

#: The pools a refund goes back to (docs/settlement.md, returns).
POOLS = ("fund", "account", "account_mutual_aid", "cash")


def quantity_text(quantity: Decimal) -> str:
    return format(quantity.normalize(), "f") if quantity else "0"


def reprice(basis: Basis, returned: Mapping[str, Decimal]) -> tuple[Remaining, Split]:
    """Price what remains after ``returned`` (pure): each line's remaining quantity, its amount
    and over-limit part by the same half-up rule as fees, against the original's usage and
    balance. Fully returned lines drop out; nothing left prices to zero (no admission)."""
    lines: list[FeeLine] = []
    classes: list[Classified] = []
    for line in basis.lines:
        left = Decimal(line.quantity) - returned.get(line.line_no, Decimal(0))
        if left <= 0:
            continue
        # A transient row (never added to a session): the visit pricing maps rows to items.
        lines.append(
            FeeLine(
                line_no=line.line_no,
                list_code=line.list_code,
                name=line.name,
                quantity=quantity_text(left),
                unit_price=line.unit_price,
                amount=fen(left, line.unit_price),
            )
        )
        classes.append(
            Classified(
                line.item_class,
                line.first_self_pay_ratio,
                over_limit(left, line.unit_price, line.price_cap),
                Reason(line.reason),
                line.price_cap,
            )
        )
    items, where = assemble(lines, classes)
    bill = Bill(basis.med_type, items, basis.level, basis.out_of_area)
    if items:
        split = compute(
            basis.policy,
            bill,
            basis.usage_before,
            balance=basis.balance_before,
            use_account=basis.use_account,
            mutual_aid=basis.mutual_aid_before,
            layer_ytd=basis.layer_usage_before,
        )
    else:
        split = _nothing(basis)
    priced = Priced(bill, lines, classes, where)
    default_b = basis.policy.class_b_first_self_pay
    layer = layer_of(basis.policy, basis.med_type)
    return remaining(basis.insurance_type, default_b, priced, split, layer), split


def _nothing(basis: Basis) -> Split:
    return Split(
        total=0,
        fully_self_paid=0,
        first_self_paid=0,
        deductible_paid=0,
        copay_paid=0,
        out_of_area_paid=0,
        over_cap_paid=0,
        fund_paid=0,
        account_paid=0,
        account_mutual_aid_paid=0,
        cash_paid=0,
        balance_after=basis.balance_before,
        steps=[],
        usage_after=basis.usage_before,
        items=[],
        layer_usage_after=basis.layer_usage_before,
    )


def pools(costs: Remaining) -> dict[str, int]:
    return {
        "fund": costs.fund_paid,
        "account": costs.account_paid,
        "account_mutual_aid": costs.account_mutual_aid_paid,
        "cash": costs.cash_paid,
    }


def add_returns(
    basis: Basis, before: Mapping[str, Decimal], asked: list[ReturnLine]
) -> dict[str, Decimal]:
    """The returned quantities after this return; refuses unknown lines, a line twice in one
    request, and returning a line beyond its quantity."""
    quantities = {line.line_no: Decimal(line.quantity) for line in basis.lines}
    after = dict(before)
    seen: set[str] = set()
    for r in asked:
        if r.line_no in seen:
            raise ValidationFailed(f"line {r.line_no} is returned twice in one request")
        seen.add(r.line_no)
        if r.line_no not in quantities:
            raise ReturnLineNotFound(f"line {r.line_no} is not a line of this settlement")
        total = after.get(r.line_no, Decimal(0)) + parse_quantity(r.line_no, r.quantity)
        if total > quantities[r.line_no]:
            left = quantity_text(quantities[r.line_no] - after.get(r.line_no, Decimal(0)))
            raise ReturnExceedsLine(f"line {r.line_no}: {left} is left to return")
        after[r.line_no] = total
    return after


async def route(
    session: AsyncSession, s: Settlement, refunds: Mapping[str, int], memo: str
) -> None:
    """Give each pool its refund: the fund by the settlement's record (and usage, by the
    caller), the account by a ``reversal`` ledger row, mutual aid to whoever paid it."""
    if refunds["account"]:
        await ledger.move(
            session, s.person_id, refunds["account"], kind="reversal", settlement_id=s.id, memo=memo
        )
    if refunds["account_mutual_aid"]:
        await refund_mutual_aid(session, s, refunds["account_mutual_aid"], memo)


async def refund_mutual_aid(session: AsyncSession, s: Settlement, amount: int, memo: str) -> None:
    """Give mutual aid back to the authorising account(s) that paid it, the last drawn first
    (ledger kind ``family``); the caller has locked them (``mutual_aid.holders_drawn``)."""
    await mutual_aid.refund_mutual_aid(session, s, amount)


async def return_lines(
    session: AsyncSession, principal: Principal, s: Settlement, data: ReversalRequest
) -> dict[str, Any]:
    """Return ``data.lines`` of the (locked) settlement ``s`` in the caller's transaction."""
    assert data.lines is not None
    if s.pricing is None:
        raise ReturnNotPossible("the settlement predates returns by line; reverse by amount")
    if s.reversed_total == s.total and s.total:
        raise ReversalTooLarge("0 fen are left to reverse")
    basis = msgspec.convert(s.pricing, Basis)
    before = {k: Decimal(v) for k, v in (s.returned or {}).items()}
    after = add_returns(basis, before, data.lines)
    was, was_split = reprice(basis, before)
    now, now_split = reprice(basis, after)
    left = {
        "fund": s.fund_paid - s.reversed_fund,
        "account": s.account_paid - s.reversed_account,
        "cash": s.cash_paid - s.reversed_cash,
    }
    if s.total - s.reversed_total != was.total or any(left[p] != pools(was)[p] for p in left):
        # Only an amount reversal leaves the record off what the returns so far leave.
        raise ReturnNotPossible("the settlement was partly reversed by amount; cancel the rest")
    refunds = {p: pools(was)[p] - pools(now)[p] for p in POOLS}
    holders = await mutual_aid.holders_drawn(session, s.id)
    ytd, _ = await ledger.lock_person(session, s.person_id, s.year, s.insurance_type, also=holders)
    await ledger.store_usage(
        session,
        s.person_id,
        s.year,
        s.insurance_type,
        _moved_back(ytd, was_split.usage_after, now_split.usage_after),
    )
    await move_layer_back(session, s, basis, was_split, now_split)
    await route(session, s, refunds, data.reason)
    amount = was.total - now.total
    s.reversed_total += amount
    s.reversed_fund += refunds["fund"]
    s.reversed_account += refunds["account"]
    s.reversed_cash += refunds["cash"]
    s.reversed_deductible += was.deductible_paid - now.deductible_paid
    s.returned = {k: quantity_text(v) for k, v in after.items()}
    lines = msgspec.to_builtins(data.lines)
    reversal = Reversal(
        settlement_id=s.id,
        institution_code=s.institution_code,
        business_date=business_date(),
        amount=amount,
        fund_refund=refunds["fund"],
        account_refund=refunds["account"],
        account_mutual_aid_refund=refunds["account_mutual_aid"],
        cash_refund=refunds["cash"],
        reason=data.reason,
        kind=ReversalKind.LINES.value,
        lines=lines,
    )
    session.add(reversal)
    await session.flush()
    REVERSALS.labels(s.med_type).inc()  # a written return, never a replay
    await record_audit(
        session,
        principal,
        s.person_id,
        "settlement.return",
        "ok",
        {"settlement_id": str(s.id), "amount": amount, "lines": len(data.lines)},
    )
    result = ReversalResult(
        reversal_id=reversal.id,
        settlement_id=s.id,
        kind=ReversalKind.LINES.value,
        amount=amount,
        fund_refund=refunds["fund"],
        account_refund=refunds["account"],
        account_mutual_aid_refund=refunds["account_mutual_aid"],
        cash_refund=refunds["cash"],
        refunds=refunds,
        remaining=s.total - s.reversed_total,
        lines=data.lines,
        repriced=msgspec.to_builtins(now),
    )
    return msgspec.to_builtins(result)  # type: ignore[no-any-return]


async def move_layer_back(
    session: AsyncSession, s: Settlement, basis: Basis, was: Split, now: Split
) -> None:
    """The layer above the cap gives back its usage (deductible met, fund paid) as the basic
    scheme does; its row is locked after the basic one and the accounts (``lock_usage``)."""
    layer = layer_of(basis.policy, basis.med_type)
    if layer is None or was.layer_usage_after is None or now.layer_usage_after is None:
        return
    ytd = await ledger.lock_usage(session, s.person_id, s.year, layer.insurance_type)
    moved = _moved_back(ytd, was.layer_usage_after, now.layer_usage_after)
    await ledger.store_usage(session, s.person_id, s.year, layer.insurance_type, moved)


async def reverse_layer(session: AsyncSession, s: Settlement, fund_refund: int, final: bool) -> int:
    """An amount reversal or full cancel of a settlement priced with a layer above the cap:
    the layer paid last, so the fund's refund comes off the layer's usage first (up to what the
    layer still holds of it); the layer's deductible comes back whole with the final reversal.
    Returns the part of ``fund_refund`` that was the layer's (0 without a layer)."""
    if s.pricing is None:
        return 0
    basis = msgspec.convert(s.pricing, Basis)
    layer = layer_of(basis.policy, basis.med_type)
    if layer is None:
        return 0
    returned = {k: Decimal(v) for k, v in (s.returned or {}).items()}
    _, now = reprice(basis, returned)
    basic_now = now.fund_paid - now.layer_fund_paid
    held = min(max(s.fund_paid - s.reversed_fund - basic_now, 0), now.layer_fund_paid)
    back = min(fund_refund, held)
    ytd = await ledger.lock_usage(session, s.person_id, s.year, layer.insurance_type)
    care = "inpatient" if basis.med_type in INPATIENT_TYPES else "outpatient"
    deductible = now.layer_deductible_paid if final else 0
    changes = {
        f"{care}_fund_paid": max(getattr(ytd, f"{care}_fund_paid") - back, 0),
        f"{care}_deductible_used": max(getattr(ytd, f"{care}_deductible_used") - deductible, 0),
    }
    moved: YearToDate = msgspec.structs.replace(ytd, **changes)
    await ledger.store_usage(session, s.person_id, s.year, layer.insurance_type, moved)
    return back


def _moved_back(ytd: YearToDate, was: YearToDate, now: YearToDate) -> YearToDate:
    """Usage less what the return takes off (floored at 0, as a reversal's)."""
    fields = msgspec.structs.asdict(ytd)
    return YearToDate(
        **{f: max(v - (getattr(was, f) - getattr(now, f)), 0) for f, v in fields.items()}
    )
