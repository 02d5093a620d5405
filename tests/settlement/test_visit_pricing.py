"""The visit reply's two §7 invariants, for any lines, policy, usage and balance (pure)."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ecert.benefits import Bill, Policy, YearToDate, compute, layer_of
from ecert.db.models import FeeLine
from ecert.ledger import Classified, Reason
from ecert.settlement.visits.pricing import Priced, assemble, result
from tests.test_benefits import cases


@st.composite
def visits(draw: Any) -> tuple[Policy, Bill, YearToDate, int | None, bool, Priced]:
    policy, bill, ytd, balance, use_account = draw(cases())
    lines, classes = [], []
    for n, item in enumerate(bill.items):
        over = draw(st.integers(0, 10**6))
        lines.append(
            FeeLine(line_no=str(n), list_code=item.code, name=item.name, amount=item.amount + over)
        )
        classes.append(
            Classified(item.item_class, item.first_self_pay_ratio, over, Reason.CATALOGUE)
        )
    items, where = assemble(lines, classes)
    priced = Priced(
        Bill(med_type=bill.med_type, items=items, level=bill.level, out_of_area=bill.out_of_area),
        lines,
        classes,
        where,
    )
    return policy, bill, ytd, balance, use_account, priced


@given(visits())
def test_shares_and_payments_each_add_up_to_the_total(
    case: tuple[Policy, Bill, YearToDate, int | None, bool, Priced],
) -> None:
    policy, _, ytd, balance, use_account, priced = case
    split = compute(policy, priced.bill, ytd, balance=balance, use_account=use_account)
    layer = layer_of(policy, priced.bill.med_type)
    r = result("310", policy.class_b_first_self_pay, uuid.uuid4(), priced, split, layer)
    assert r.total == sum(line.amount for line in priced.lines)
    assert r.total == r.fund_paid + r.account_paid + r.account_mutual_aid_paid + r.cash_paid
    assert r.total == (
        r.fully_self_paid + r.over_limit_self_paid + r.first_self_paid + r.eligible_amount
    )
    assert r.eligible_amount == r.deductible_paid + r.co_pay + r.over_cap_self_paid + r.fund_paid
    assert r.person_paid == r.total - r.fund_paid
    assert sum(p.amount for p in r.fund_parts) == r.fund_paid
    for field in ("fully_self_paid", "over_limit_self_paid", "first_self_paid", "eligible_amount"):
        assert sum(getattr(s, field) for s in r.lines) == getattr(r, field), field
        assert all(getattr(s, field) >= 0 for s in r.lines)
    for s in r.lines:
        shares = s.fully_self_paid + s.over_limit_self_paid + s.first_self_paid
        assert shares + s.eligible_amount == s.amount
