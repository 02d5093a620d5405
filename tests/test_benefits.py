"""The benefit engine: hand-worked bills, every step asserted; invariants over random bills."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecert.benefits import Bill, BillItem, InvalidBill, Policy, Split, YearToDate, compute

BEIJING_EMPLOYEE = msgspec.convert(
    {
        "area": "110105",
        "insurance_type": "310",
        "year": 2026,
        "category": "employee",
        "outpatient": {
            "deductible": 180000,
            "cap": 2000000,
            "ratios": {"community": 0.9, "1": 0.7, "2": 0.7, "3": 0.7},
        },
        "inpatient": {
            "deductible": 130000,
            "later_admission_deductible": 65000,
            "cap": 50000000,
            "ratios": {"community": 0.9, "1": 0.9, "2": 0.87, "3": 0.85},
        },
        "class_b_first_self_pay": 0.1,
        "out_of_area_reduction": {"referred": 0.1, "unreferred": 0.2},
    },
    Policy,
)
JINAN_EMPLOYEE = msgspec.convert(
    {
        "area": "370102",
        "insurance_type": "310",
        "year": 2026,
        "category": "employee",
        "outpatient": {
            "deductible": 100000,
            "cap": 600000,
            "ratios": {"community": 0.7, "1": 0.7, "2": 0.6, "3": 0.5},
        },
        "inpatient": {
            "deductible": 100000,
            "deductible_by_level": {"community": 20000, "1": 40000, "2": 40000, "3": 100000},
            "cap": 60000000,
            "ratios": {"community": 0.95, "1": 0.93, "2": 0.93, "3": 0.88},
        },
        "class_b_first_self_pay": 0.1,
        "out_of_area_reduction": {"referred": 0.1, "unreferred": 0.2},
    },
    Policy,
)


def item(item_class: str, amount: int, ratio: float | None = None) -> BillItem:
    return BillItem(
        code=f"X{amount}",
        name="item",
        item_class=item_class,  # type: ignore[arg-type]
        amount=amount,
        first_self_pay_ratio=ratio,
    )


def amounts(split: Split) -> dict[str, int]:
    return {s.rule: s.amount for s in split.steps}


def test_outpatient_level_1_crossing_the_deductible_paid_from_the_account() -> None:
    bill = Bill(
        med_type="11", level="1", items=[item("A", 20000), item("B", 10000), item("C", 5000)]
    )
    split = compute(
        BEIJING_EMPLOYEE,
        bill,
        YearToDate(outpatient_deductible_used=170000),
        balance=50000,
        use_account=True,
    )
    # total 35000; C 5000 self-paid; B first self-pay 10% of 10000 = 1000; eligible 29000;
    # 100 yuan of the 1800 deductible left → 10000; above 19000 × 0.7 = 13300 fund, 5700 co-pay;
    # personal 35000 − 13300 = 21700, all from the account (balance 50000 → 28300).
    assert amounts(split) == {
        "class_c_self_pay": 5000,
        "class_b_first_self_pay": 1000,
        "deductible": 10000,
        "copay": 5700,
        "cap": 0,
        "fund": 13300,
        "account": 21700,
        "cash": 0,
    }
    assert (split.total, split.fund_paid, split.account_paid, split.balance_after) == (
        35000,
        13300,
        21700,
        28300,
    )
    deductible = next(s for s in split.steps if s.rule == "deductible")
    assert (deductible.policy_field, deductible.policy_value) == ("outpatient.deductible", "180000")
    copay = next(s for s in split.steps if s.rule == "copay")
    assert (copay.policy_field, copay.policy_value) == ("outpatient.ratios.1", "0.7")
    assert split.usage_after.outpatient_deductible_used == 180000
    assert split.usage_after.outpatient_fund_paid == 13300


def test_inpatient_level_3_crossing_the_deductible_and_hitting_the_cap() -> None:
    bill = Bill(med_type="21", level="3", items=[item("A", 1_000_000)])
    split = compute(
        JINAN_EMPLOYEE,
        bill,
        YearToDate(inpatient_fund_paid=59_900_000),
        balance=0,
        use_account=False,
    )
    # eligible 1,000,000; level-3 deductible 100,000; above 900,000 × 0.88 = 792,000 by ratio,
    # co-pay 108,000; only 100,000 of the 600,000-yuan cap is left → fund 100,000, 692,000 over;
    # personal 900,000 in cash.
    assert amounts(split) == {
        "class_c_self_pay": 0,
        "class_b_first_self_pay": 0,
        "deductible": 100_000,
        "copay": 108_000,
        "cap": 692_000,
        "fund": 100_000,
        "account": 0,
        "cash": 900_000,
    }
    deductible = next(s for s in split.steps if s.rule == "deductible")
    assert deductible.policy_field == "inpatient.deductible_by_level.3"
    cap = next(s for s in split.steps if s.rule == "cap")
    assert (cap.policy_field, cap.policy_value) == ("inpatient.cap", "60000000")
    assert next(s for s in split.steps if s.rule == "copay").policy_field == "inpatient.ratios.3"
    assert split.usage_after.inpatient_admissions == 1


def test_pharmacy_purchase_partly_from_the_account() -> None:
    bill = Bill(med_type="41", level="community", items=[item("A", 5000), item("B", 3000, 0.2)])
    split = compute(
        JINAN_EMPLOYEE,
        bill,
        YearToDate(outpatient_deductible_used=100000),
        balance=1000,
        use_account=True,
    )
    # B's own 20% share: 600; eligible 7400; deductible already met; 7400 × 0.7 = 5180 fund,
    # 2220 co-pay; personal 2820: the account pays its 1000, cash 1820.
    assert amounts(split) == {
        "class_c_self_pay": 0,
        "class_b_first_self_pay": 600,
        "deductible": 0,
        "copay": 2220,
        "cap": 0,
        "fund": 5180,
        "account": 1000,
        "cash": 1820,
    }
    assert split.balance_after == 0


def test_out_of_area_unreferred_and_later_admission() -> None:
    bill = Bill(med_type="21", level="2", out_of_area="unreferred", items=[item("A", 200_000)])
    split = compute(
        BEIJING_EMPLOYEE, bill, YearToDate(inpatient_admissions=1), balance=None, use_account=True
    )
    # later-admission deductible 65,000; above 135,000; ratio 0.87 → 117,450 base,
    # reduced by 0.2 to 0.67 → 90,450; co-pay 17,550; reduction costs 27,000.
    assert amounts(split) == {
        "class_c_self_pay": 0,
        "class_b_first_self_pay": 0,
        "deductible": 65_000,
        "copay": 17_550,
        "out_of_area_reduction": 27_000,
        "cap": 0,
        "fund": 90_450,
        "cash": 109_550,
    }
    assert split.balance_after is None  # no personal account for this person


@pytest.mark.parametrize(
    "bill",
    [
        Bill(med_type="11", level="1", items=[]),
        Bill(med_type="99", level="1", items=[item("A", 1)]),
    ],
)
def test_unpriceable_bills(bill: Bill) -> None:
    with pytest.raises(InvalidBill):
        compute(BEIJING_EMPLOYEE, bill, YearToDate(), balance=0, use_account=False)


ratios = st.floats(0, 1, allow_nan=False).map(lambda r: round(r, 3))
money = st.integers(0, 5_000_000)


@st.composite
def cases(draw: Any) -> tuple[Policy, Bill, YearToDate, int | None, bool]:
    def care() -> dict[str, Any]:
        return {
            "deductible": draw(money),
            "cap": draw(money),
            "ratios": {lvl: draw(ratios) for lvl in ("community", "1", "2", "3")},
            "later_admission_deductible": draw(st.none() | money),
        }

    policy = msgspec.convert(
        {
            "area": "370102",
            "insurance_type": "310",
            "year": 2026,
            "category": "employee",
            "outpatient": care(),
            "inpatient": care(),
            "class_b_first_self_pay": draw(ratios),
            "out_of_area_reduction": {"referred": draw(ratios), "unreferred": draw(ratios)},
        },
        Policy,
    )
    items = draw(
        st.lists(
            st.builds(item, st.sampled_from(["A", "B", "C"]), money, st.none() | ratios),
            min_size=1,
            max_size=8,
        )
    )
    bill = Bill(
        med_type=draw(st.sampled_from(["11", "14", "21", "41", "51"])),
        level=draw(st.sampled_from(["community", "1", "2", "3"])),
        out_of_area=draw(st.sampled_from(["none", "referred", "unreferred"])),
        items=items,
    )
    ytd = YearToDate(draw(money), draw(money), draw(money), draw(money), draw(st.integers(0, 5)))
    return policy, bill, ytd, draw(st.none() | money), draw(st.booleans())


@given(cases())
def test_steps_add_up_to_the_split_fen_for_fen(
    case: tuple[Policy, Bill, YearToDate, int | None, bool],
) -> None:
    policy, bill, ytd, balance, use_account = case
    split = compute(policy, bill, ytd, balance=balance, use_account=use_account)
    assert all(step.amount >= 0 for step in split.steps)
    share = sum(s.amount for s in split.steps if s.part == "share")
    payment = sum(s.amount for s in split.steps if s.part == "payment")
    assert share == split.total
    assert payment == split.total - split.fund_paid == split.account_paid + split.cash_paid
    assert (
        split.fully_self_paid
        + split.first_self_paid
        + split.deductible_paid
        + split.copay_paid
        + split.out_of_area_paid
        + split.over_cap_paid
        + split.fund_paid
        == split.total
    )
    inpatient = bill.med_type in ("21", "51", "52")
    care = policy.inpatient if inpatient else policy.outpatient
    used = ytd.inpatient_fund_paid if inpatient else ytd.outpatient_fund_paid
    assert split.fund_paid <= max(care.cap - used, 0)
    if balance is not None:
        assert split.account_paid <= balance
        assert split.balance_after == balance - split.account_paid
    assert compute(policy, bill, ytd, balance=balance, use_account=use_account) == split
