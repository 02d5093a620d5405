"""Reconciliation shapes: the day report, the 3201 check and the 3202 detail line."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec

#: National clearing types (clr_type): outpatient, inpatient, pharmacy purchase, other.
ClearingType = Literal["11", "21", "41", "99"]
InsuranceType = Annotated[str, msgspec.Meta(pattern=r"^\d{3}$")]
Count = Annotated[int, msgspec.Meta(ge=0)]


class Totals(msgspec.Struct, kw_only=True):
    count: int = 0
    total: int = 0
    fund_paid: int = 0
    account_paid: int = 0
    cash_paid: int = 0


class ReconciliationLine(msgspec.Struct, kw_only=True):
    kind: str
    id: uuid.UUID
    settlement_id: uuid.UUID
    at: dt.datetime
    total: int
    fund_paid: int
    account_paid: int
    cash_paid: int


class Reconciliation(msgspec.Struct):
    """One institution's business day (Asia/Shanghai). Amounts of ``net`` are settlements −
    reversals; ``net.count`` is the number of settlements (reversals are counted apart in
    ``reversals.count``: a count of bills minus a count of refunds means nothing)."""

    date: dt.date
    institution_code: str
    settlements: Totals
    reversals: Totals
    net: Totals
    details: list[ReconciliationLine]


class ReconciliationCheck(msgspec.Struct, forbid_unknown_fields=True):
    """The institution's own figures for a day (national 3201); amounts net of reversals."""

    date: dt.date
    settlement_count: Count
    #: Net of the day's reversals; negative when refunds of earlier days outweigh new bills.
    total: int
    fund_paid: int
    account_paid: int
    clearing_type: ClearingType | None = None
    insurance_type: InsuranceType | None = None
    #: Optional: compared when sent.
    reversal_count: Count | None = None


class Figures(msgspec.Struct, kw_only=True):
    settlement_count: int
    reversal_count: int | None
    total: int
    fund_paid: int
    account_paid: int


class ReconciliationResult(msgspec.Struct):
    """``differences`` are ours − theirs per key (null where they sent no figure)."""

    result: Literal["match", "mismatch"]
    date: dt.date
    institution_code: str
    clearing_type: ClearingType | None
    insurance_type: str | None
    ours: Figures
    theirs: Figures
    differences: Figures


class DetailLine(msgspec.Struct):
    """One settlement or reversal of the day (3202); a reversal's amounts are what went back."""

    kind: Literal["settlement", "reversal"]
    id: uuid.UUID
    settlement_id: uuid.UUID
    at: dt.datetime
    business_date: dt.date
    #: The day of the settlement (for a reversal, the day of the bill it reverses).
    settlement_date: dt.date
    med_type: str
    clearing_type: ClearingType
    insurance_type: str
    #: The opaque person number; no other personal data leaves in a reconciliation file.
    person_no: str
    visit_id: uuid.UUID | None
    total: int
    fund_paid: int
    account_paid: int
    cash_paid: int
