"""Chinese ID numbers (GB 11643-1999) and the other resident ID kinds ecert accepts.

Input normalisation (decided, documented in docs/identity.md): Unicode NFKC (full-width digits
and letters become ASCII), surrounding whitespace stripped, a lower-case ``x`` check character
upper-cased. Anything else — inner spaces, hyphens, other characters — is refused, never guessed.
Error messages never repeat the input.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from ecert.errors import InvalidIdNumber

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
#: Province-level prefixes of GB/T 2260 (mainland) used by citizen ID numbers.
_PROVINCES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37}
    | {41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71}
)
_PERMIT_REGIONS = {"810000": "hk", "820000": "macau", "830000": "taiwan"}
_EARLIEST = dt.date(1900, 1, 1)
_LEGACY_FOREIGN = re.compile(r"^[A-Z]{3}\d{12}$")


class IdKind(enum.StrEnum):
    """What kind of identity document the number belongs to."""

    CITIZEN = "citizen"
    HK_MACAU_TAIWAN_PERMIT = "hk_macau_taiwan_permit"
    FOREIGN_PERMANENT = "foreign_permanent"
    FOREIGN_PERMANENT_LEGACY = "foreign_permanent_legacy"


@dataclass(frozen=True)
class IdNumber:
    """A validated, normalised ID number and what it reveals."""

    value: str
    kind: IdKind
    birth_date: dt.date | None
    sex: Literal["M", "F"] | None
    region: str | None
    converted_from_15: bool = False


def check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits."""
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def _normalise(raw: str) -> str:
    text = unicodedata.normalize("NFKC", raw).strip()
    if text.endswith("x"):
        text = text[:-1] + "X"
    return text


def _date(text: str, today: dt.date) -> dt.date:
    try:
        born = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        raise InvalidIdNumber("birth date is not a real calendar date") from None
    if born > today:
        raise InvalidIdNumber("birth date is in the future")
    if born < _EARLIEST:
        raise InvalidIdNumber("birth date is before 1900")
    return born


def parse_id_number(raw: str, *, today: dt.date | None = None) -> IdNumber:
    """Validate and normalise; raises :class:`InvalidIdNumber` with a reason, never the input."""
    today = today or dt.date.today()
    text = _normalise(raw)
    if _LEGACY_FOREIGN.match(text):
        # Old foreigner permanent residence ID: country code + 12 digits; no public checksum.
        return IdNumber(text, IdKind.FOREIGN_PERMANENT_LEGACY, None, None, None)
    converted = False
    if len(text) == 15 and text.isascii() and text.isdigit():
        first17 = text[:6] + "19" + text[6:]
        text = first17 + check_char(first17)
        converted = True
    if len(text) != 18:
        raise InvalidIdNumber("an ID number has 18 characters (or 15 for legacy numbers)")
    if not (text[:17].isascii() and text[:17].isdigit()) or text[17] not in "0123456789X":
        raise InvalidIdNumber("an ID number is 17 digits and a check digit or X")
    region = text[:6]
    if region in _PERMIT_REGIONS:
        kind = IdKind.HK_MACAU_TAIWAN_PERMIT
    elif region[0] == "9":
        kind = IdKind.FOREIGN_PERMANENT
    elif (int(region[:2]) in _PROVINCES and region[2:] != "0000") or region in ("710000",):
        kind = IdKind.CITIZEN
    elif region[:2] in ("81", "82", "83"):
        raise InvalidIdNumber("residence permit numbers start with 810000, 820000 or 830000")
    else:
        raise InvalidIdNumber("region code is not valid")
    born = _date(text[6:14], today)
    if check_char(text[:17]) != text[17]:
        raise InvalidIdNumber("check character does not match")
    sex: Literal["M", "F"] = "M" if int(text[16]) % 2 else "F"
    return IdNumber(text, kind, born, sex, region, converted)


def make_id_number(region: str, birth: dt.date, seq: int) -> str:
    """A valid 18-character number (for demo data and tests; never a real person's)."""
    first17 = f"{region}{birth:%Y%m%d}{seq % 1000:03d}"
    return first17 + check_char(first17)


def mask_id_number(value: str) -> str:
    """Keep the first 3 and last 4 characters: ``110***********002X``."""
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_name(name: str) -> str:
    """Chinese names keep the family name (张* / 欧***); Latin names keep initials."""
    name = name.strip()
    if not name:
        return ""
    if name.isascii():
        return " ".join(word[0] + "*" * (len(word) - 1) for word in name.split())
    return name[0] + "*" * max(len(name) - 1, 1)


def age_on(birth: dt.date, on: dt.date) -> int:
    """Whole years between ``birth`` and ``on``."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
