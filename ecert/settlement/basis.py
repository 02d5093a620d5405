"""What a settlement was priced against, stored with it (``settlements.pricing``).

A return prices what remains of the bill again (docs/settlement.md), against the same policy,
year-to-date usage and account balance the original saw; so the settlement keeps them, with its
lines: a visit's fee lines as classified when it settled, or a one-shot bill's items as lines
numbered by position (``"1"``, ``"2"``, … with quantity 1 and the item's amount as unit price).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ecert.benefits import Bill, Level, OutOfAreaKind, Policy, YearToDate
from ecert.ledger import Reason


class BasisLine(msgspec.Struct, frozen=True, kw_only=True):
    """One line as priced: enough to price any quantity of it again."""

    line_no: str
    list_code: str
    name: str
    #: Decimal string, as the fee line was sent (normalised).
    quantity: str
    unit_price: int
    item_class: Literal["A", "B", "C"]
    #: Class B only: the line's own first self-pay share (None: the policy's default).
    first_self_pay_ratio: float | None = None
    #: The unit price cap the over-limit part is cut at (None: no cut).
    price_cap: int | None = None
    reason: str


class Basis(msgspec.Struct, frozen=True, kw_only=True):
    policy: Policy
    insurance_type: str
    med_type: str
    level: Level
    out_of_area: OutOfAreaKind
    #: The person's usage just before this settlement (what the engine was given).
    usage_before: YearToDate
    #: The account balance just before it (None: no personal account).
    balance_before: int | None
    use_account: bool
    lines: list[BasisLine]
    #: What the authorising relatives' accounts held just before it (None: no mutual aid asked).
    mutual_aid_before: int | None = None
    #: The usage of the policy's layer above the cap just before it (None: no layer).
    layer_usage_before: YearToDate | None = None


def one_shot_lines(bill: Bill) -> list[BasisLine]:
    """A one-shot bill's items as lines numbered by position (from 1), quantity 1."""
    return [
        BasisLine(
            line_no=str(n),
            list_code=item.code,
            name=item.name,
            quantity="1",
            unit_price=item.amount,
            item_class=item.item_class,
            first_self_pay_ratio=item.first_self_pay_ratio if item.item_class == "B" else None,
            reason=Reason.HOSPITAL_DECLARED.value,
        )
        for n, item in enumerate(bill.items, start=1)
    ]
