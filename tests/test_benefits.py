"""The benefit engine: hand-worked bills with every step asserted; invariants over random bills.

Amounts are fen (100 fen = 1 yuan). Each hand-worked test lists all steps as
(part, rule, amount, policy_field, policy_value) with the arithmetic in comments.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecert.benefits import (
    INPATIENT_TYPES,
    Bill,
    BillItem,
    CarePolicy,
    InvalidBill,
    InvalidPolicy,
    Policy,
    Split,
    Step,
    YearToDate,
    compute,
    layer_of,
)
from ecert.errors import EcertError

BEIJING_EMPLOYEE = Policy.from_json(
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
    }
)
JINAN_EMPLOYEE_LINE = (
    '{"area": "370102", "insurance_type": "310", "year": 2026, "category": "employee", '
    '"outpatient": {"deductible": 100000, "cap": 600000, '
    '"ratios": {"community": 0.7, "1": 0.7, "2": 0.6, "3": 0.5}}, '
    '"inpatient": {"deductible": 100000, '
    '"deductible_by_level": {"community": 20000, "1": 40000, "2": 40000, "3": 100000}, '
    '"cap": 60000000, "ratios": {"community": 0.95, "1": 0.93, "2": 0.93, "3": 0.88}}, '
    '"class_b_first_self_pay": 0.1, "out_of_area_reduction": {"referred": 0.1, "unreferred": 0.2}}'
)
JINAN_EMPLOYEE = Policy.from_json(JINAN_EMPLOYEE_LINE)
JINAN_RESIDENT = Policy.from_json(
    {
        "area": "370102",
        "insurance_type": "390",
        "year": 2026,
        "category": "resident",
        "outpatient": {
            "deductible": 0,
            "cap": 30000,
            "ratios": {"community": 0.5, "1": 0.5, "2": 0.4, "3": 0.3},
        },
        "inpatient": {
            "deductible": 100000,
            "deductible_by_level": {"community": 20000, "1": 30000, "2": 60000, "3": 120000},
            "cap": 20000000,
            "ratios": {"community": 0.9, "1": 0.85, "2": 0.75, "3": 0.6},
        },
        "class_b_first_self_pay": 0.1,
    }
)

Row = tuple[str, str, int, str | None, str | None]


def item(item_class: str, amount: int, ratio: float | None = None) -> BillItem:
    return BillItem(
        code=f"X{amount}",
        name="item",
        item_class=item_class,  # type: ignore[arg-type]
        amount=amount,
        first_self_pay_ratio=ratio,
    )


def rows(split: Split) -> list[Row]:
    return [(s.part, s.rule, s.amount, s.policy_field, s.policy_value) for s in split.steps]


def text(split: Split, rule: str) -> tuple[str, str]:
    step = next(s for s in split.steps if s.rule == rule)
    return step.text_zh, step.text_en


def test_outpatient_level_1_crossing_the_deductible_paid_from_the_account() -> None:
    bill = Bill(
        med_type="11", level="1", items=[item("A", 20000), item("B", 10000), item("C", 5000)]
    )
    ytd = YearToDate(outpatient_deductible_used=170000)
    split = compute(BEIJING_EMPLOYEE, bill, ytd, balance=50000, use_account=True)
    # total = 20000 + 10000 + 5000 = 35000
    assert rows(split) == [
        ("share", "class_c_self_pay", 5000, None, None),  # class C 5000 all self-paid
        ("share", "class_b_first_self_pay", 1000, "class_b_first_self_pay", "0.1"),  # 10000 × 0.1
        # eligible 35000 − 5000 − 1000 = 29000; deductible left 180000 − 170000 = 10000
        ("share", "deductible", 10000, "outpatient.deductible", "180000"),
        # above 29000 − 10000 = 19000; fund 19000 × 0.7 = 13300; co-pay 19000 − 13300 = 5700
        ("share", "copay", 5700, "outpatient.ratios.1", "0.7"),
        ("share", "cap", 0, "outpatient.cap", "2000000"),  # 13300 ≤ 2000000 − 0
        ("share", "fund", 13300, "outpatient.ratios.1", "0.7"),
        # personal 35000 − 13300 = 21700 ≤ balance 50000: all from the account
        ("payment", "account", 21700, None, None),
        ("payment", "cash", 0, None, None),
    ]
    assert (split.total, split.fully_self_paid, split.first_self_paid) == (35000, 5000, 1000)
    assert (split.deductible_paid, split.copay_paid, split.fund_paid) == (10000, 5700, 13300)
    assert (split.account_paid, split.cash_paid, split.balance_after) == (21700, 0, 28300)
    assert split.usage_after == YearToDate(
        outpatient_deductible_used=180000, outpatient_fund_paid=13300
    )
    assert text(split, "deductible") == (
        "年度门诊起付线 1800.00 元，此前已累计 1700.00 元，本次自付 100.00 元，尚余 0.00 元",
        "Annual outpatient deductible 1800.00, 1700.00 met before: 100.00 self-paid now, 0.00 left",
    )


def test_inpatient_level_3_crossing_the_deductible_and_hitting_the_cap() -> None:
    bill = Bill(
        med_type="21",
        level="3",
        items=[item("A", 1_000_000), item("B", 70_000), item("C", 30_000)],
    )
    ytd = YearToDate(inpatient_fund_paid=59_900_000)
    split = compute(JINAN_EMPLOYEE, bill, ytd, balance=0, use_account=False)
    # total = 1,000,000 + 70,000 + 30,000 = 1,100,000
    assert rows(split) == [
        ("share", "class_c_self_pay", 30_000, None, None),
        ("share", "class_b_first_self_pay", 7_000, "class_b_first_self_pay", "0.1"),  # 70,000 × 0.1
        # eligible 1,100,000 − 30,000 − 7,000 = 1,063,000; level-3 deductible 100,000
        ("share", "deductible", 100_000, "inpatient.deductible_by_level.3", "100000"),
        # above 963,000 × 0.88 = 847,440 by ratio; co-pay 963,000 − 847,440 = 115,560
        ("share", "copay", 115_560, "inpatient.ratios.3", "0.88"),
        # cap left 60,000,000 − 59,900,000 = 100,000; over it 847,440 − 100,000 = 747,440
        ("share", "cap", 747_440, "inpatient.cap", "60000000"),
        ("share", "fund", 100_000, "inpatient.ratios.3", "0.88"),
        ("payment", "account", 0, None, None),  # not asked
        ("payment", "cash", 1_000_000, None, None),  # 1,100,000 − 100,000
    ]
    assert split.over_cap_paid == 747_440
    assert split.usage_after == YearToDate(
        inpatient_deductible_used=100_000, inpatient_fund_paid=60_000_000, inpatient_admissions=1
    )
    assert text(split, "account") == ("未使用个人账户", "Personal account not used")


@pytest.mark.parametrize(
    ("balance", "account", "cash"),
    [
        (1000, 1000, 2610),  # balance < personal 3610: account pays all it has, cash the rest
        (10000, 3610, 0),  # balance > personal: the account pays it all, 6390 stays
    ],
)
def test_pharmacy_purchase_from_the_account(balance: int, account: int, cash: int) -> None:
    bill = Bill(
        med_type="41",
        level="community",
        items=[item("A", 5000), item("B", 3000), item("C", 1000)],
    )
    ytd = YearToDate(outpatient_deductible_used=100000)
    split = compute(JINAN_EMPLOYEE, bill, ytd, balance=balance, use_account=True)
    # pharmacy follows the outpatient rules; total 9000
    assert rows(split) == [
        ("share", "class_c_self_pay", 1000, None, None),
        ("share", "class_b_first_self_pay", 300, "class_b_first_self_pay", "0.1"),  # 3000 × 0.1
        # eligible 9000 − 1000 − 300 = 7700; the 100000 deductible is already met
        ("share", "deductible", 0, "outpatient.deductible", "100000"),
        # 7700 × 0.7 = 5390 fund; co-pay 7700 − 5390 = 2310
        ("share", "copay", 2310, "outpatient.ratios.community", "0.7"),
        ("share", "cap", 0, "outpatient.cap", "600000"),
        ("share", "fund", 5390, "outpatient.ratios.community", "0.7"),
        # personal 9000 − 5390 = 3610 = account + cash
        ("payment", "account", account, None, None),
        ("payment", "cash", cash, None, None),
    ]
    assert split.balance_after == balance - account


def test_out_of_area_unreferred_lowers_the_ratio() -> None:
    bill = Bill(med_type="21", level="2", out_of_area="unreferred", items=[item("A", 500_000)])
    split = compute(JINAN_EMPLOYEE, bill, YearToDate(), balance=100_000, use_account=True)
    assert rows(split) == [
        ("share", "class_c_self_pay", 0, None, None),
        ("share", "class_b_first_self_pay", 0, "class_b_first_self_pay", "0.1"),
        # first admission, level-2 deductible 40,000; above 460,000
        ("share", "deductible", 40_000, "inpatient.deductible_by_level.2", "40000"),
        # 460,000 × 0.93 = 427,800; co-pay 460,000 − 427,800 = 32,200
        ("share", "copay", 32_200, "inpatient.ratios.2", "0.93"),
        # ratio 0.93 − 0.2 = 0.73: 460,000 × 0.73 = 335,800; reduction 427,800 − 335,800
        ("share", "out_of_area_reduction", 92_000, "out_of_area_reduction.unreferred", "0.2"),
        ("share", "cap", 0, "inpatient.cap", "60000000"),
        ("share", "fund", 335_800, "inpatient.ratios.2", "0.93"),
        # personal 500,000 − 335,800 = 164,200: balance 100,000 from the account, 64,200 cash
        ("payment", "account", 100_000, None, None),
        ("payment", "cash", 64_200, None, None),
    ]
    assert split.out_of_area_paid == 92_000
    assert text(split, "out_of_area_reduction")[0] == (
        "未转诊异地就医，报销比例降低 0.2 至 0.73，多自付 920.00 元"
    )


def test_out_of_area_ratio_floors_at_zero_and_needs_a_policy_reduction() -> None:
    low = msgspec.structs.replace(
        JINAN_EMPLOYEE.inpatient, ratios={**JINAN_EMPLOYEE.inpatient.ratios, "1": 0.15}
    )
    policy = msgspec.structs.replace(JINAN_EMPLOYEE, inpatient=low)
    bill = Bill(med_type="21", level="1", out_of_area="unreferred", items=[item("A", 100_000)])
    split = compute(policy, bill, YearToDate(), balance=None, use_account=False)
    # deductible 40,000; above 60,000 × 0.15 = 9,000; 0.15 − 0.2 < 0 → ratio 0, all 9,000 lost
    assert [(r, a) for _, r, a, _, _ in rows(split)][2:6] == [
        ("deductible", 40_000),
        ("copay", 51_000),  # 60,000 − 9,000
        ("out_of_area_reduction", 9_000),
        ("cap", 0),
    ]
    assert (split.fund_paid, split.cash_paid) == (0, 100_000)
    # a policy without out_of_area_reduction: the care is out of area but the ratio stays
    plain = msgspec.structs.replace(JINAN_EMPLOYEE, out_of_area_reduction=None)
    split = compute(plain, bill, YearToDate(), balance=None, use_account=False)
    assert ("share", "out_of_area_reduction", 0, None, None) in rows(split)
    assert split.fund_paid == 55_800  # 60,000 × 0.93


def test_class_b_item_ratio_and_half_up_rounding() -> None:
    bill = Bill(
        med_type="11",
        level="community",
        items=[item("B", 12345), item("B", 3005, 0.5), item("B", 3005, 0.5), item("A", 7650)],
    )
    ytd = YearToDate(outpatient_deductible_used=180000)
    split = compute(BEIJING_EMPLOYEE, bill, ytd, balance=0, use_account=True)
    # total 12345 + 3005 + 3005 + 7650 = 26005
    assert rows(split) == [
        ("share", "class_c_self_pay", 0, None, None),
        # default share: 12345 × 0.1 = 1234.5 → 1235 (half-up)
        ("share", "class_b_first_self_pay", 1235, "class_b_first_self_pay", "0.1"),
        # the items' own 0.5, rounded once for the group: (3005 + 3005) × 0.5 = 3005
        # (rounding each item would give 1503 + 1503 = 3006)
        ("share", "class_b_first_self_pay", 3005, None, "0.5"),
        # eligible 26005 − 1235 − 3005 = 21765; deductible met
        ("share", "deductible", 0, "outpatient.deductible", "180000"),
        # 21765 × 0.9 = 19588.5 → 19589 fund (half-up); co-pay 21765 − 19589 = 2176
        ("share", "copay", 2176, "outpatient.ratios.community", "0.9"),
        ("share", "cap", 0, "outpatient.cap", "2000000"),
        ("share", "fund", 19589, "outpatient.ratios.community", "0.9"),
        ("payment", "account", 0, None, None),  # asked, but the balance is 0
        ("payment", "cash", 6416, None, None),  # 26005 − 19589
    ]
    assert split.first_self_paid == 4240
    assert text(split, "class_b_first_self_pay") == (
        "乙类项目 123.45 元按先行自付比例 0.1 先行自付 12.35 元",
        "Class B items 123.45 at the first self-pay share 0.1: 12.35",
    )


def test_later_admission_deductible() -> None:
    bill = Bill(med_type="21", level="2", items=[item("A", 200_000), item("C", 10_000)])
    ytd = YearToDate(
        inpatient_deductible_used=130_000, inpatient_fund_paid=1_000_000, inpatient_admissions=1
    )
    split = compute(BEIJING_EMPLOYEE, bill, ytd, balance=50_000, use_account=True)
    assert rows(split) == [
        ("share", "class_c_self_pay", 10_000, None, None),
        ("share", "class_b_first_self_pay", 0, "class_b_first_self_pay", "0.1"),
        # second admission: 65,000 instead of 130,000, whatever the first one used
        ("share", "deductible", 65_000, "inpatient.later_admission_deductible", "65000"),
        # above 200,000 − 65,000 = 135,000 × 0.87 = 117,450; co-pay 17,550
        ("share", "copay", 17_550, "inpatient.ratios.2", "0.87"),
        ("share", "cap", 0, "inpatient.cap", "50000000"),
        ("share", "fund", 117_450, "inpatient.ratios.2", "0.87"),
        # personal 210,000 − 117,450 = 92,550: 50,000 account, 42,550 cash
        ("payment", "account", 50_000, None, None),
        ("payment", "cash", 42_550, None, None),
    ]
    assert split.usage_after == YearToDate(
        inpatient_deductible_used=195_000, inpatient_fund_paid=1_117_450, inpatient_admissions=2
    )
    assert text(split, "deductible")[0] == "第 2 次住院起付线 650.00 元，本次自付 650.00 元"


def test_resident_without_account_hits_the_outpatient_cap() -> None:
    bill = Bill(med_type="11", level="1", items=[item("A", 16_000)])
    ytd = YearToDate(outpatient_fund_paid=25_000)
    split = compute(JINAN_RESIDENT, bill, ytd, balance=None, use_account=True)
    assert rows(split) == [
        ("share", "class_c_self_pay", 0, None, None),
        ("share", "class_b_first_self_pay", 0, "class_b_first_self_pay", "0.1"),
        ("share", "deductible", 0, "outpatient.deductible", "0"),  # no outpatient deductible
        ("share", "copay", 8_000, "outpatient.ratios.1", "0.5"),  # 16,000 × 0.5 = 8,000 fund
        ("share", "cap", 3_000, "outpatient.cap", "30000"),  # cap left 30,000 − 25,000 = 5,000
        ("share", "fund", 5_000, "outpatient.ratios.1", "0.5"),
        # Asked, but a resident has no account: an explicit 0 with the reason.
        ("payment", "account", 0, None, None),
        ("payment", "cash", 11_000, None, None),
    ]
    assert (split.account_paid, split.balance_after) == (0, None)
    assert "无个人账户" in text(split, "account")[0]


def test_resident_child_paid_by_a_parents_account_through_mutual_aid() -> None:
    # Same bill as above; the parents' accounts hold 7,000 together. Personal 16,000 − 5,000 fund
    # = 11,000: no own account, 7,000 mutual aid (all there is), 4,000 cash.
    bill = Bill(med_type="11", level="1", items=[item("A", 16_000)])
    ytd = YearToDate(outpatient_fund_paid=25_000)
    split = compute(JINAN_RESIDENT, bill, ytd, balance=None, use_account=True, mutual_aid=7_000)
    assert [r for r in rows(split) if r[0] == "payment"] == [
        ("payment", "account", 0, None, None),
        ("payment", "mutual_aid", 7_000, None, None),
        ("payment", "cash", 4_000, None, None),
    ]
    assert (split.account_paid, split.account_mutual_aid_paid, split.cash_paid) == (0, 7_000, 4_000)
    # Mutual aid without use_account draws nothing and says nothing.
    plain = compute(JINAN_RESIDENT, bill, ytd, balance=None, use_account=False, mutual_aid=7_000)
    assert (plain.account_mutual_aid_paid, plain.cash_paid) == (0, 11_000)
    assert not any(s.rule in ("account", "mutual_aid") for s in plain.steps)


@pytest.mark.parametrize(
    ("med_type", "deductible", "field", "copay", "fund", "admissions"),
    [
        # 51 maternity outpatient → outpatient: 180,000; 120,000 × 0.7 = 84,000
        ("51", 180_000, "outpatient.deductible", 36_000, 84_000, 0),
        # 52 maternity inpatient → inpatient: 130,000; 170,000 × 0.85 = 144,500
        ("52", 130_000, "inpatient.deductible", 25_500, 144_500, 1),
    ],
)
def test_maternity_outpatient_and_inpatient(
    med_type: str, deductible: int, field: str, copay: int, fund: int, admissions: int
) -> None:
    bill = Bill(med_type=med_type, level="3", items=[item("A", 300_000)])
    split = compute(BEIJING_EMPLOYEE, bill, YearToDate(), balance=None, use_account=False)
    assert (split.deductible_paid, split.copay_paid, split.fund_paid) == (deductible, copay, fund)
    assert next(s for s in split.steps if s.rule == "deductible").policy_field == field
    assert split.usage_after.inpatient_admissions == admissions
    assert (med_type in INPATIENT_TYPES) == (admissions == 1)


@pytest.mark.parametrize(
    "bill",
    [
        Bill(med_type="11", level="1", items=[]),
        Bill(med_type="99", level="1", items=[item("A", 1)]),
        Bill(med_type="11", level="1", items=[item("A", 5), item("A", -1)]),
        Bill(med_type="11", level="4", items=[item("A", 1)]),  # type: ignore[arg-type]
        Bill(med_type="11", level="1", items=[item("D", 1)]),
        Bill(med_type="11", level="1", items=[item("B", 1, 1.5)]),
        Bill(med_type="11", level="1", out_of_area="abroad", items=[item("A", 1)]),  # type: ignore[arg-type]
    ],
    ids=["empty", "med_type", "negative", "level", "class", "item_ratio", "out_of_area"],
)
def test_invalid_bills(bill: Bill) -> None:
    with pytest.raises(InvalidBill) as caught:
        compute(BEIJING_EMPLOYEE, bill, YearToDate(), balance=0, use_account=False)
    assert isinstance(caught.value, EcertError)
    assert (caught.value.code, caught.value.status) == ("invalid_bill", 422)


def test_a_level_the_policy_does_not_price_is_an_invalid_bill() -> None:
    raw = json.loads(JINAN_EMPLOYEE_LINE)
    raw["outpatient"]["ratios"] = {"1": 0.5}
    policy = Policy.from_json(raw)
    with pytest.raises(InvalidBill, match="no outpatient ratio"):
        compute(policy, Bill("11", [item("A", 1)], "3"), YearToDate(), balance=0, use_account=False)


def test_bills_and_items_refuse_unknown_fields() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"med_type": "11", "items": [], "level": "1", "x": 1}, Bill)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"code": "a", "name": "b", "item_class": "A", "amount": -1}, BillItem)


def test_policy_from_json_accepts_a_line_or_an_object() -> None:
    assert Policy.from_json(json.loads(JINAN_EMPLOYEE_LINE)) == JINAN_EMPLOYEE
    assert JINAN_EMPLOYEE.inpatient.deductible_by_level == {
        "community": 20000,
        "1": 40000,
        "2": 40000,
        "3": 100000,
    }
    assert JINAN_RESIDENT.out_of_area_reduction is None


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("outpatient", "ratios", "1"), 1.2),
        (("outpatient", "ratios", "4"), 0.5),
        (("outpatient", "ratios"), {}),
        (("inpatient", "deductible"), -1),
        (("inpatient", "deductible"), 1.5),
        (("inpatient", "deductible_by_level", "5"), 100),
        (("inpatient", "later_admission_deductible"), -5),
        (("inpatient", "cap"), "600000"),
        (("class_b_first_self_pay",), 2),
        (("out_of_area_reduction", "referred"), -0.1),
        (("category",), "child"),
    ],
)
def test_policy_from_json_refuses(path: tuple[str, ...], value: Any) -> None:
    raw = json.loads(JINAN_EMPLOYEE_LINE)
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(InvalidPolicy) as caught:
        Policy.from_json(raw)
    assert (caught.value.code, caught.value.status) == ("invalid_policy", 422)
    with pytest.raises(InvalidPolicy):
        Policy.from_json(json.dumps(raw))


def test_policy_ignores_keys_it_does_not_know() -> None:
    """Spec §5: a real policy carries more keys than ecert prices with; they are ignored."""
    raw = json.loads(JINAN_EMPLOYEE_LINE)
    raw["note"] = "2026 adjustment"
    raw["out_of_area_reduction"]["abroad"] = 0.3
    assert Policy.from_json(raw) == Policy.from_json(JINAN_EMPLOYEE_LINE)


def test_policy_from_json_refuses_malformed_json_and_direct_nonsense() -> None:
    with pytest.raises(InvalidPolicy):
        Policy.from_json('{"area": ')
    with pytest.raises(ValueError, match=r"ratios\.1 must be between 0 and 1"):
        CarePolicy(deductible=0, cap=0, ratios={"1": 1.5})


def test_steps_and_split_round_trip_through_json() -> None:
    bill = Bill(med_type="21", level="2", out_of_area="referred", items=[item("B", 123_457, 0.3)])
    split = compute(JINAN_EMPLOYEE, bill, YearToDate(), balance=5, use_account=True)
    stored = msgspec.json.encode(split.steps)
    assert msgspec.json.decode(stored, type=list[Step]) == split.steps
    assert msgspec.json.decode(msgspec.json.encode(split), type=Split) == split


# ---- properties over random policies, bills and usage ----

ratios = st.floats(0, 1).map(lambda r: round(r, 3)) | st.floats(0, 1)
money = st.integers(0, 5_000_000) | st.integers(0, 10**10)
LEVEL_NAMES = ("community", "1", "2", "3")
RULE_FIELDS = {
    "class_c_self_pay": "fully_self_paid",
    "class_b_first_self_pay": "first_self_paid",
    "deductible": "deductible_paid",
    "copay": "copay_paid",
    "out_of_area_reduction": "out_of_area_paid",
    "layer_deductible": "layer_deductible_paid",
    "layer_copay": "layer_copay_paid",
    "cap": "over_cap_paid",
    "fund": "fund_paid",
    "layer_fund": "layer_fund_paid",
    "account": "account_paid",
    "mutual_aid": "account_mutual_aid_paid",
    "cash": "cash_paid",
}


layers = st.fixed_dictionaries(
    {
        "insurance_type": st.sampled_from(["330", "392"]),
        "deductible": money,
        "ratio": ratios,
        "cap": money,
    }
)


@st.composite
def cases(draw: Any) -> tuple[Policy, Bill, YearToDate, int | None, bool]:
    def care() -> dict[str, Any]:
        by_level = st.fixed_dictionaries({lvl: money for lvl in LEVEL_NAMES})
        return {
            "deductible": draw(money),
            "cap": draw(money),
            "ratios": {lvl: draw(ratios) for lvl in LEVEL_NAMES},
            "deductible_by_level": draw(st.none() | by_level),
            "later_admission_deductible": draw(st.none() | money),
            "above_cap": draw(st.none() | layers),
        }

    reduction = st.fixed_dictionaries({"referred": ratios, "unreferred": ratios})
    policy = Policy.from_json(
        {
            "area": "370102",
            "insurance_type": "310",
            "year": 2026,
            "category": "employee",
            "outpatient": care(),
            "inpatient": care(),
            "class_b_first_self_pay": draw(ratios),
            "out_of_area_reduction": draw(st.none() | reduction),
        }
    )
    items = draw(
        st.lists(
            st.builds(item, st.sampled_from(["A", "B", "C"]), money, st.none() | ratios),
            min_size=1,
            max_size=8,
        )
    )
    bill = Bill(
        med_type=draw(st.sampled_from(["11", "14", "21", "41", "51", "52"])),
        level=draw(st.sampled_from(LEVEL_NAMES)),
        out_of_area=draw(st.sampled_from(["none", "referred", "unreferred"])),
        items=items,
    )
    ytd = YearToDate(draw(money), draw(money), draw(money), draw(money), draw(st.integers(0, 5)))
    return policy, bill, ytd, draw(st.none() | money), draw(st.booleans())


layer_usage = st.none() | st.builds(YearToDate, money, money, money, money)


@given(cases(), st.none() | money, layer_usage)
def test_steps_add_up_to_the_split_fen_for_fen(
    case: tuple[Policy, Bill, YearToDate, int | None, bool],
    family: int | None,
    layer_ytd: YearToDate | None,
) -> None:
    policy, bill, ytd, balance, use_account = case
    split = compute(
        policy,
        bill,
        ytd,
        balance=balance,
        use_account=use_account,
        mutual_aid=family,
        layer_ytd=layer_ytd,
    )
    assert all(step.amount >= 0 for step in split.steps)
    assert all(getattr(split, name) >= 0 for name in RULE_FIELDS.values())
    assert split.total == sum(i.amount for i in bill.items)
    for rule, name in RULE_FIELDS.items():
        amount = sum(s.amount for s in split.steps if s.rule == rule)
        # The fund field is the basic fund and the layer's together.
        extra = split.layer_fund_paid if rule == "fund" else 0
        assert amount + extra == getattr(split, name)
    layer = layer_of(policy, bill.med_type)
    assert (split.layer_usage_after is None) == (layer is None)
    if layer is not None and split.layer_usage_after is not None:
        kind = "inpatient" if bill.med_type in ("21", "52") else "outpatient"
        before = layer_ytd or YearToDate()
        paid = getattr(split.layer_usage_after, f"{kind}_fund_paid")
        assert paid - getattr(before, f"{kind}_fund_paid") == split.layer_fund_paid
        assert paid <= max(layer.cap, getattr(before, f"{kind}_fund_paid"))
    assert {s.rule for s in split.steps} <= set(RULE_FIELDS)
    shares = [s.amount for s in split.steps if s.part == "share"]
    payments = [s.amount for s in split.steps if s.part == "payment"]
    assert sum(shares) == split.total
    person = split.account_paid + split.account_mutual_aid_paid + split.cash_paid
    assert sum(payments) == split.total - split.fund_paid == person
    assert split.total == sum(
        getattr(split, RULE_FIELDS[r])
        for r in RULE_FIELDS
        if r not in ("account", "mutual_aid", "cash", "layer_fund")
    )
    assert any(s.rule == "account" for s in split.steps) == (balance is not None or use_account)
    asked = use_account and family is not None
    assert any(s.rule == "mutual_aid" for s in split.steps) == asked
    # The family pays only what is left after the own account, and never more than it holds.
    assert split.account_mutual_aid_paid <= (family or 0)
    if split.cash_paid and asked:
        assert split.account_mutual_aid_paid == family


@given(cases())
def test_item_shares_add_up_to_each_item_and_to_the_class_fields(
    case: tuple[Policy, Bill, YearToDate, int | None, bool],
) -> None:
    policy, bill, ytd, balance, use_account = case
    split = compute(policy, bill, ytd, balance=balance, use_account=use_account)
    assert len(split.items) == len(bill.items)
    for item, share in zip(bill.items, split.items, strict=True):
        assert min(share.fully_self_paid, share.first_self_paid, share.eligible_amount) >= 0
        assert share.fully_self_paid + share.first_self_paid + share.eligible_amount == item.amount
    assert sum(s.fully_self_paid for s in split.items) == split.fully_self_paid
    assert sum(s.first_self_paid for s in split.items) == split.first_self_paid
    eligible = split.total - split.fully_self_paid - split.first_self_paid
    assert sum(s.eligible_amount for s in split.items) == eligible


@given(cases())
def test_cap_balance_usage_and_determinism(
    case: tuple[Policy, Bill, YearToDate, int | None, bool],
) -> None:
    policy, bill, ytd, balance, use_account = case
    split = compute(policy, bill, ytd, balance=balance, use_account=use_account)
    inpatient = bill.med_type in ("21", "52")
    care = policy.inpatient if inpatient else policy.outpatient
    used = ytd.inpatient_fund_paid if inpatient else ytd.outpatient_fund_paid
    # The basic fund within its cap; the layer above it within the layer's (nothing used yet).
    basic_fund = split.fund_paid - split.layer_fund_paid
    assert basic_fund <= max(care.cap - used, 0)
    assert split.layer_fund_paid <= (care.above_cap.cap if care.above_cap else 0)
    if balance is None:
        assert (split.account_paid, split.balance_after) == (0, None)
    else:
        assert split.account_paid <= balance
        assert split.balance_after == balance - split.account_paid
        if not use_account:
            assert split.account_paid == 0
    after = split.usage_after
    if inpatient:
        assert after.inpatient_fund_paid - ytd.inpatient_fund_paid == basic_fund
        assert after.inpatient_deductible_used - ytd.inpatient_deductible_used == (
            split.deductible_paid
        )
        assert after.inpatient_admissions == ytd.inpatient_admissions + 1
    else:
        assert after.outpatient_fund_paid - ytd.outpatient_fund_paid == basic_fund
        assert after.outpatient_deductible_used - ytd.outpatient_deductible_used == (
            split.deductible_paid
        )
        assert after.inpatient_admissions == ytd.inpatient_admissions
    assert compute(policy, bill, ytd, balance=balance, use_account=use_account) == split
    # the amounts do not depend on the order of the items (only the class B steps may reorder,
    # and the per-item shares follow the items; ties in spreading a fen go to the earlier item)
    reordered = msgspec.structs.replace(bill, items=bill.items[::-1])
    again = compute(policy, reordered, ytd, balance=balance, use_account=use_account)
    assert msgspec.structs.replace(again, steps=[], items=[]) == msgspec.structs.replace(
        split, steps=[], items=[]
    )
    assert sorted(again.steps, key=msgspec.json.encode) == sorted(
        split.steps, key=msgspec.json.encode
    )
