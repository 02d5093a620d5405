"""Yuan on the national face, fen inside: exact, two places at most, never through a float."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ecert.gateway.envelope import clean, parse
from ecert.gateway.exceptions import AmountInvalid, EnvelopeMalformed
from ecert.gateway.money import to_fen, to_yuan


@pytest.mark.parametrize(
    ("sent", "fen"),
    [
        ("12.50", 1_250),
        (12.5, 1_250),
        (12, 1_200),
        ("0.01", 1),
        (0.3, 30),  # the float's shortest text is "0.3"; 0.1 + 0.2 is refused below
        ("12.500000", 1_250),
        (" 7.00 ", 700),
        ("1e2", 10_000),
    ],
)
def test_yuan_read_exactly(sent: object, fen: int) -> None:
    assert to_fen("x", sent) == fen


@pytest.mark.parametrize(
    "sent", ["12.505", 0.1 + 0.2, "-1", "NaN", "Infinity", "", "abc", True, None, [1], "1e11"]
)
def test_what_is_not_fen_is_refused(sent: object) -> None:
    with pytest.raises(AmountInvalid):
        to_fen("x", sent)


def test_negative_only_where_allowed_and_yuan_written_with_two_places() -> None:
    assert to_fen("net", "-3.20", allow_negative=True) == -320
    assert str(to_yuan(1_250)) == "12.50"
    assert to_yuan(-1) == Decimal("-0.01")


def test_placeholders_read_as_absent() -> None:
    assert clean({"a": "null", "b": "", "c": [{"d": "NULL"}], "e": "x"}) == {
        "a": None,
        "b": None,
        "c": [{"d": None}],
        "e": "x",
    }
    parsed = parse(b'{"infno": "9001", "msgid": "m1", "sign_no": "", "cainfo": "null", "x": 1}')
    assert (parsed.infno, parsed.sign_no, parsed.cainfo, parsed.input) == ("9001", None, None, None)
    with pytest.raises(EnvelopeMalformed):
        parse(b'{"infno": "91", "msgid": "m1"}')
    with pytest.raises(EnvelopeMalformed):
        parse(b'{"infno": "9001", "msgid": "null"}')
