"""The read model of a settlement: the split's public fields (``Costs``: previews, settlements,
estimates) and a stored settlement as the institution's route and the person's lookups show it
(``SettlementView``)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec

from ecert.benefits import Split, Step
from ecert.db.models import Settlement, SettlementStatus


class Costs(msgspec.Struct, kw_only=True):
    """The split; ``steps`` explain every fen (shares add up to total, payments to total − fund)."""

    total: int
    fully_self_paid: int
    first_self_paid: int
    deductible_paid: int
    fund_paid: int
    account_paid: int
    #: Paid from relatives' accounts through mutual aid (家庭共济).
    account_mutual_aid_paid: int = 0
    cash_paid: int
    balance_after: int | None
    steps: list[Step]


class SettlementView(Costs, kw_only=True):
    """A stored settlement with the explanation computed when it was settled."""

    settlement_id: uuid.UUID
    status: SettlementStatus
    med_type: str
    settled_at: dt.datetime
    business_date: dt.date
    reversed_total: int
    #: Quantities returned so far by line number (decimal strings); empty: none.
    returned: dict[str, str] = msgspec.field(default_factory=dict)


COST_FIELDS = tuple(f.name for f in msgspec.structs.fields(Costs))
#: Mutual aid is kept in ``settlements.detail`` (no column of its own).
COLUMN_FIELDS = tuple(f for f in COST_FIELDS if f != "account_mutual_aid_paid")


def costs_of(split: Split) -> dict[str, Any]:
    """The split's public fields (what previews, settlements and estimates return)."""
    return {name: getattr(split, name) for name in COST_FIELDS}


def settlement_view(settlement: Settlement) -> SettlementView:
    status = SettlementStatus.SETTLED
    if settlement.reversed_total:
        status = (
            SettlementStatus.REVERSED
            if settlement.reversed_total == settlement.total
            else SettlementStatus.PARTIALLY_REVERSED
        )
    return SettlementView(
        settlement_id=settlement.id,
        status=status,
        med_type=settlement.med_type,
        settled_at=settlement.created_at,
        business_date=settlement.business_date,
        reversed_total=settlement.reversed_total,
        returned=settlement.returned or {},
        account_mutual_aid_paid=mutual_aid_paid(settlement),
        **{
            **{name: getattr(settlement, name) for name in COLUMN_FIELDS},
            "steps": msgspec.convert(settlement.steps, list[Step]),
        },
    )


def mutual_aid_paid(settlement: Settlement) -> int:
    return int((settlement.detail or {}).get("account_mutual_aid_paid", 0))
