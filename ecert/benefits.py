"""The benefit engine (pure): policy + year-to-date usage + bill → who pays each fen, and why.

One engine serves the settlement, its preview and the person's estimate. Money is integer fen;
ratios are decimals, applied with ``Decimal`` and rounded half-up to whole fen once per class
(class B first self-pay per item, the fund share once per bill), so results are deterministic.

Steps come in two parts that each add up exactly:
- ``share``: fully self-paid (class C) + first self-pay (class B) + deductible + co-payment +
  out-of-area reduction + over the cap + fund = total;
- ``payment``: personal account + cash = total − fund.
Outpatient rules apply to outpatient (11, 14) and pharmacy (41) bills; inpatient rules to
inpatient (21) and maternity (51, 52). The outpatient deductible is per year; the inpatient one
per admission (lower from the second admission when the policy says so).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Literal

import msgspec

from ecert.errors import EcertError

Level = Literal["community", "1", "2", "3"]
Ratio = Annotated[float, msgspec.Meta(ge=0, le=1)]
Fen = Annotated[int, msgspec.Meta(ge=0)]
INPATIENT_TYPES = frozenset({"21", "51", "52"})
MED_TYPES = frozenset({"11", "14", "21", "41", "51", "52"})


class InvalidBill(EcertError):
    """Raised when a bill cannot be priced (empty, unknown medical type, no such level)."""

    status = 422
    code = "invalid_bill"
    title = "The bill cannot be priced"


class CarePolicy(msgspec.Struct, frozen=True):
    deductible: Fen
    cap: Fen
    ratios: dict[str, Ratio]
    deductible_by_level: dict[str, Fen] | None = None
    later_admission_deductible: Fen | None = None


class OutOfArea(msgspec.Struct, frozen=True):
    referred: Ratio = 0.0
    unreferred: Ratio = 0.0


class Policy(msgspec.Struct, frozen=True):
    """One policy per area × insurance type × year × person category (spec §5 import format)."""

    area: Annotated[str, msgspec.Meta(pattern=r"^\d{6}$")]
    insurance_type: Annotated[str, msgspec.Meta(pattern=r"^\d{3}$")]
    year: Annotated[int, msgspec.Meta(ge=2000, le=2100)]
    category: Literal["employee", "retired", "resident"]
    outpatient: CarePolicy
    inpatient: CarePolicy
    class_b_first_self_pay: Ratio = 0.1
    out_of_area_reduction: OutOfArea | None = None


class BillItem(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    item_class: Literal["A", "B", "C"]
    amount: Annotated[int, msgspec.Meta(ge=0, le=10**10)]
    first_self_pay_ratio: Ratio | None = None


class Bill(msgspec.Struct, frozen=True):
    med_type: str
    items: list[BillItem]
    level: Level
    out_of_area: Literal["none", "referred", "unreferred"] = "none"


class YearToDate(msgspec.Struct, frozen=True):
    """What the person has used this year under this policy (fen; admissions count)."""

    outpatient_deductible_used: Fen = 0
    outpatient_fund_paid: Fen = 0
    inpatient_deductible_used: Fen = 0
    inpatient_fund_paid: Fen = 0
    inpatient_admissions: Fen = 0


class Step(msgspec.Struct, frozen=True):
    """One rule applied: the fen it decided, the policy value it came from, and why in words."""

    part: Literal["share", "payment"]
    rule: str
    amount: int
    policy_field: str | None
    policy_value: str | None
    text_zh: str
    text_en: str


class Split(msgspec.Struct, frozen=True):
    total: int
    fully_self_paid: int
    first_self_paid: int
    deductible_paid: int
    copay_paid: int
    out_of_area_paid: int
    over_cap_paid: int
    fund_paid: int
    account_paid: int
    cash_paid: int
    balance_after: int | None
    steps: list[Step]
    #: Usage after this bill (what the settlement stores for the year).
    usage_after: YearToDate


def _fen(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _yuan(fen: int) -> str:
    return f"{fen / 100:.2f}"


def compute(
    policy: Policy, bill: Bill, ytd: YearToDate, *, balance: int | None, use_account: bool
) -> Split:
    """Price a bill. ``balance`` None means the insurance type has no personal account."""
    if not bill.items:
        raise InvalidBill("a bill needs at least one item")
    if bill.med_type not in MED_TYPES:
        raise InvalidBill("unknown medical type")
    inpatient = bill.med_type in INPATIENT_TYPES
    kind = "inpatient" if inpatient else "outpatient"
    care = policy.inpatient if inpatient else policy.outpatient
    if bill.level not in care.ratios:
        raise InvalidBill("the policy has no ratio for this institution level")
    steps: list[Step] = []

    def step(
        part: Literal["share", "payment"],
        rule: str,
        amount: int,
        field: str | None,
        value: str | None,
        zh: str,
        en: str,
    ) -> None:
        steps.append(Step(part, rule, amount, field, value, zh, en))

    total = sum(item.amount for item in bill.items)
    class_c = sum(i.amount for i in bill.items if i.item_class == "C")
    step(
        "share",
        "class_c_self_pay",
        class_c,
        None,
        None,
        f"丙类项目全部自付 {_yuan(class_c)} 元",
        f"Class C items are fully self-paid: {_yuan(class_c)}",
    )
    first_self = 0
    default_b = Decimal(str(policy.class_b_first_self_pay))
    for item in (i for i in bill.items if i.item_class == "B"):
        share = (
            default_b
            if item.first_self_pay_ratio is None
            else Decimal(str(item.first_self_pay_ratio))
        )
        first_self += _fen(item.amount * share)
    step(
        "share",
        "class_b_first_self_pay",
        first_self,
        "class_b_first_self_pay",
        str(policy.class_b_first_self_pay),
        f"乙类项目先行自付 {_yuan(first_self)} 元（默认比例 {policy.class_b_first_self_pay}）",
        f"Class B first self-pay share: {_yuan(first_self)} (default {policy.class_b_first_self_pay})",
    )
    eligible = total - class_c - first_self

    # Deductible: outpatient per year, inpatient per admission.
    field, threshold = f"{kind}.deductible", care.deductible
    if care.deductible_by_level and bill.level in care.deductible_by_level:
        field, threshold = (
            f"{kind}.deductible_by_level.{bill.level}",
            care.deductible_by_level[bill.level],
        )
    if inpatient and ytd.inpatient_admissions > 0 and care.later_admission_deductible is not None:
        field, threshold = f"{kind}.later_admission_deductible", care.later_admission_deductible
    used = 0 if inpatient else ytd.outpatient_deductible_used
    left = max(threshold - used, 0)
    deductible = min(eligible, left)
    step(
        "share",
        "deductible",
        deductible,
        field,
        str(threshold),
        f"起付线 {_yuan(threshold)} 元，本次计入 {_yuan(deductible)} 元，剩余 {_yuan(left - deductible)} 元",
        f"Deductible {_yuan(threshold)}: {_yuan(deductible)} counted now, {_yuan(left - deductible)} left",
    )
    above = eligible - deductible

    ratio = Decimal(str(care.ratios[bill.level]))
    reduction = Decimal(0)
    if bill.out_of_area != "none" and policy.out_of_area_reduction is not None:
        reduction = Decimal(str(getattr(policy.out_of_area_reduction, bill.out_of_area)))
    fund_base = _fen(above * ratio)
    fund_raw = _fen(above * max(ratio - reduction, Decimal(0)))
    copay = above - fund_base
    step(
        "share",
        "copay",
        copay,
        f"{kind}.ratios.{bill.level}",
        str(care.ratios[bill.level]),
        f"报销比例 {care.ratios[bill.level]}，个人按比例自付 {_yuan(copay)} 元",
        f"Reimbursement ratio {care.ratios[bill.level]}: co-payment {_yuan(copay)}",
    )
    out_of_area = fund_base - fund_raw
    if bill.out_of_area != "none":
        step(
            "share",
            "out_of_area_reduction",
            out_of_area,
            f"out_of_area_reduction.{bill.out_of_area}",
            str(reduction),
            f"异地就医比例降低 {reduction}，多自付 {_yuan(out_of_area)} 元",
            f"Out-of-area ratio reduced by {reduction}: {_yuan(out_of_area)} more self-paid",
        )
    cap_left = max(
        care.cap - (ytd.inpatient_fund_paid if inpatient else ytd.outpatient_fund_paid), 0
    )
    fund = min(fund_raw, cap_left)
    over_cap = fund_raw - fund
    step(
        "share",
        "cap",
        over_cap,
        f"{kind}.cap",
        str(care.cap),
        f"年度封顶线 {_yuan(care.cap)} 元，剩余 {_yuan(cap_left)} 元，超出部分 {_yuan(over_cap)} 元自付",
        f"Annual cap {_yuan(care.cap)}, {_yuan(cap_left)} left: {_yuan(over_cap)} above it is self-paid",
    )
    step(
        "share",
        "fund",
        fund,
        f"{kind}.ratios.{bill.level}",
        str(ratio - reduction),
        f"统筹基金支付 {_yuan(fund)} 元",
        f"The pooled fund pays {_yuan(fund)}",
    )

    personal = total - fund
    account = min(balance, personal) if use_account and balance is not None else 0
    if balance is not None:
        step(
            "payment",
            "account",
            account,
            None,
            None,
            f"个人账户支付 {_yuan(account)} 元，余额 {_yuan(balance - account)} 元",
            f"Personal account pays {_yuan(account)}, balance after {_yuan(balance - account)}",
        )
    cash = personal - account
    step("payment", "cash", cash, None, None, f"现金支付 {_yuan(cash)} 元", f"Cash: {_yuan(cash)}")

    usage = msgspec.structs.replace(
        ytd,
        **(
            {
                "inpatient_deductible_used": ytd.inpatient_deductible_used + deductible,
                "inpatient_fund_paid": ytd.inpatient_fund_paid + fund,
                "inpatient_admissions": ytd.inpatient_admissions + 1,
            }
            if inpatient
            else {
                "outpatient_deductible_used": ytd.outpatient_deductible_used + deductible,
                "outpatient_fund_paid": ytd.outpatient_fund_paid + fund,
            }
        ),
    )
    return Split(
        total=total,
        fully_self_paid=class_c,
        first_self_paid=first_self,
        deductible_paid=deductible,
        copay_paid=copay,
        out_of_area_paid=out_of_area,
        over_cap_paid=over_cap,
        fund_paid=fund,
        account_paid=account,
        cash_paid=cash,
        balance_after=None if balance is None else balance - account,
        steps=steps,
        usage_after=usage,
    )
