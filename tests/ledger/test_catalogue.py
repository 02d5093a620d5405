"""The catalogue classifier (pure): the catalogue decides the class, restrictions make C."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from ecert.ledger import Classified, Entry, Reason, classify, fen

DAY = dt.date(2026, 6, 1)
B = Entry("XB1", "B", dt.date(2020, 1, 1), first_self_pay_ratio=0.2, price_cap=1_000)


def _classify(entries: list[Entry] | None, **line: Any) -> Classified:
    args: dict[str, Any] = {
        "gender": "F",
        "birth_date": dt.date(1990, 6, 2),  # 35 on DAY
        "med_type": "11",
        "on": DAY,
        "quantity": Decimal(2),
        "unit_price": 800,
        "declared_class": "A",
        "declared_ratio": None,
        **line,
    }
    return classify(entries, **args)


def test_catalogue_class_ratio_and_price_cap() -> None:
    assert _classify([B]) == Classified("B", 0.2, 0, Reason.CATALOGUE)
    # 2.5 × 1,234 = 3,085; the cap recognises 2.5 × 1,000 = 2,500: 585 over the limit.
    capped = _classify([B], quantity=Decimal("2.5"), unit_price=1_234)
    assert capped == Classified("B", 0.2, 585, Reason.CATALOGUE, price_cap=1_000)


def test_without_a_catalogue_the_hospital_declares() -> None:
    declared = _classify(None, declared_class="B", declared_ratio=0.15)
    assert declared == Classified("B", 0.15, 0, Reason.HOSPITAL_DECLARED)
    assert _classify(None, declared_class=None).item_class == "C"


@pytest.mark.parametrize(
    ("entries", "line", "reason"),
    [
        ([], {}, Reason.NOT_IN_CATALOGUE),
        (
            [Entry("X", "A", dt.date(2018, 1, 1), valid_to=dt.date(2022, 12, 31))],
            {},
            Reason.OUTSIDE_VALIDITY,
        ),
        ([Entry("X", "A", dt.date(2027, 1, 1))], {}, Reason.OUTSIDE_VALIDITY),
        ([Entry("X", "A", dt.date(2020, 1, 1), gender="M")], {}, Reason.GENDER_RESTRICTED),
        ([Entry("X", "A", dt.date(2020, 1, 1), max_age=6)], {}, Reason.AGE_RESTRICTED),
        ([Entry("X", "A", dt.date(2020, 1, 1), min_age=36)], {}, Reason.AGE_RESTRICTED),
        (
            [Entry("X", "A", dt.date(2020, 1, 1), min_age=0)],
            {"birth_date": None},
            Reason.AGE_RESTRICTED,
        ),
        (
            [Entry("X", "A", dt.date(2020, 1, 1), med_types=frozenset({"21"}))],
            {},
            Reason.MED_TYPE_RESTRICTED,
        ),
    ],
)
def test_a_loaded_catalogue_is_authoritative(
    entries: list[Entry], line: dict[str, Any], reason: Reason
) -> None:
    """Unknown, expired or restricted codes are fully self-paid whatever the hospital says."""
    assert _classify(entries, **line) == Classified("C", None, 0, reason)


def test_restrictions_that_fit_and_the_period_in_force() -> None:
    old = Entry("X", "C", dt.date(2018, 1, 1), valid_to=dt.date(2025, 12, 31))
    new = Entry(
        "X",
        "A",
        dt.date(2026, 1, 1),
        gender="F",
        min_age=35,
        max_age=35,
        med_types=frozenset({"11", "14"}),
    )
    assert _classify([old, new]) == Classified("A", None, 0, Reason.CATALOGUE)
    assert _classify([old, new], on=dt.date(2025, 12, 31)).item_class == "C"


def test_fen_rounds_half_up() -> None:
    assert fen(Decimal("0.0005"), 1_000) == 1  # 0.5 fen up
    assert fen(Decimal("0.0004"), 1_000) == 0
    assert fen(Decimal("1.5"), 3) == 5  # 4.5 up
