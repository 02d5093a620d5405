"""Money on the national face: decimal yuan with two places outside, integer fen inside.

HIS clients send amounts as strings (``"12.50"``) or JSON numbers (``12.5``); both are read with
``decimal`` from their text, never through a float's arithmetic. A value that is not a whole
number of fen (``"12.505"``) is refused; trailing zeros (``"12.500000"``, as some vendors pad
``pric``) are the same amount and accepted.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ecert.gateway.exceptions import AmountInvalid

_FEN = Decimal("0.01")
#: The largest amount a bill item may carry (fen), as the native API bounds it.
MAX_FEN = 10**10


def to_fen(field: str, value: object, *, allow_negative: bool = False) -> int:
    """Yuan (string or number) → fen; :class:`AmountInvalid` names the field, never the value."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise AmountInvalid(f"{field} must be a decimal amount of yuan")
    try:
        # str() of a float is its shortest round-trip text: 12.5 reads as Decimal("12.5").
        amount = Decimal(value.strip() if isinstance(value, str) else str(value))
    except InvalidOperation as exc:
        raise AmountInvalid(f"{field} must be a decimal amount of yuan") from exc
    if not amount.is_finite():
        raise AmountInvalid(f"{field} must be a finite amount")
    fen = amount * 100
    if fen != fen.to_integral_value():
        raise AmountInvalid(f"{field} has more than two decimal places")
    if (fen < 0 and not allow_negative) or abs(fen) > MAX_FEN:
        raise AmountInvalid(f"{field} is out of range")
    return int(fen)


def to_yuan(fen: int) -> Decimal:
    """Fen → yuan with exactly two places (encoded as a JSON number: ``12.50``)."""
    return (Decimal(fen) / 100).quantize(_FEN)
