"""ID numbers: every kind valid and invalid, normalisation, 15→18, derivation, masking."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecert.errors import InvalidIdNumber
from ecert.identity import (
    IdKind,
    age_on,
    check_char,
    make_id_number,
    mask_id_number,
    mask_name,
    parse_id_number,
)

TODAY = dt.date(2026, 11, 22)
STANDARD_EXAMPLE = "11010519491231002X"  # the example printed in GB 11643-1999


def parse(raw: str) -> object:
    return parse_id_number(raw, today=TODAY)


def test_standard_example() -> None:
    number = parse_id_number(STANDARD_EXAMPLE, today=TODAY)
    assert number.kind is IdKind.CITIZEN
    assert number.birth_date == dt.date(1949, 12, 31)
    assert number.sex == "F"
    assert number.region == "110105"


@pytest.mark.parametrize(
    ("region", "kind"),
    [
        ("370102", IdKind.CITIZEN),
        ("810000", IdKind.HK_MACAU_TAIWAN_PERMIT),
        ("820000", IdKind.HK_MACAU_TAIWAN_PERMIT),
        ("830000", IdKind.HK_MACAU_TAIWAN_PERMIT),
        ("931234", IdKind.FOREIGN_PERMANENT),
    ],
)
def test_kinds_sharing_the_18_character_structure(region: str, kind: IdKind) -> None:
    value = make_id_number(region, dt.date(1990, 2, 28), 123)
    number = parse_id_number(value, today=TODAY)
    assert number.kind is kind
    assert number.sex == "M"  # 123 is odd
    assert number.value == value


def test_legacy_foreigner_id_is_its_own_kind() -> None:
    number = parse_id_number("USA370102123456", today=TODAY)
    assert number.kind is IdKind.FOREIGN_PERMANENT_LEGACY
    assert number.birth_date is None
    assert number.sex is None


def test_15_digit_legacy_numbers_convert_to_18() -> None:
    number = parse_id_number("110105491231002", today=TODAY)
    assert number.value == STANDARD_EXAMPLE
    assert number.converted_from_15


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("110105194912310021", "check character"),
        ("110105194902300028", "calendar date"),  # 30 February
        ("110105194913010025", "calendar date"),  # month 13
        (make_id_number("110105", dt.date(2027, 1, 1), 2), "future"),
        (make_id_number("110105", dt.date(1899, 12, 31), 2), "1900"),
        (make_id_number("001234", dt.date(1990, 1, 1), 2), "region"),
        ("800000199001010028", "region"),
        (make_id_number("810001", dt.date(1990, 1, 1), 2), "810000"),
        (make_id_number("110000", dt.date(1990, 1, 1), 2), "region"),
        ("1101051949123100", "18 characters"),
        ("11010519491231002Y", "17 digits"),
        ("1101051949 231002X", "17 digits"),
        ("11010519491231002X1", "18 characters"),
        ("", "18 characters"),
        ("US370102123456", "18 characters"),
    ],
)
def test_invalid_numbers_are_refused_without_echo(raw: str, reason: str) -> None:
    with pytest.raises(InvalidIdNumber) as caught:
        parse_id_number(raw, today=TODAY)
    assert reason in caught.value.detail
    assert caught.value.code == "invalid_id_number"
    if raw:
        assert raw not in str(caught.value)
        assert raw[:14] not in caught.value.detail


def test_normalisation_full_width_lower_x_and_surrounding_space() -> None:
    full_width = "１１０１０５１９４９１２３１００２ｘ"
    assert parse_id_number(full_width, today=TODAY).value == STANDARD_EXAMPLE
    assert parse_id_number(" 11010519491231002x\n", today=TODAY).value == STANDARD_EXAMPLE


def test_masking() -> None:
    assert mask_id_number(STANDARD_EXAMPLE) == "110***********002X"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("John Smith") == "J*** S****"


def test_age() -> None:
    assert age_on(dt.date(1990, 11, 23), TODAY) == 35
    assert age_on(dt.date(1990, 11, 22), TODAY) == 36


@given(
    region=st.sampled_from(["110105", "370102", "440305", "650102", "810000", "931234"]),
    birth=st.dates(dt.date(1900, 1, 1), TODAY),
    seq=st.integers(0, 999),
)
def test_generated_numbers_round_trip(region: str, birth: dt.date, seq: int) -> None:
    value = make_id_number(region, birth, seq)
    number = parse_id_number(value, today=TODAY)
    assert (number.birth_date, number.region) == (birth, region)
    assert number.sex == ("M" if seq % 2 else "F")


@given(
    birth=st.dates(dt.date(1900, 1, 1), TODAY),
    seq=st.integers(0, 999),
    position=st.integers(0, 16),
    delta=st.integers(1, 9),
)
def test_every_single_digit_error_is_detected(
    birth: dt.date, seq: int, position: int, delta: int
) -> None:
    value = make_id_number("370102", birth, seq)
    digit = (int(value[position]) + delta) % 10
    changed = value[:position] + str(digit) + value[position + 1 :]
    assert check_char(changed[:17]) != changed[17]
