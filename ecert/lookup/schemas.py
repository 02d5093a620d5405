"""Lookup response shapes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Generic, Literal, TypeVar

import msgspec

from ecert.benefits import BillItem
from ecert.db.models import ContributionStatus, EnrolmentStatus
from ecert.ledger import SettlementView

T = TypeVar("T")


class EnrolmentView(msgspec.Struct, kw_only=True):
    insurance_type: str
    status: EnrolmentStatus
    area: str
    employer: str | None
    start_date: dt.date
    end_date: dt.date | None


class Enrolments(msgspec.Struct, kw_only=True):
    person_category: str
    insured_area: str
    enrolments: list[EnrolmentView]


class AccountView(msgspec.Struct, kw_only=True):
    #: None when the person's scheme has no personal account (e.g. resident insurance).
    balance: int | None


class FamilyParty(msgspec.Struct, kw_only=True):
    """The other side of a mutual aid movement (家庭共济), masked."""

    name: str
    id_number: str
    relation: str


class Transaction(msgspec.Struct, kw_only=True):
    id: int
    at: dt.datetime
    kind: str
    amount: int
    balance_after: int
    settlement_id: str | None
    memo: str | None
    #: Kind ``family``: the relative whose bill this account paid (or got back), masked.
    relative: FamilyParty | None = None
    #: The month the movement belongs to (YYYYMM): a credit's contribution month, otherwise
    #: the Asia/Shanghai month it happened in.
    month: str | None = None


class MutualAidSource(msgspec.Struct, kw_only=True):
    """Who paid part of my bill from their account (mutual aid), masked, and how much."""

    holder: FamilyParty
    amount: int


class MySettlement(SettlementView, kw_only=True):
    """The person's own settlement; ``mutual_aid`` names the relatives' accounts that paid."""

    mutual_aid: list[MutualAidSource] = []


class Page(msgspec.Struct, Generic[T], kw_only=True):
    items: list[T]
    limit: int
    offset: int
    total: int


class CareView(msgspec.Struct, kw_only=True):
    deductible: int
    deductible_by_level: dict[str, int] | None
    later_admission_deductible: int | None
    ratios: dict[str, float]
    cap: int
    deductible_used: int
    fund_paid: int
    cap_left: int


class BenefitsView(msgspec.Struct, kw_only=True):
    """The policy that applies to the person this year, and what is used so far."""

    area: str
    insurance_type: str
    year: int
    category: str
    class_b_first_self_pay: float
    outpatient: CareView
    inpatient: CareView
    inpatient_admissions: int


class EstimateRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A bill the person might face: what would it cost them now?"""

    med_type: Annotated[str, msgspec.Meta(pattern=r"^(11|14|21|41|51|52)$")]
    items: Annotated[list[BillItem], msgspec.Meta(min_length=1, max_length=500)]
    level: Literal["community", "1", "2", "3"]
    out_of_area: Literal["none", "referred", "unreferred"] = "none"
    use_account: bool = True
    #: Count on relatives' accounts that authorised mutual aid (家庭共济) for the rest.
    mutual_aid: bool = False


SettlementPage = Page[MySettlement]
TransactionPage = Page[Transaction]


class ContributionView(msgspec.Struct, kw_only=True):
    month: str
    base: int
    employer_amount: int
    employee_amount: int
    #: What this month brings to the personal account (0 for schemes without one).
    account_credit: int
    status: ContributionStatus
    #: Whether ``account_credit`` has reached the account (an arrears month waits for back-pay).
    credited: bool


class YearTotals(msgspec.Struct, kw_only=True):
    year: int
    employer_amount: int
    employee_amount: int
    account_credit: int
    months_paid: int
    months_in_arrears: int


class ContributionPage(msgspec.Struct, kw_only=True):
    """Months in the range, newest first, one page; totals per year cover the whole range."""

    items: list[ContributionView]
    totals_by_year: list[YearTotals]
    limit: int
    offset: int
    total: int
