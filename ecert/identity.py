"""ID numbers ecert accepts (GB 11643-1999 and look-alikes): parsing, masking, test generation.

Kinds: mainland citizen (18 characters; a legacy 15-digit number is converted by inserting
``19`` and computing the check), Hong Kong/Macau/Taiwan residence permit (one kind, prefix exactly
810000/820000/830000), the foreigner permanent residence ID issued since 2023-12-01 (first digit
9, then the issuing province) and the older foreigner ID, checked by shape only (3 upper-case
letters + 12 digits, no public checksum, so no birth date or sex derived). Normalisation,
decided: Unicode NFKC (full-width digits and letters become ASCII), surrounding whitespace
stripped, a lower-case ``x`` check character upper-cased; anything else (inner spaces, hyphens,
other letters) is refused, never repaired, since a repaired number could match someone else.
Error reasons are fixed sentences that never repeat the input.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import unicodedata
from dataclasses import dataclass
from operator import mul
from typing import Literal

from ecert.clock import business_date
from ecert.errors import InvalidIdNumber, ValidationFailed

__all__ = [
    "IdKind",
    "IdNumber",
    "age_on",
    "check_char",
    "make_id_number",
    "mask_id_number",
    "mask_name",
    "names_match",
    "normalise_name",
    "parse_id_number",
]

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
#: Province-level prefixes of GB/T 2260 that citizen numbers (and, as the issuing province,
#: the new foreigner ID) may carry; 81/82/83 appear only as exact residence-permit prefixes.
_PROVINCES = frozenset(
    {"11", "12", "13", "14", "15", "21", "22", "23"}
    | {"31", "32", "33", "34", "35", "36", "37"}
    | {"41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54"}
    | {"61", "62", "63", "64", "65", "71"}
)
_PERMIT_PREFIXES = frozenset({"810000", "820000", "830000"})
_EARLIEST = dt.date(1900, 1, 1)
# [0-9], not \d: \d would also take Arabic-Indic and other digits that NFKC leaves alone.
_DIGITS = re.compile(r"[0-9]+")
_LEGACY_FOREIGN = re.compile(r"[A-Z]{3}[0-9]{12}")
# Refuse oversized input before normalising it: nothing valid is longer.
_MAX_RAW = 64

_WRONG_LENGTH = "wrong length: an ID number has 18 characters (15 for legacy numbers)"
_BAD_15 = "a 15-character number is 15 digits, or 3 upper-case letters and 12 digits"
_BAD_CHARS = "an 18-character number is 17 digits and a check digit or X"
_BAD_REGION = "region code is not valid"
_BAD_PERMIT = "region code is not valid: residence permits use 810000, 820000 or 830000"
_BAD_15_REGION = "region code is not valid: 15-digit numbers are mainland citizen numbers"
_BAD_DATE = "birth date is not a real calendar date"
_FUTURE_DATE = "birth date is in the future"
_EARLY_DATE = "birth date is before 1900"
_BAD_CHECK = "check character does not match"


class IdKind(enum.StrEnum):
    """What kind of identity document the number belongs to (values are stored as ``id_kind``)."""

    CITIZEN = "citizen"
    HK_MACAU_TAIWAN_PERMIT = "hk_macau_taiwan_permit"
    FOREIGN_PERMANENT = "foreign_permanent"
    FOREIGN_PERMANENT_LEGACY = "foreign_permanent_legacy"


@dataclass(frozen=True, slots=True, repr=False)
class IdNumber:
    """A validated, normalised ID number and what it reveals.

    ``region`` is the 6-digit prefix of the 18-character kinds: an address code for citizens,
    810000/820000/830000 for permits, and ``9`` + issuing province + nationality code for the
    new foreigner ID; ``None`` for the legacy foreigner ID, as are ``birth_date`` and ``sex``.
    """

    value: str
    kind: IdKind
    birth_date: dt.date | None
    sex: Literal["M", "F"] | None
    region: str | None
    converted_from_15: bool = False

    def __repr__(self) -> str:
        # Tracebacks and debug logs print reprs; the full number must not end up there.
        return f"IdNumber(kind={self.kind.value}, value={mask_id_number(self.value)!r})"


def check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits."""
    if len(first17) != 17 or not _DIGITS.fullmatch(first17):
        raise ValueError("check_char needs exactly 17 ASCII digits")
    # map() rather than a generator: imports check every row (~1 µs less a call).
    return _CHECK[sum(map(mul, map(int, first17), _WEIGHTS)) % 11]


def _normalise(raw: str) -> str:
    text = unicodedata.normalize("NFKC", raw).strip()
    if len(text) == 18 and text.endswith("x"):
        text = text[:17] + "X"
    return text


def _birth_date(yyyymmdd: str, today: dt.date) -> dt.date:
    try:
        born = dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        raise InvalidIdNumber(_BAD_DATE) from None
    if born > today:
        raise InvalidIdNumber(_FUTURE_DATE)
    if born < _EARLIEST:
        raise InvalidIdNumber(_EARLY_DATE)
    return born


def _kind_of(prefix: str) -> IdKind:
    if prefix in _PERMIT_PREFIXES:
        return IdKind.HK_MACAU_TAIWAN_PERMIT
    if prefix[0] == "9":
        # Only "first digit 9 + MOD 11-2" is confirmed for the 2023 foreigner ID; a guessed
        # layout of the following digits could refuse real people, so none is checked.
        return IdKind.FOREIGN_PERMANENT
    if prefix[:2] in {"81", "82", "83"}:
        raise InvalidIdNumber(_BAD_PERMIT)
    # A county-level address code never ends in 0000, except Taiwan's conventional 710000.
    if prefix[:2] in _PROVINCES and (prefix[2:] != "0000" or prefix == "710000"):
        return IdKind.CITIZEN
    raise InvalidIdNumber(_BAD_REGION)


def parse_id_number(raw: str, *, today: dt.date | None = None) -> IdNumber:
    """Validate and normalise ``raw``; raise :class:`InvalidIdNumber` with a reason, not the input.

    ``today`` defaults to the Asia/Shanghai business date, so a baby born today in China is not
    "born in the future" on a server whose clock is still on yesterday's UTC date.
    """
    if len(raw) > _MAX_RAW:
        raise InvalidIdNumber(_WRONG_LENGTH)
    if today is None:
        today = business_date()
    text = _normalise(raw)
    converted = False
    if len(text) == 15:
        if _LEGACY_FOREIGN.fullmatch(text):
            return IdNumber(text, IdKind.FOREIGN_PERMANENT_LEGACY, None, None, None)
        if not _DIGITS.fullmatch(text):
            raise InvalidIdNumber(_BAD_15)
        if _kind_of(text[:6]) is not IdKind.CITIZEN:
            raise InvalidIdNumber(_BAD_15_REGION)
        first17 = text[:6] + "19" + text[6:]
        text = first17 + check_char(first17)
        converted = True
    if len(text) != 18:
        raise InvalidIdNumber(_WRONG_LENGTH)
    if not _DIGITS.fullmatch(text[:17]) or text[17] not in "0123456789X":
        raise InvalidIdNumber(_BAD_CHARS)
    kind = _kind_of(text[:6])
    born = _birth_date(text[6:14], today)
    if check_char(text[:17]) != text[17]:
        raise InvalidIdNumber(_BAD_CHECK)
    sex: Literal["M", "F"] = "M" if int(text[16]) % 2 else "F"
    return IdNumber(text, kind, born, sex, text[:6], converted)


def make_id_number(region: str, birth: dt.date, seq: int) -> str:
    """A valid 18-character number for demo data and tests (odd ``seq`` = male).

    ``region`` is the 6-digit prefix, ``seq`` 0..999; raises ``ValueError`` otherwise.
    """
    if len(region) != 6 or not _DIGITS.fullmatch(region):
        raise ValueError("region must be 6 ASCII digits")
    if not 0 <= seq <= 999:
        raise ValueError("seq must be in 0..999")
    first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
    return first17 + check_char(first17)


def mask_id_number(value: str) -> str:
    """Keep the first 3 and last 4 characters of a normalised number.

    ``110***********002X`` for 18 characters, ``USA********3456`` for the legacy foreigner ID;
    anything of 7 characters or fewer is masked entirely.
    """
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in {"W", "F"}


def mask_name(name: str) -> str:
    """Chinese names keep the family name (张* / 欧***); other names keep each word's initial."""
    words = name.split()
    if not words:
        return ""
    if any(_is_wide(c) for c in name):
        # Spaces inside a Chinese name carry nothing; the first character is the family name
        # (compound family names like 欧阳 keep only 欧, which is the safer side).
        chars = "".join(words)
        return chars[0] + "*" * max(len(chars) - 1, 1)
    return " ".join(word[0] + "*" * (len(word) - 1) for word in words)


#: Dots that separate the parts of a transliterated minority or foreign name (买买提·艾力):
#: katakana, bullet, hyphenation point and operator dots all become U+00B7 MIDDLE DOT.
_DOTS = str.maketrans(dict.fromkeys("\u30fb\u2022\u2027\u2219\u22c5", "\u00b7"))
_AROUND_DOT = re.compile(r"\s*\u00b7\s*")
#: A full stop typed between two CJK characters (U+2E80 on) stands for the middle dot (买买提.艾力).
_WIDE_STOP = re.compile(r"(?<=[^\x00-\u2e7f])\s*\.\s*(?=[^\x00-\u2e7f])")


def normalise_name(raw: str) -> str:
    """The one form in which a person's name is stored and compared (see docs/identity.md).

    NFKC (full-width letters and spaces become ASCII); every middle-dot look-alike becomes
    U+00B7 with no space around it; a name with any wide (CJK) character loses all whitespace,
    which carries nothing there; other names keep single spaces between words. Letter case is
    kept: the registered spelling is the document's.
    """
    text = unicodedata.normalize("NFKC", raw).translate(_DOTS)
    text = _AROUND_DOT.sub("\u00b7", text)
    if any(_is_wide(c) for c in text):
        text = _WIDE_STOP.sub("\u00b7", "".join(text.split()))
    else:
        text = " ".join(text.split())
    if not text.strip("\u00b7"):
        raise ValidationFailed("a name needs at least one letter")
    return text


def names_match(registered: str, asserted: str) -> bool:
    """Whether two names are the same once normalised (rows stored before normalising too)."""
    try:
        return normalise_name(registered) == normalise_name(asserted)
    except ValidationFailed:
        return False


def age_on(birth: dt.date, on: dt.date) -> int:
    """Whole years between ``birth`` and ``on`` (a 29 February birthday counts on 1 March)."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
