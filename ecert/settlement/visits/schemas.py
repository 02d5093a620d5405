"""Visit request and response shapes (docs/settlement.md; field names of the national 2201–2207)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec

from ecert.benefits import Step
from ecert.settlement.schemas import MedType

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=30)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Fen = Annotated[int, msgspec.Meta(ge=0, le=10**10)]
Ratio = Annotated[float, msgspec.Meta(ge=0, le=1)]


class Diagnosis(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    name: Text
    main: bool = False


class VisitCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Open a visit with an ec_token (from a verify) or a physical card number, not both."""

    med_type: MedType
    his_visit_no: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    dept_code: Code
    dept_name: Text
    diagnoses: Annotated[list[Diagnosis], msgspec.Meta(max_length=50)]
    ec_token: Annotated[str, msgspec.Meta(pattern=r"^\d{6}[a-z0-9]{32}$")] | None = None
    card_no: Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Z]{6,20}$")] | None = None
    doctor_code: Code | None = None
    doctor_name: Annotated[str, msgspec.Meta(min_length=1, max_length=50)] | None = None
    admitted_at: dt.datetime | None = None


class VisitPerson(msgspec.Struct):
    """Always masked: the full identity is read at verify, with its own scope and audit."""

    name: str
    id_number: str
    gender: str | None
    age: int | None
    insured_area: str


class VisitOpened(msgspec.Struct):
    visit_id: uuid.UUID
    status: str
    person: VisitPerson
    insurance_type: str
    med_type: str
    opened_at: dt.datetime


class FeeLineIn(msgspec.Struct, forbid_unknown_fields=True):
    """One fee line (2204). ``quantity`` is a decimal string (at most 4 places); money in fen."""

    line_no: Annotated[str, msgspec.Meta(min_length=1, max_length=30)]
    list_code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    quantity: Annotated[str, msgspec.Meta(min_length=1, max_length=24)]
    unit_price: Fen
    hospital_code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    amount: Fen | None = None
    item_class: Literal["A", "B", "C"] | None = None
    first_self_pay_ratio: Ratio | None = None
    ordered_at: dt.datetime | None = None
    doctor_code: Code | None = None


class FeeUpload(msgspec.Struct, forbid_unknown_fields=True):
    lines: Annotated[list[FeeLineIn], msgspec.Meta(min_length=1, max_length=500)]


class LineSplit(msgspec.Struct, kw_only=True):
    """A line's class and its four shares (they add up to ``amount``), and why."""

    line_no: str
    amount: int
    item_class: str
    first_self_pay_ratio: float | None
    fully_self_paid: int
    over_limit_self_paid: int
    first_self_paid: int
    eligible_amount: int
    reason: str


class FeeLineView(LineSplit, kw_only=True):
    """A line as it stands: after returns its split is what its remaining quantity is priced
    at now (a fully returned line: 0 everywhere)."""

    #: The quantity returned so far (decimal string, "0": none).
    returned_quantity: str = "0"
    list_code: str
    hospital_code: str | None
    name: str
    quantity: str
    unit_price: int
    ordered_at: dt.datetime | None
    doctor_code: str | None


class FeeUploadResult(msgspec.Struct, kw_only=True):
    visit_id: uuid.UUID
    lines: list[LineSplit]


class VisitSettleRequest(msgspec.Struct, forbid_unknown_fields=True):
    use_account: bool = False
    #: Family mutual aid (家庭共济): with ``use_account``, relatives' authorised accounts pay
    #: what the own account does not cover (``account_mutual_aid_paid``).
    mutual_aid: bool = False
    referred: bool = False


class FundPart(msgspec.Struct, kw_only=True):
    fund_type: str
    amount: int


class VisitCosts(msgspec.Struct, kw_only=True):
    """The national ``setlinfo``: shares add up to ``total``, and so do the payments."""

    total: int
    fully_self_paid: int
    over_limit_self_paid: int
    first_self_paid: int
    eligible_amount: int
    deductible_paid: int
    co_pay: int
    over_cap_self_paid: int
    fund_paid: int
    fund_parts: list[FundPart]
    account_paid: int
    account_mutual_aid_paid: int
    cash_paid: int
    person_paid: int
    balance_after: int | None


class VisitSettlement(VisitCosts, kw_only=True):
    """A settled (or, with ``settlement_id`` null, previewed) visit."""

    settlement_id: uuid.UUID | None
    visit_id: uuid.UUID
    lines: list[LineSplit]
    steps: list[Step]


class Remaining(VisitCosts, kw_only=True):
    """What remains of a settlement after line returns, priced again (the visit fields)."""

    lines: list[LineSplit]
    steps: list[Step]


class VisitReversal(msgspec.Struct, kw_only=True):
    """A reversal of a visit's settlement: what it gave back to each pool."""

    reversal_id: uuid.UUID
    #: full, amount or lines.
    kind: str
    reversed_at: dt.datetime
    amount: int
    fund_refund: int
    account_refund: int
    account_mutual_aid_refund: int
    cash_refund: int
    reason: str
    #: A line return's lines: [{line_no, quantity}].
    lines: list[dict[str, str]] | None = None


class VisitSettlementSummary(VisitCosts, kw_only=True):
    """A settlement as settled (its §7 fields), with what has been reversed of it since."""

    settlement_id: uuid.UUID
    settled_at: dt.datetime
    reversed_total: int
    reversals: list[VisitReversal] = msgspec.field(default_factory=list)


class VisitView(msgspec.Struct, kw_only=True):
    visit_id: uuid.UUID
    status: str
    person: VisitPerson
    insurance_type: str
    med_type: str
    opened_at: dt.datetime
    his_visit_no: str
    dept_code: str
    dept_name: str
    doctor_code: str | None
    doctor_name: str | None
    diagnoses: list[Diagnosis]
    admitted_at: dt.datetime | None
    lines: list[FeeLineView]
    settlements: list[VisitSettlementSummary]
