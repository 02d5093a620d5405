"""The payer's catalogue decides a fee line's class (spec §7), not the hospital.

:func:`classify` is pure: catalogue entry (or none) + person + med_type + date + the line →
class, first self-pay share, the amount above the price cap, and why. When a catalogue is
loaded it is authoritative: an unknown or restricted code is class C (fully self-paid). Without
one (the demo) the hospital's declared class stands.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import CatalogueEntry, utcnow
from ecert.db.upsert import upsert
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


def _entry(row: CatalogueEntry) -> Entry:
    return Entry(
        list_code=row.list_code,
        item_class=row.item_class,  # type: ignore[arg-type]  # the table's CHECK
        valid_from=row.valid_from,
        first_self_pay_ratio=row.first_self_pay_ratio,
        price_cap=row.price_cap,
        valid_to=row.valid_to,
        gender=row.gender,  # type: ignore[arg-type]
        min_age=row.min_age,
        max_age=row.max_age,
        med_types=frozenset(row.med_types.split(",")) if row.med_types else None,
    )


async def entries_for(session: AsyncSession, codes: Iterable[str]) -> dict[str, list[Entry]] | None:
    """Each code's entries ({} for a code not in the catalogue); None: no catalogue loaded."""
    wanted = sorted(set(codes))
    rows = (
        await session.scalars(select(CatalogueEntry).where(CatalogueEntry.list_code.in_(wanted)))
    ).all()
    if not rows and await session.scalar(select(CatalogueEntry.id).limit(1)) is None:
        return None
    found: dict[str, list[Entry]] = {code: [] for code in wanted}
    for row in rows:
        found[row.list_code].append(_entry(row))
    return found


async def upsert_entries(session: AsyncSession, rows: Iterable[dict[str, Any]]) -> None:
    """Store catalogue rows (import format), replacing the same code and start date."""
    now = utcnow()
    values = {
        (r["list_code"], r["valid_from"]): {
            "id": uuid.uuid4(),
            **r,
            "created_at": now,
            "updated_at": now,
        }
        for r in rows
    }
    columns = [c for c in next(iter(values.values()), {}) if c not in ("id", "created_at")]
    await upsert(
        session,
        CatalogueEntry.__table__,
        list(values.values()),
        keys=("list_code", "valid_from"),
        update=[c for c in columns if c not in ("list_code", "valid_from")],
    )
