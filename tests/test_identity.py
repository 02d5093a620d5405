"""ID numbers: every kind valid and invalid, normalisation, 15→18, derivation, masking, no echo.

All numbers are generated with the algorithm (or are the example printed in the standard).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ecert.clock import business_date
from ecert.errors import InvalidIdNumber, ValidationFailed
from ecert.identity import (
    IdKind,
    IdNumber,
    age_on,
    check_char,
    make_id_number,
    mask_id_number,
    mask_name,
    names_match,
    normalise_name,
    parse_id_number,
)

TODAY = dt.date(2026, 11, 22)
STANDARD_EXAMPLE = "11010519491231002X"  # the example printed in GB 11643-1999
BIRTH = dt.date(1990, 2, 28)
PROVINCES = [
    *("11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37"),
    *("41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64"),
    *("65", "71"),
]
# Every reason the parser may give. A reason built from the input would not be in this set.
REASONS = {
    "wrong length: an ID number has 18 characters (15 for legacy numbers)",
    "a 15-character number is 15 digits, or 3 upper-case letters and 12 digits",
    "an 18-character number is 17 digits and a check digit or X",
    "region code is not valid",
    "region code is not valid: residence permits use 810000, 820000 or 830000",
    "region code is not valid: 15-digit numbers are mainland citizen numbers",
    "birth date is not a real calendar date",
    "birth date is in the future",
    "birth date is before 1900",
    "check character does not match",
}


def parse(raw: str) -> IdNumber:
    return parse_id_number(raw, today=TODAY)


def with_check(first17: str) -> str:
    """A number whose check character is right, so only the other defect is tested."""
    return first17 + check_char(first17)


def reference_check(first17: str) -> str:
    """MOD 11-2 from its definition (weights 2^(i-1) mod 11), independent of the module's table."""
    total = sum(int(c) * pow(2, 17 - i, 11) for i, c in enumerate(first17))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def refused(raw: str) -> InvalidIdNumber:
    with pytest.raises(InvalidIdNumber) as caught:
        parse(raw)
    return caught.value


# --- the algorithm -------------------------------------------------------------------------


def test_standard_example() -> None:
    assert check_char(STANDARD_EXAMPLE[:17]) == "X"
    number = parse(STANDARD_EXAMPLE)
    assert number == IdNumber(
        STANDARD_EXAMPLE, IdKind.CITIZEN, dt.date(1949, 12, 31), "F", "110105", False
    )


@given(st.text("0123456789", min_size=17, max_size=17))
def test_check_char_matches_the_definition(first17: str) -> None:
    assert check_char(first17) == reference_check(first17)


@pytest.mark.parametrize("bad", ["", "1101051949123100", "110105194912310021", "1101051949123100a"])
def test_check_char_needs_17_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="17 ASCII digits"):
        check_char(bad)


# --- every kind, valid ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "kind"),
    [
        ("370102", IdKind.CITIZEN),
        ("469001", IdKind.CITIZEN),
        ("710000", IdKind.CITIZEN),  # Taiwan's conventional code on citizen numbers
        ("810000", IdKind.HK_MACAU_TAIWAN_PERMIT),
        ("820000", IdKind.HK_MACAU_TAIWAN_PERMIT),
        ("830000", IdKind.HK_MACAU_TAIWAN_PERMIT),
        ("931156", IdKind.FOREIGN_PERMANENT),  # 9, issuing province 31, nationality 156
        ("911840", IdKind.FOREIGN_PERMANENT),
    ],
)
def test_18_character_kinds(region: str, kind: IdKind) -> None:
    value = make_id_number(region, BIRTH, 123)
    number = parse(value)
    assert number.kind is kind
    assert number.value == value
    assert number.region == region
    assert number.birth_date == BIRTH
    assert number.sex == "M"  # 123: odd
    assert not number.converted_from_15


@pytest.mark.parametrize("province", PROVINCES)
def test_every_province_prefix_is_a_citizen(province: str) -> None:
    assert parse(make_id_number(province + "0102", BIRTH, 2)).kind is IdKind.CITIZEN


@pytest.mark.parametrize(
    "raw", ["USA370102123456", "GBR000000000000", "ＣＡＮ１２３４５６７８９０１２"]
)
def test_legacy_foreigner_id_is_checked_by_shape_only(raw: str) -> None:
    number = parse(raw)
    assert number.kind is IdKind.FOREIGN_PERMANENT_LEGACY
    assert len(number.value) == 15
    assert number.value.isascii()
    assert (number.birth_date, number.sex, number.region) == (None, None, None)
    assert not number.converted_from_15


@pytest.mark.parametrize(
    ("seq", "sex"), [(0, "F"), (1, "M"), (2, "F"), (9, "M"), (10, "F"), (998, "F"), (999, "M")]
)
def test_sex_from_the_17th_character(seq: int, sex: str) -> None:
    assert parse(make_id_number("110105", BIRTH, seq)).sex == sex


@pytest.mark.parametrize(
    "birth", [dt.date(1900, 1, 1), dt.date(2000, 2, 29), dt.date(1949, 12, 31), TODAY]
)
def test_birth_date_from_characters_7_to_14(birth: dt.date) -> None:
    assert parse(make_id_number("440305", birth, 7)).birth_date == birth


# --- 15 → 18 --------------------------------------------------------------------------------


def test_15_digit_number_converts_to_the_standard_example() -> None:
    number = parse("110105491231002")
    assert number.value == STANDARD_EXAMPLE
    assert number.converted_from_15
    assert (number.kind, number.birth_date, number.sex) == (
        IdKind.CITIZEN,
        dt.date(1949, 12, 31),
        "F",
    )


@pytest.mark.parametrize("legacy", ["370102850101123", "440305960229014", "650102991231999"])
def test_15_digit_conversion_inserts_19_and_computes_the_check(legacy: str) -> None:
    first17 = legacy[:6] + "19" + legacy[6:]
    number = parse(legacy)
    assert number.value == first17 + reference_check(first17)
    assert number.converted_from_15
    assert number.sex == ("M" if int(legacy[-1]) % 2 else "F")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("110105490230002", "calendar date"),  # 30 February 1949
        ("440305000229014", "calendar date"),  # 1900 was not a leap year
        ("110105491301002", "calendar date"),  # month 13
        ("001234491231002", "region code"),
        ("810000491231002", "15-digit numbers are mainland citizen numbers"),
        ("931156491231002", "15-digit numbers are mainland citizen numbers"),
        ("11010549123100X", "15 digits, or 3 upper-case letters"),
    ],
)
def test_15_digit_numbers_refused(raw: str, reason: str) -> None:
    assert reason in refused(raw).detail


# --- normalisation (decided: NFKC, strip, lower-case x; nothing else) -----------------------


@pytest.mark.parametrize(
    "raw",
    [
        STANDARD_EXAMPLE,
        "11010519491231002x",  # lower-case check character
        "１１０１０５１９４９１２３１００２Ｘ",  # full-width digits and X
        "１１０１０５１９４９１２３１００２ｘ",  # full-width lower-case x
        f"  {STANDARD_EXAMPLE}\n",
        f"\t{STANDARD_EXAMPLE}\u3000",  # ideographic space around it
        "１１０１０５４９１２３１００２",  # full-width legacy 15-digit
    ],
)
def test_accepted_spellings_normalise_to_one_value(raw: str) -> None:
    assert parse(raw).value == STANDARD_EXAMPLE


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("110105 19491231002X", "wrong length"),  # inner space
        ("110105-19491231002X", "wrong length"),  # inner hyphen
        ("1101051949 231002X", "17 digits and a check digit or X"),  # space in place of a digit
        ("110105194912-1002X", "17 digits and a check digit or X"),
        ("1101051949123x002X", "17 digits and a check digit or X"),  # x only as check character
        ("11010519491231002Y", "17 digits and a check digit or X"),
        ("١١٠١٠٥١٩٤٩١٢٣١٠٠٢X", "17 digits and a check digit or X"),  # Arabic-Indic digits
        ("", "wrong length"),
        ("   ", "wrong length"),
        ("1101051949123100", "wrong length"),  # 16
        ("11010519491231002X1", "wrong length"),  # 19
        ("1" * 10_000, "wrong length"),
    ],
)
def test_malformed_input_is_refused_not_repaired(raw: str, reason: str) -> None:
    assert reason in refused(raw).detail


@pytest.mark.parametrize(
    "raw",
    [
        "usa370102123456",  # lower-case country code: refused, not upper-cased
        "US3701021234567",
        "USAB70102123456",
        "370102123456USA",
        "USA37010212345",  # 14
        "USA3701021234567",  # 16
        "USA 370102123456",
        "USA٣٧٠١٠٢١٢٣٤٥٦",  # Arabic-Indic digits
    ],
)
def test_legacy_foreigner_id_wrong_shapes(raw: str) -> None:
    assert refused(raw).detail in REASONS


# --- invalid 18-character numbers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (STANDARD_EXAMPLE[:17] + "1", "check character does not match"),
        ("11010519491231102X", "check character does not match"),  # one digit changed
        ("11010519491231020X", "check character does not match"),  # adjacent digits swapped
        (with_check("11010519490230002"), "not a real calendar date"),  # 30 February
        (with_check("11010519490229002"), "not a real calendar date"),  # 1949 is not leap
        (with_check("11010519491301002"), "not a real calendar date"),  # month 13
        (with_check("11010519490001002"), "not a real calendar date"),  # month 0
        (with_check("11010519490100002"), "not a real calendar date"),  # day 0
        (with_check("11010500000101002"), "not a real calendar date"),  # year 0
        (make_id_number("110105", TODAY + dt.timedelta(days=1), 2), "in the future"),
        (make_id_number("110105", dt.date(2099, 1, 1), 2), "in the future"),
        (make_id_number("110105", dt.date(1899, 12, 31), 2), "before 1900"),
        (make_id_number("001234", BIRTH, 2), "region code is not valid"),
        (make_id_number("000000", BIRTH, 2), "region code is not valid"),
        (make_id_number("100101", BIRTH, 2), "region code is not valid"),
        (make_id_number("720101", BIRTH, 2), "region code is not valid"),
        (make_id_number("110000", BIRTH, 2), "region code is not valid"),  # bare province
        (make_id_number("810001", BIRTH, 2), "residence permits use 810000"),
        (make_id_number("820100", BIRTH, 2), "residence permits use 810000"),
        (make_id_number("831234", BIRTH, 2), "residence permits use 810000"),
        (make_id_number("810000", TODAY + dt.timedelta(days=1), 2), "in the future"),
        (make_id_number("931156", dt.date(1899, 1, 1), 2), "before 1900"),
        (make_id_number("830000", BIRTH, 2)[:17] + "X", "check character"),
    ],
)
def test_invalid_numbers_are_refused_without_echo(raw: str, reason: str) -> None:
    error = refused(raw)
    assert reason in error.detail
    assert error.detail in REASONS
    assert error.code == "invalid_id_number"
    assert error.status == 422
    for shown in (str(error), error.detail, repr(error), repr(error.extra)):
        assert raw not in shown
        assert raw[6:14] not in shown  # not even the birth date part


def test_born_today_is_accepted_and_tomorrow_is_not() -> None:
    assert parse(make_id_number("110105", TODAY, 1)).birth_date == TODAY
    refused(make_id_number("110105", TODAY + dt.timedelta(days=1), 1))


def test_today_defaults_to_the_business_date() -> None:
    soon = business_date() + dt.timedelta(days=2)
    with pytest.raises(InvalidIdNumber, match="in the future"):
        parse_id_number(make_id_number("110105", soon, 1))
    assert parse_id_number(STANDARD_EXAMPLE).kind is IdKind.CITIZEN


@given(st.text(max_size=40))
@example("１１０１０５１９４９１２３１００２Ｙ")
@example("\ud800")
def test_any_refusal_is_one_of_the_fixed_reasons(raw: str) -> None:
    error: InvalidIdNumber | None = None
    try:
        parse(raw)
    except InvalidIdNumber as caught:
        error = caught
    if error is not None:
        assert error.detail in REASONS
        assert error.extra == {}


# --- the parsed value ------------------------------------------------------------------------


def test_id_number_is_frozen_and_its_repr_is_masked() -> None:
    number = parse(STANDARD_EXAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        number.value = "x"  # type: ignore[misc]
    assert STANDARD_EXAMPLE not in repr(number)
    assert "1949" not in repr(number)
    assert repr(number) == "IdNumber(kind=citizen, value='110***********002X')"


# --- generation -----------------------------------------------------------------------------


@pytest.mark.parametrize(("region", "seq"), [("11010", 1), ("11010a", 1), ("1101055", 1)])
def test_make_id_number_needs_a_6_digit_region(region: str, seq: int) -> None:
    with pytest.raises(ValueError, match="6 ASCII digits"):
        make_id_number(region, BIRTH, seq)


@pytest.mark.parametrize("seq", [-1, 1000, 10_000])
def test_make_id_number_needs_seq_0_to_999(seq: int) -> None:
    with pytest.raises(ValueError, match=r"0\.\.999"):
        make_id_number("110105", BIRTH, seq)


def test_make_id_number_reproduces_the_standard_example() -> None:
    assert make_id_number("110105", dt.date(1949, 12, 31), 2) == STANDARD_EXAMPLE


# --- masking ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        (STANDARD_EXAMPLE, "110***********002X"),
        ("USA370102123456", "USA********3456"),
        ("1234567", "*******"),
        ("", ""),
    ],
)
def test_mask_id_number(value: str, masked: str) -> None:
    assert mask_id_number(value) == masked
    assert len(mask_id_number(value)) == len(value)


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三", "张*"),
        ("欧阳娜娜", "欧***"),
        ("李小明", "李**"),
        ("张", "张*"),  # never shown whole
        (" 张 三 ", "张*"),
        ("买买提·艾力", "买*****"),
        ("John Smith", "J*** S****"),
        ("  John   Smith ", "J*** S****"),
        ("José García", "J*** G*****"),
        ("Ng", "N*"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_mask_name(name: str, masked: str) -> None:
    assert mask_name(name) == masked


# --- age ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [
        (dt.date(1990, 11, 23), TODAY, 35),
        (dt.date(1990, 11, 22), TODAY, 36),
        (dt.date(2000, 2, 29), dt.date(2001, 2, 28), 0),
        (dt.date(2000, 2, 29), dt.date(2001, 3, 1), 1),
        (TODAY, TODAY, 0),
    ],
)
def test_age_on(birth: dt.date, on: dt.date, age: int) -> None:
    assert age_on(birth, on) == age


# --- properties -----------------------------------------------------------------------------

citizen_regions = st.builds(
    lambda province, rest: province + f"{rest:04d}",
    st.sampled_from(PROVINCES),
    st.integers(1, 9999),
)
foreign_regions = st.builds(
    lambda province, nationality: f"9{province}{nationality:03d}",
    st.sampled_from(PROVINCES),
    st.integers(0, 999),
)
regions = st.one_of(
    citizen_regions, foreign_regions, st.sampled_from(["810000", "820000", "830000"])
)
births = st.dates(dt.date(1900, 1, 1), TODAY)
seqs = st.integers(0, 999)


@given(region=regions, birth=births, seq=seqs)
def test_generated_numbers_round_trip(region: str, birth: dt.date, seq: int) -> None:
    value = make_id_number(region, birth, seq)
    number = parse(value)
    assert (number.value, number.birth_date, number.region) == (value, birth, region)
    assert number.sex == ("M" if seq % 2 else "F")
    assert parse(value.lower()) == number  # only a trailing X has a lower case


@given(
    region=regions,
    birth=births,
    seq=seqs,
    position=st.integers(0, 17),
    replacement=st.sampled_from("0123456789X"),
)
def test_every_single_character_change_is_refused(
    region: str, birth: dt.date, seq: int, position: int, replacement: str
) -> None:
    value = make_id_number(region, birth, seq)
    if position < 17 and replacement == "X":
        replacement = "0"
    if replacement == value[position]:
        replacement = "1" if value[position] == "0" else "0"
    changed = value[:position] + replacement + value[position + 1 :]
    if position < 17:
        # MOD 11-2 alone detects every single-digit error, whatever else the parser checks.
        assert check_char(changed[:17]) != value[17]
    with pytest.raises(InvalidIdNumber):
        parse(changed)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("秦 华", "秦华"),
        (" 秦\u3000华 ", "秦华"),  # ideographic space, surrounding blanks
        ("欧阳 修", "欧阳修"),
        ("阿卜杜拉 · 买买提", "阿卜杜拉·买买提"),
        ("阿卜杜拉・买买提", "阿卜杜拉·买买提"),  # katakana middle dot
        ("买买提.艾力", "买买提·艾力"),  # a full stop typed for the dot
        ("ＪＯＨＮ   Smith", "JOHN Smith"),  # full-width letters, repeated spaces
        ("John Smith Jr.", "John Smith Jr."),
    ],
)
def test_finding_15_one_name_normaliser(raw: str, normalised: str) -> None:
    assert normalise_name(raw) == normalised
    assert names_match(raw, normalised)


@pytest.mark.parametrize("raw", ["", "   ", "\u3000", " · "])
def test_finding_15_a_name_without_letters_is_refused(raw: str) -> None:
    with pytest.raises(ValidationFailed):
        normalise_name(raw)
    assert not names_match(raw, raw)
