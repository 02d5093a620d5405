"""Settlement request and response shapes (field names mirror spec §5)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

import msgspec

from ecert.benefits import BillItem, Step

MedType = Annotated[str, msgspec.Meta(pattern=r"^(11|14|21|41|51|52)$")]


class SettlementRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A bill to price (preview) or settle; amounts in integer fen."""

    ec_token: Annotated[str, msgspec.Meta(pattern=r"^\d{6}[a-z0-9]{32}$")]
    med_type: MedType
    items: Annotated[list[BillItem], msgspec.Meta(min_length=1, max_length=500)]
    use_account: bool = False
    #: For care outside the insured area: whether the person was referred (smaller reduction).
    referred: bool = False


class SettlementResult(msgspec.Struct):
    """The split; ``steps`` explain every fen (shares add up to total, payments to total − fund)."""

    settlement_id: uuid.UUID | None
    total: int
    fully_self_paid: int
    first_self_paid: int
    deductible_paid: int
    fund_paid: int
    account_paid: int
    cash_paid: int
    balance_after: int | None
    steps: list[Step]


class ReversalRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Reverse all that is left of a settlement, or ``amount`` fen of it."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    amount: Annotated[int, msgspec.Meta(gt=0)] | None = None


class ReversalResult(msgspec.Struct):
    reversal_id: uuid.UUID
    settlement_id: uuid.UUID
    amount: int
    fund_refund: int
    account_refund: int
    cash_refund: int
    remaining: int


class SettlementView(msgspec.Struct):
    settlement_id: uuid.UUID
    status: str
    med_type: str
    settled_at: dt.datetime
    business_date: dt.date
    total: int
    fully_self_paid: int
    first_self_paid: int
    deductible_paid: int
    fund_paid: int
    account_paid: int
    cash_paid: int
    balance_after: int | None
    reversed_total: int
    steps: list[Step]


class Totals(msgspec.Struct):
    count: int = 0
    total: int = 0
    fund_paid: int = 0
    account_paid: int = 0
    cash_paid: int = 0


class ReconciliationLine(msgspec.Struct):
    kind: str
    id: uuid.UUID
    settlement_id: uuid.UUID
    at: dt.datetime
    total: int
    fund_paid: int
    account_paid: int
    cash_paid: int


class Reconciliation(msgspec.Struct):
    """One institution's business day (Asia/Shanghai): settlements − reversals = net."""

    date: dt.date
    institution_code: str
    settlements: Totals
    reversals: Totals
    net: Totals
    details: list[ReconciliationLine]


class PolicyUpsertResult(msgspec.Struct):
    upserted: int
