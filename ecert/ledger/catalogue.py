"""The payer's catalogue decides a fee line's class (docs/import.md), not the hospital.

:func:`classify` is pure: catalogue entry (or none) + person + med_type + date + the line →
class, first self-pay share, the amount above the price cap, and why. When a catalogue is
loaded it is authoritative: an unknown or restricted code is class C (fully self-paid). Without
one (the demo) the hospital's declared class stands. The catalogue's queries are in
``repositories.py`` (``catalogue_entries``, ``upsert_catalogue``).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

import msgspec

from ecert.identity import age_on

ItemClass = Literal["A", "B", "C"]


class Reason(enum.StrEnum):
    """Why a line got its class (shown with each line, like the national 2204 reply)."""

    CATALOGUE = "catalogue"
    NOT_IN_CATALOGUE = "not_in_catalogue"
    OUTSIDE_VALIDITY = "outside_validity"
    GENDER_RESTRICTED = "gender_restricted"
    AGE_RESTRICTED = "age_restricted"
    MED_TYPE_RESTRICTED = "med_type_restricted"
    HOSPITAL_DECLARED = "hospital_declared"


class Entry(msgspec.Struct, frozen=True):
    """One catalogue entry, as stored (the classifier's view of it)."""

    list_code: str
    item_class: ItemClass
    valid_from: dt.date
    first_self_pay_ratio: float | None = None
    price_cap: int | None = None
    valid_to: dt.date | None = None
    gender: Literal["M", "F"] | None = None
    min_age: int | None = None
    max_age: int | None = None
    med_types: frozenset[str] | None = None


class Classified(msgspec.Struct, frozen=True):
    item_class: ItemClass
    #: The line's own first self-pay share (class B); None: the policy's default applies.
    first_self_pay_ratio: float | None
    #: Fen above ``quantity × price_cap``: self-paid, outside the classes.
    over_limit: int
    reason: Reason
    #: The unit price cap the over-limit part was cut at (None: no cut), so that a partly
    #: returned line's over-limit part is cut the same way.
    price_cap: int | None = None


def fen(quantity: Decimal, unit_price: int) -> int:
    """quantity × unit price, rounded half up to the fen."""
    return int((quantity * unit_price).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def pick(entries: Sequence[Entry], on: dt.date) -> Entry | None:
    """The entry of a code in force on ``on`` (the latest start wins if periods overlap)."""
    live = [e for e in entries if e.valid_from <= on and (e.valid_to is None or on <= e.valid_to)]
    return max(live, key=lambda e: e.valid_from) if live else None


def classify(
    entries: Sequence[Entry] | None,
    *,
    gender: str | None,
    birth_date: dt.date | None,
    med_type: str,
    on: dt.date,
    quantity: Decimal,
    unit_price: int,
    declared_class: ItemClass | None,
    declared_ratio: float | None,
) -> Classified:
    """Classify one line. ``entries``: the code's catalogue entries (empty: not in it), or None
    when no catalogue is loaded at all."""
    if entries is None:
        # Without a catalogue the hospital's word is all there is; undeclared counts as C.
        return Classified(declared_class or "C", declared_ratio, 0, Reason.HOSPITAL_DECLARED)
    if not entries:
        return Classified("C", None, 0, Reason.NOT_IN_CATALOGUE)
    entry = pick(entries, on)
    if entry is None:
        return Classified("C", None, 0, Reason.OUTSIDE_VALIDITY)
    if entry.gender is not None and gender != entry.gender:
        return Classified("C", None, 0, Reason.GENDER_RESTRICTED)
    if entry.min_age is not None or entry.max_age is not None:
        age = age_on(birth_date, on) if birth_date is not None else None
        low, high = entry.min_age, entry.max_age
        if age is None or (low is not None and age < low) or (high is not None and age > high):
            return Classified("C", None, 0, Reason.AGE_RESTRICTED)
    if entry.med_types is not None and med_type not in entry.med_types:
        return Classified("C", None, 0, Reason.MED_TYPE_RESTRICTED)
    over, cap = 0, None
    if entry.price_cap is not None and unit_price > entry.price_cap:
        over, cap = over_limit(quantity, unit_price, entry.price_cap), entry.price_cap
    ratio = entry.first_self_pay_ratio if entry.item_class == "B" else None
    return Classified(entry.item_class, ratio, over, Reason.CATALOGUE, cap)


def over_limit(quantity: Decimal, unit_price: int, price_cap: int | None) -> int:
    """Fen of a line above ``quantity × price_cap`` (0 without a cap or within it)."""
    if price_cap is None or unit_price <= price_cap:
        return 0
    return fen(quantity, unit_price) - fen(quantity, price_cap)
