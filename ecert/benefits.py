"""The benefit engine (pure): policy + year-to-date usage + bill → who pays each fen, and why.

One engine prices settlements, their previews and the person's estimates; it does no I/O.

Rules by medical type (``med_type``, national dictionary): outpatient rules for general
outpatient (11), chronic/special outpatient (14), pharmacy purchases (41) and maternity
outpatient (51, 生育门诊); inpatient rules for inpatient (21) and maternity inpatient (52,
生育住院) — only these two are admissions. The outpatient deductible is per year (what
``ytd.outpatient_deductible_used`` holds counts against it). The inpatient deductible is per
admission: each inpatient bill is one admission, number ``ytd.inpatient_admissions + 1``; from the
second on ``later_admission_deductible`` applies when the policy has one (it wins over
``deductible_by_level``, which wins over ``deductible``).

Order: (1) class C fully self-paid; (2) class B first self-pay share; (3) the eligible rest meets
the deductible left; (4) above it the fund pays ratio = level ratio − out-of-area reduction points
(floored at 0); (5) the cap left this year limits the fund, the cut is the person's — unless the
policy has a layer above the cap (``above_cap``, 大额 / 大病): (5b) of the cut the person bears the
layer's deductible left this year, the layer pays its ratio of the rest (``layer_copay`` is the
person's) up to its cap left this year, and only beyond that cap is self-paid; (6) the
personal account pays min(balance, total − fund) when asked; (6b) with mutual aid asked too, the
authorising relatives' accounts pay what they can of the rest; (7) cash pays the rest.

Money is integer fen. Ratios become ``Decimal(str(x))``; products are exact and are rounded
half-up to whole fen at exactly three points (everything else is integer ``+ − min max``):
- class B: once per group of B items sharing a first self-pay ratio (Σ amounts × ratio);
- the fund at the level ratio: once per bill (above-deductible × ratio);
- the fund at the reduced ratio: once per bill (above-deductible × (ratio − reduction));
- the layer above the cap: once per bill (cut above its deductible × its ratio).
So the amounts are deterministic and do not depend on the order of the items.

Invariant (property-tested): every step amount is ≥ 0 and each rule's steps add up to its field —
class_c_self_pay → fully_self_paid, class_b_first_self_pay → first_self_paid, deductible →
deductible_paid, copay → copay_paid, out_of_area_reduction → out_of_area_paid, cap →
over_cap_paid, fund + layer_fund → fund_paid (layer_fund alone → layer_fund_paid),
layer_deductible → layer_deductible_paid, layer_copay → layer_copay_paid, account → account_paid, mutual_aid → account_mutual_aid_paid,
cash → cash_paid; hence
- the ``share`` steps add up to total = fully_self_paid + first_self_paid + deductible_paid +
  copay_paid + out_of_area_paid + layer_deductible_paid + layer_copay_paid + over_cap_paid +
  fund_paid;
- the ``payment`` steps add up to total − fund_paid = account_paid + account_mutual_aid_paid +
  cash_paid.
Every rule has exactly one step (class B: one per ratio group; ``out_of_area_reduction`` only for
out-of-area bills; with a layer: two ``cap`` steps, the basic one at 0, and one each of
``layer_deductible``, ``layer_copay``, ``layer_fund``; ``account`` when the person has an account
or asked to use one — 0 and why when there is none; ``mutual_aid`` only when asked with ``use_account``), zero amounts included.
Steps are plain msgspec Structs, so settlements store them as JSON and keep history as priced.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal
from typing import Annotated, Any, Literal, Self

import msgspec

from ecert.errors import EcertError

Level = Literal["community", "1", "2", "3"]
LEVELS: frozenset[str] = frozenset({"community", "1", "2", "3"})
OutOfAreaKind = Literal["none", "referred", "unreferred"]
Ratio = Annotated[float, msgspec.Meta(ge=0, le=1)]
Fen = Annotated[int, msgspec.Meta(ge=0)]
OUTPATIENT_TYPES = frozenset({"11", "14", "41", "51"})
INPATIENT_TYPES = frozenset({"21", "52"})
MED_TYPES = OUTPATIENT_TYPES | INPATIENT_TYPES
_EXACT = Context(prec=80)  # fen × ratio stays exact; rounding happens only in _fen


class InvalidBill(EcertError):
    """Raised when a bill cannot be priced (empty, negative amount, unknown type or level)."""

    status = 422
    code = "invalid_bill"
    title = "The bill cannot be priced"


class InvalidPolicy(EcertError):
    """Raised by :meth:`Policy.from_json` when a policy does not follow the import format."""

    status = 422
    code = "invalid_policy"
    title = "The benefit policy is not valid"


def _check_ratio(name: str, value: float) -> None:
    if not 0 <= value <= 1:  # also refuses NaN
        raise ValueError(f"{name} must be between 0 and 1")


def _check_fen(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or value < 0):
        raise ValueError(f"{name} must be whole fen ≥ 0")


def _check_levels(name: str, keys: Any) -> None:
    if unknown := set(keys) - LEVELS:
        raise ValueError(f"{name}: unknown institution level(s) {sorted(unknown)}")


#: The national fund type a layer pays from, by its insurance type, when the policy names none:
#: 330 large-expense subsidy → 330100 (职工大额医疗费用补助基金), 392 resident critical illness →
#: 390200 (城乡居民大病医疗保险基金).
LAYER_FUND_TYPES = {"330": "330100", "392": "390200"}
#: The basic schemes; a layer is never one of them (its usage is kept under its own type).
BASIC_INSURANCE_TYPES = frozenset({"310", "390"})


class Layer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The layer above the basic cap (大额医疗费用补助 / 大病保险): it takes what the basic
    pooled fund's annual cap cuts. Of that cut the person first bears ``deductible`` (per year),
    the layer pays ``ratio`` of the rest up to ``cap`` (per year); beyond its cap is self-paid.
    Its year-to-date usage is kept under its own ``insurance_type`` (e.g. 330, 392)."""

    insurance_type: Annotated[str, msgspec.Meta(pattern=r"^\d{3}$")]
    deductible: Fen
    ratio: Ratio
    cap: Fen
    #: National fund type code (6 digits); default from :data:`LAYER_FUND_TYPES`.
    fund_type: Annotated[str, msgspec.Meta(pattern=r"^\d{6}$")] | None = None

    def __post_init__(self) -> None:
        if self.insurance_type in BASIC_INSURANCE_TYPES:
            raise ValueError("above_cap.insurance_type must not be a basic scheme (310, 390)")
        if self.fund_type is None and self.insurance_type not in LAYER_FUND_TYPES:
            raise ValueError("above_cap.fund_type is required for this insurance type")
        _check_ratio("above_cap.ratio", self.ratio)
        _check_fen("above_cap.deductible", self.deductible)
        _check_fen("above_cap.cap", self.cap)

    @property
    def fund(self) -> str:
        return self.fund_type or LAYER_FUND_TYPES[self.insurance_type]


class CarePolicy(msgspec.Struct, frozen=True):
    """Outpatient or inpatient rules: fen per year (deductible per admission for inpatient)."""

    deductible: Fen
    cap: Fen
    ratios: dict[str, Ratio]
    deductible_by_level: dict[str, Fen] | None = None
    later_admission_deductible: Fen | None = None
    #: The large-expense / critical-illness layer above the cap (None: the cap is the end).
    above_cap: Layer | None = None

    def __post_init__(self) -> None:
        if not self.ratios:
            raise ValueError("ratios must name at least one institution level")
        _check_levels("ratios", self.ratios)
        _check_levels("deductible_by_level", self.deductible_by_level or {})
        for level, ratio in self.ratios.items():
            _check_ratio(f"ratios.{level}", ratio)
        for level, fen in (self.deductible_by_level or {}).items():
            _check_fen(f"deductible_by_level.{level}", fen)
        _check_fen("deductible", self.deductible)
        _check_fen("cap", self.cap)
        _check_fen("later_admission_deductible", self.later_admission_deductible)


def layer_of(policy: Policy, med_type: str) -> Layer | None:
    """The policy's layer above the cap for this medical type's care (None: it has none)."""
    return (policy.inpatient if med_type in INPATIENT_TYPES else policy.outpatient).above_cap


class OutOfArea(msgspec.Struct, frozen=True):
    """Ratio points taken off for care outside the insured area."""

    referred: Ratio = 0.0
    unreferred: Ratio = 0.0

    def __post_init__(self) -> None:
        _check_ratio("referred", self.referred)
        _check_ratio("unreferred", self.unreferred)


# Policies ignore keys they do not know (docs/import.md: a real policy carries more than ecert prices
# with); bills and items refuse them.
class Policy(msgspec.Struct, frozen=True):
    """One policy per area × insurance type × year × person category (import format)."""

    area: Annotated[str, msgspec.Meta(pattern=r"^\d{6}$")]
    insurance_type: Annotated[str, msgspec.Meta(pattern=r"^\d{3}$")]
    year: Annotated[int, msgspec.Meta(ge=2000, le=2100)]
    category: Literal["employee", "retired", "resident"]
    outpatient: CarePolicy
    inpatient: CarePolicy
    class_b_first_self_pay: Ratio = 0.1
    out_of_area_reduction: OutOfArea | None = None

    def __post_init__(self) -> None:
        _check_ratio("class_b_first_self_pay", self.class_b_first_self_pay)

    @classmethod
    def from_json(cls, data: dict[str, Any] | str | bytes) -> Self:
        """Validate one policy: a decoded JSON object or one JSON Lines line; InvalidPolicy if not."""
        try:
            if isinstance(data, str | bytes):
                return msgspec.json.decode(data, type=cls)
            return msgspec.convert(data, cls)
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
            raise InvalidPolicy(str(exc)) from exc


class BillItem(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    item_class: Literal["A", "B", "C"]
    amount: Annotated[int, msgspec.Meta(ge=0, le=10**10)]
    #: Class B only: the item's own first self-pay share (else the policy's default).
    first_self_pay_ratio: Ratio | None = None


class Bill(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A bill to price: the medical type, the items and the institution's level."""

    med_type: str
    items: list[BillItem]
    level: Level
    out_of_area: OutOfAreaKind = "none"


class YearToDate(msgspec.Struct, frozen=True):
    """What the person has used this year under this policy (fen; admissions count)."""

    outpatient_deductible_used: Fen = 0
    outpatient_fund_paid: Fen = 0
    inpatient_deductible_used: Fen = 0
    inpatient_fund_paid: Fen = 0
    inpatient_admissions: Fen = 0


class Step(msgspec.Struct, frozen=True):
    """One rule applied: the fen it decided, the policy value it came from, and why in words.

    ``part`` is ``share`` (who bears the cost: the steps add up to the total) or ``payment``
    (how the person's part is paid: the steps add up to total − fund).
    """

    part: Literal["share", "payment"]
    rule: str
    amount: int
    policy_field: str | None
    policy_value: str | None
    text_zh: str
    text_en: str


class ItemShare(msgspec.Struct, frozen=True):
    """One item's part of the class shares: fully self-paid (C), first self-paid (B), and the
    eligible rest that meets the deductible. They add up to the item's amount."""

    fully_self_paid: int
    first_self_paid: int
    eligible_amount: int


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
    #: Paid from the accounts of relatives who authorised mutual aid (家庭共济).
    account_mutual_aid_paid: int
    cash_paid: int
    balance_after: int | None
    steps: list[Step]
    #: Usage after this bill (what the settlement stores for the year).
    usage_after: YearToDate
    #: Per item, in the bill's order; they add up to the class fields above.
    items: list[ItemShare]
    #: The layer above the basic cap (0 without one): what its deductible and co-payment left
    #: to the person, and what it paid (part of ``fund_paid``).
    layer_deductible_paid: int = 0
    layer_copay_paid: int = 0
    layer_fund_paid: int = 0
    #: The layer's usage after this bill (None: the policy has no layer for this care).
    layer_usage_after: YearToDate | None = None


def _fen(amount: int, ratio: Decimal) -> int:
    """amount × ratio, rounded half-up to whole fen (the only rounding in the engine)."""
    exact = _EXACT.multiply(Decimal(amount), ratio)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP, context=_EXACT))


def _yuan(fen: int) -> str:
    whole, cents = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}{whole}.{cents:02d}"


def _validate(bill: Bill) -> None:
    if not bill.items:
        raise InvalidBill("a bill needs at least one item")
    if bill.med_type not in MED_TYPES:
        raise InvalidBill(f"medical type must be one of {sorted(MED_TYPES)}")
    if bill.level not in LEVELS:
        raise InvalidBill(f"institution level must be one of {sorted(LEVELS)}")
    if bill.out_of_area not in ("none", "referred", "unreferred"):
        raise InvalidBill("out_of_area must be none, referred or unreferred")
    for n, item in enumerate(bill.items):
        if item.item_class not in ("A", "B", "C"):
            raise InvalidBill(f"items[{n}]: item class must be A, B or C")
        if isinstance(item.amount, bool) or not isinstance(item.amount, int) or item.amount < 0:
            raise InvalidBill(f"items[{n}]: amount must be whole fen ≥ 0")
        ratio = item.first_self_pay_ratio
        if ratio is not None and not 0 <= ratio <= 1:
            raise InvalidBill(f"items[{n}]: first_self_pay_ratio must be between 0 and 1")


def _spread(part: int, amounts: list[int], ratio: Decimal) -> list[int]:
    """Share a group's rounded first self-pay over its items: each gets its exact share rounded
    down, and the fen left go to the largest remainders (ties: earlier item). Sums to ``part``."""
    exact = [_EXACT.multiply(Decimal(a), ratio) for a in amounts]
    shares = [int(e.to_integral_value(rounding=ROUND_FLOOR)) for e in exact]
    left = part - sum(shares)
    for k in sorted(range(len(amounts)), key=lambda k: (shares[k] - exact[k], k))[:left]:
        shares[k] += 1
    return shares


def compute(
    policy: Policy,
    bill: Bill,
    ytd: YearToDate,
    *,
    balance: int | None,
    use_account: bool,
    mutual_aid: int | None = None,
    layer_ytd: YearToDate | None = None,
) -> Split:
    """Price a bill; ``balance`` None means the insurance type has no personal account.
    ``mutual_aid``: what the accounts authorised for this person (家庭共济) hold together, when
    the caller asked to draw on them (None: not asked); used only with ``use_account``.
    ``layer_ytd``: the usage of the policy's layer above the cap (its own insurance type; None
    counts as nothing used).

    Raises :class:`InvalidBill` (``invalid_bill``) for a bill that cannot be priced.
    """
    _validate(bill)
    inpatient = bill.med_type in INPATIENT_TYPES
    kind = "inpatient" if inpatient else "outpatient"
    care = policy.inpatient if inpatient else policy.outpatient
    if bill.level not in care.ratios:
        raise InvalidBill(f"the policy has no {kind} ratio for institution level {bill.level}")
    steps: list[Step] = []

    def share(rule: str, amount: int, field: str | None, value: object, zh: str, en: str) -> None:
        text = None if value is None else str(value)
        steps.append(Step("share", rule, amount, field, text, zh, en))

    # 1) Class C: fully self-paid.
    total = sum(item.amount for item in bill.items)
    class_c = sum(item.amount for item in bill.items if item.item_class == "C")
    zh = f"丙类项目 {_yuan(class_c)} 元全部自付"
    share("class_c_self_pay", class_c, None, None, zh, f"Class C: {_yuan(class_c)} fully self-paid")

    # 2) Class B: first self-pay share, one group (and one rounding) per distinct ratio.
    groups: dict[tuple[bool, str], list[int]] = {}  # (the item's own ratio?, ratio) → items
    default_b = str(policy.class_b_first_self_pay)
    for n, item in enumerate(bill.items):
        if item.item_class == "B":
            own = item.first_self_pay_ratio is not None
            key = (own, str(item.first_self_pay_ratio) if own else default_b)
            groups.setdefault(key, []).append(n)
    first_self = 0
    first_of = [0] * len(bill.items)
    for (own, ratio_b), members in groups.items() or [((False, default_b), [])]:
        amount = sum(bill.items[n].amount for n in members)
        part = _fen(amount, Decimal(ratio_b))
        first_self += part
        spread = _spread(part, [bill.items[n].amount for n in members], Decimal(ratio_b))
        for n, share_of_item in zip(members, spread, strict=True):
            first_of[n] = share_of_item
        whose_zh, whose_en = ("项目自定", "their own") if own else ("", "the")
        zh = f"乙类项目 {_yuan(amount)} 元按{whose_zh}先行自付比例 {ratio_b} 先行自付 {_yuan(part)} 元"
        en = f"Class B items {_yuan(amount)} at {whose_en} first self-pay share {ratio_b}: {_yuan(part)}"
        share(
            "class_b_first_self_pay",
            part,
            None if own else "class_b_first_self_pay",
            ratio_b,
            zh,
            en,
        )
    eligible = total - class_c - first_self

    # 3) Deductible: outpatient per year, inpatient per admission.
    field, threshold = f"{kind}.deductible", care.deductible
    if care.deductible_by_level and bill.level in care.deductible_by_level:
        field = f"{kind}.deductible_by_level.{bill.level}"
        threshold = care.deductible_by_level[bill.level]
    admission = ytd.inpatient_admissions + 1
    if inpatient and admission > 1 and care.later_admission_deductible is not None:
        field, threshold = f"{kind}.later_admission_deductible", care.later_admission_deductible
    used = 0 if inpatient else max(ytd.outpatient_deductible_used, 0)
    left = max(threshold - used, 0)
    deductible = min(eligible, left)
    if inpatient:
        zh = f"第 {admission} 次住院起付线 {_yuan(threshold)} 元，本次自付 {_yuan(deductible)} 元"
        en = f"Admission {admission}: deductible {_yuan(threshold)}, {_yuan(deductible)} self-paid"
    else:
        zh = f"年度门诊起付线 {_yuan(threshold)} 元，此前已累计 {_yuan(used)} 元，本次自付 {_yuan(deductible)} 元，尚余 {_yuan(left - deductible)} 元"
        en = f"Annual outpatient deductible {_yuan(threshold)}, {_yuan(used)} met before: {_yuan(deductible)} self-paid now, {_yuan(left - deductible)} left"
    share("deductible", deductible, field, threshold, zh, en)
    above = eligible - deductible

    # 4) The fund's ratio, less the out-of-area reduction (floored at 0).
    ratio_field, ratio = f"{kind}.ratios.{bill.level}", care.ratios[bill.level]
    reduction, reduction_field = Decimal(0), None
    oa = policy.out_of_area_reduction
    if bill.out_of_area != "none" and oa is not None:
        reduction = Decimal(str(oa.referred if bill.out_of_area == "referred" else oa.unreferred))
        reduction_field = f"out_of_area_reduction.{bill.out_of_area}"
    effective = max(_EXACT.subtract(Decimal(str(ratio)), reduction), Decimal(0))
    at_ratio = _fen(above, Decimal(str(ratio)))
    at_effective = _fen(above, effective)
    copay = above - at_ratio
    zh = f"起付线以上 {_yuan(above)} 元，报销比例 {ratio}，个人按比例自付 {_yuan(copay)} 元"
    en = f"Above the deductible {_yuan(above)} at ratio {ratio}: co-payment {_yuan(copay)}"
    share("copay", copay, ratio_field, ratio, zh, en)
    out_of_area = at_ratio - at_effective
    if bill.out_of_area != "none":
        where = "转诊" if bill.out_of_area == "referred" else "未转诊"
        zh = f"{where}异地就医，报销比例降低 {reduction} 至 {effective}，多自付 {_yuan(out_of_area)} 元"
        en = f"Out of area ({bill.out_of_area}): ratio lowered by {reduction} to {effective}, {_yuan(out_of_area)} more self-paid"
        value = None if oa is None else reduction
        share("out_of_area_reduction", out_of_area, reduction_field, value, zh, en)

    # 5) The cap left this year limits the fund; what it cuts is the person's.
    fund_used = ytd.inpatient_fund_paid if inpatient else ytd.outpatient_fund_paid
    cap_left = max(care.cap - max(fund_used, 0), 0)
    fund = min(at_effective, cap_left)
    over_cap = at_effective - fund
    layer = care.above_cap
    layer_usage: YearToDate | None = None
    layer_deductible = layer_copay = layer_fund = 0
    if layer is None:
        zh = f"年度封顶线 {_yuan(care.cap)} 元，剩余 {_yuan(cap_left)} 元，超出部分 {_yuan(over_cap)} 元自付"
        en = f"Annual cap {_yuan(care.cap)}, {_yuan(cap_left)} left: {_yuan(over_cap)} above it self-paid"
        share("cap", over_cap, f"{kind}.cap", care.cap, zh, en)
    else:
        # 5b) The layer takes what the basic cap cut: its own deductible, ratio and cap.
        cut, used_layer = over_cap, layer_ytd or YearToDate()
        zh = f"基本统筹年度封顶线 {_yuan(care.cap)} 元，剩余 {_yuan(cap_left)} 元，超出的 {_yuan(cut)} 元转入大额（大病）保障"
        en = f"Basic annual cap {_yuan(care.cap)}, {_yuan(cap_left)} left: {_yuan(cut)} above it goes to the large-expense layer"
        share("cap", 0, f"{kind}.cap", care.cap, zh, en)  # nothing self-paid at the basic cap
        prefix = f"{kind}.above_cap"
        met = max(getattr(used_layer, f"{kind}_deductible_used"), 0)
        layer_deductible = min(cut, max(layer.deductible - met, 0))
        zh = f"大额（大病）起付线 {_yuan(layer.deductible)} 元，此前已累计 {_yuan(met)} 元，本次自付 {_yuan(layer_deductible)} 元"
        en = f"Layer deductible {_yuan(layer.deductible)}, {_yuan(met)} met before: {_yuan(layer_deductible)} self-paid now"
        share(
            "layer_deductible", layer_deductible, f"{prefix}.deductible", layer.deductible, zh, en
        )
        rest = cut - layer_deductible
        at_layer = _fen(rest, Decimal(str(layer.ratio)))
        layer_copay = rest - at_layer
        zh = f"大额（大病）起付线以上 {_yuan(rest)} 元，支付比例 {layer.ratio}，个人自付 {_yuan(layer_copay)} 元"
        en = f"Above the layer deductible {_yuan(rest)} at ratio {layer.ratio}: co-payment {_yuan(layer_copay)}"
        share("layer_copay", layer_copay, f"{prefix}.ratio", layer.ratio, zh, en)
        paid_before = max(getattr(used_layer, f"{kind}_fund_paid"), 0)
        layer_left = max(layer.cap - paid_before, 0)
        layer_fund = min(at_layer, layer_left)
        over_cap = at_layer - layer_fund
        zh = f"大额（大病）年度封顶线 {_yuan(layer.cap)} 元，剩余 {_yuan(layer_left)} 元，超出部分 {_yuan(over_cap)} 元自付"
        en = f"Layer annual cap {_yuan(layer.cap)}, {_yuan(layer_left)} left: {_yuan(over_cap)} above it self-paid"
        share("cap", over_cap, f"{prefix}.cap", layer.cap, zh, en)
        layer_usage = msgspec.structs.replace(
            used_layer,
            **{
                f"{kind}_deductible_used": met + layer_deductible,
                f"{kind}_fund_paid": paid_before + layer_fund,
            },
        )
    zh = f"统筹基金按比例 {effective} 支付 {_yuan(fund)} 元"
    en = f"The pooled fund pays {_yuan(fund)} at ratio {effective}"
    share("fund", fund, ratio_field, ratio, zh, en)
    if layer is not None:
        zh = f"大额（大病）保障基金（{layer.fund}）按比例 {layer.ratio} 支付 {_yuan(layer_fund)} 元"
        en = f"The large-expense layer ({layer.fund}) pays {_yuan(layer_fund)} at ratio {layer.ratio}"
        share("layer_fund", layer_fund, f"{kind}.above_cap.ratio", layer.ratio, zh, en)
    basic_fund, fund = fund, fund + layer_fund

    # 6) and 7) The person's part: the account when asked and it has money, then the family's
    # accounts (mutual aid) when asked, then cash.
    personal = total - fund
    account = max(min(balance, personal), 0) if use_account and balance is not None else 0
    if balance is not None:
        zh = f"个人账户支付 {_yuan(account)} 元，余额 {_yuan(balance - account)} 元"
        en = f"Personal account pays {_yuan(account)}, balance after {_yuan(balance - account)}"
        if not use_account:
            zh, en = "未使用个人账户", "Personal account not used"
        steps.append(Step("payment", "account", account, None, None, zh, en))
    elif use_account:
        # Asked but there is nothing to pay from: say so, so the hospital can tell the patient.
        zh, en = (
            "本人无个人账户（如居民医保），个人账户支付 0 元",
            "No personal account (e.g. resident insurance): the account pays 0",
        )
        steps.append(Step("payment", "account", 0, None, None, zh, en))
    family = 0
    if use_account and mutual_aid is not None:
        family = max(min(mutual_aid, personal - account), 0)
        zh = f"家庭共济账户支付 {_yuan(family)} 元（授权账户可用 {_yuan(mutual_aid)} 元）"
        en = f"Family mutual aid pays {_yuan(family)} ({_yuan(mutual_aid)} available in authorising accounts)"
        steps.append(Step("payment", "mutual_aid", family, None, None, zh, en))
    cash = personal - account - family
    zh, en = f"现金支付 {_yuan(cash)} 元", f"Cash: {_yuan(cash)}"
    steps.append(Step("payment", "cash", cash, None, None, zh, en))

    if inpatient:
        usage = msgspec.structs.replace(
            ytd,
            inpatient_deductible_used=ytd.inpatient_deductible_used + deductible,
            inpatient_fund_paid=ytd.inpatient_fund_paid + basic_fund,
            inpatient_admissions=admission,
        )
    else:
        usage = msgspec.structs.replace(
            ytd,
            outpatient_deductible_used=ytd.outpatient_deductible_used + deductible,
            outpatient_fund_paid=ytd.outpatient_fund_paid + basic_fund,
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
        account_mutual_aid_paid=family,
        cash_paid=cash,
        balance_after=None if balance is None else balance - account,
        steps=steps,
        usage_after=usage,
        items=[
            ItemShare(
                fully_self_paid=item.amount if item.item_class == "C" else 0,
                first_self_paid=first_of[n],
                eligible_amount=item.amount - first_of[n] if item.item_class != "C" else 0,
            )
            for n, item in enumerate(bill.items)
        ],
        layer_deductible_paid=layer_deductible,
        layer_copay_paid=layer_copay,
        layer_fund_paid=layer_fund,
        layer_usage_after=layer_usage,
    )
