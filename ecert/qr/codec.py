"""The QR token codec (pure: no database, no HTTP).

A QR code carries ``EC1:/`` followed by digits. The digits are the compact JWS (ES256) packed
as one base-65 number written in decimal: QR numeric mode stores 3.33 bits a digit, so the token
fits a version-10 QR at error correction M, where the JWS in byte mode would need version 11–12.
SMART Health Cards' two-digits-per-character scheme was the model; packing the whole string as
one number (1.81 digits a character instead of 2) is what buys the last version. No library does
this packing; the reference algorithm is in docs/qr-format.md.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from operator import mul
from typing import Annotated

import msgspec
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.errors import EcertError
from ecert.qr.jws import sign_es256, unverified_header, unverified_payload, verify_es256

SCHEME_PREFIX = "EC1:/"
TOKEN_TYPE = "ecqr"  # noqa: S105 - a JWT type, not a password
ALGORITHM = "ES256"
#: The 65 characters of a compact JWS (base64url and '.'), in the order that defines the packing.
ALPHABET = "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit", "zip"})
KID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,4}$")
SUB_PATTERN = re.compile(r"^[A-Za-z0-9_-]{12}$")
JTI_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8}$")
ISS_PATTERN = re.compile(r"^\d{6}$")
MAX_VERSION = 999
#: Longest accepted QR text; anything longer is refused before any parsing work.
MAX_TEXT = 600


class QrError(EcertError):
    """Base of every refusal of a QR token."""

    status = 422
    code = "qr_invalid"
    title = "The QR code is not valid"


class QrMalformed(QrError):
    """Raised when the text is not an ecert QR token (prefix, digits, JWS structure, header)."""

    code = "qr_malformed"
    title = "The QR code is not an ecert code"


class QrSignatureInvalid(QrError):
    """Raised when the signature does not verify with the key its ``kid`` names."""

    code = "qr_signature_invalid"
    title = "The QR code's signature is not valid"


class QrUnknownKey(QrError):
    """Raised by callers when the ``kid`` is not a verifying key of ecert's own key table."""

    code = "qr_unknown_key"
    title = "The QR code was signed by an unknown or revoked key"


class QrExpired(QrError):
    """Raised when ``exp`` is past, beyond the leeway."""

    code = "qr_expired"
    title = "The QR code has expired; refresh it"


class QrNotYetValid(QrError):
    """Raised when ``iat`` is in the future beyond the leeway (clock skew)."""

    code = "qr_not_yet_valid"
    title = "The QR code is not valid yet"


class QrWrongIssuer(QrError):
    """Raised when ``iss`` is not an issuer the verifier trusts."""

    code = "qr_wrong_issuer"
    title = "The QR code was issued elsewhere"


class QrReplayed(QrError):
    """Raised by callers when a single-use code is presented again."""

    status = 409
    code = "qr_replayed"
    title = "The QR code was already used"


@dataclass(frozen=True)
class QrClaims:
    """The claims of a QR token. ``sub`` is the certificate pseudonym, never personal data.

    msgspec checks the constraints when it decodes a payload into it (strict: no bool or float
    for an int); ``encode`` checks what it signs itself.
    """

    iss: Annotated[str, msgspec.Meta(pattern=ISS_PATTERN.pattern)]
    sub: Annotated[str, msgspec.Meta(pattern=SUB_PATTERN.pattern)]
    ver: Annotated[int, msgspec.Meta(ge=1, le=MAX_VERSION)]
    iat: int
    exp: int
    jti: Annotated[str, msgspec.Meta(pattern=JTI_PATTERN.pattern)]


@dataclass(frozen=True)
class QrHeader:
    kid: str
    alg: str
    typ: str


def new_claims(iss: str, sub: str, ver: int, now: int, lifetime_s: int) -> QrClaims:
    """Claims for a fresh token with a random 48-bit ``jti`` (unique per pseudonym)."""
    return QrClaims(iss, sub, ver, now, now + lifetime_s, secrets.token_urlsafe(6))


#: Characters handled per big-integer step: 65**10 < 2**63 keeps the inner work in small ints,
#: done two characters (one of 65**2 pairs) at a time.
_CHUNK = 10
_CHUNK_BASE = 65**_CHUNK
_PAIRS = [a + b for a in ALPHABET for b in ALPHABET]
_PAIRS_2, _PAIRS_3 = 4225**2, 4225**3
#: Each character's digit value as a byte (``bytes.translate``), and a chunk's place values: a
#: chunk's value is then one ``sum(map(mul, …))`` in C instead of a Python step a character.
_DIGITS = bytes.maketrans(ALPHABET.encode(), bytes(range(65)))
_OUTSIDE = bytes(set(range(256)) - set(ALPHABET.encode()))
_PLACES = [65**k for k in reversed(range(_CHUNK))]


def pack(jws: str) -> str:
    """Compact JWS → decimal digits (a leading 1 keeps leading zero-valued characters)."""
    values = jws.encode("ascii").translate(_DIGITS, _OUTSIDE)
    if len(values) != len(jws):  # a character outside the alphabet was deleted
        raise ValueError("a character outside the compact JWS alphabet")
    head = len(values) % _CHUNK
    number = 1
    for value in values[:head]:
        number = number * 65 + value
    for start in range(head, len(values), _CHUNK):
        number = number * _CHUNK_BASE + sum(map(mul, values[start : start + _CHUNK], _PLACES))
    return str(number)


def unpack(digits: str) -> str:
    """Decimal digits → compact JWS; raises ValueError on anything else."""
    if not digits.isascii() or not digits.isdigit() or digits[0] == "0":
        raise ValueError("not a packed token")
    number = int(digits)
    # From the low end, a chunk of ten characters a big-integer step, its five pairs unrolled
    # (a loop of five steps a chunk cost a third of the decode) and collected last pair first.
    pairs: list[str] = []
    while number >= _CHUNK_BASE:
        number, rest = divmod(number, _CHUNK_BASE)
        high, low = divmod(rest, _PAIRS_3)
        a, b = divmod(high, 4225)
        c, low = divmod(low, _PAIRS_2)
        d, e = divmod(low, 4225)
        pairs += (_PAIRS[e], _PAIRS[d], _PAIRS[c], _PAIRS[b], _PAIRS[a])
    # What is left is the sentinel 1 followed by fewer than _CHUNK characters.
    head: list[str] = []
    while number > 1:
        number, index = divmod(number, 65)
        head.append(ALPHABET[index])
    if number != 1:
        raise ValueError("missing sentinel")
    return "".join(reversed(head)) + "".join(reversed(pairs))


def encode(claims: QrClaims, private_key: ec.EllipticCurvePrivateKey, kid: str) -> str:
    """Sign the claims and return the text to put in the QR code."""
    if not KID_PATTERN.match(kid) or not SUB_PATTERN.match(claims.sub):
        raise ValueError("kid or pseudonym has the wrong shape for a QR token")
    if not 1 <= claims.ver <= MAX_VERSION or not ISS_PATTERN.match(claims.iss):
        raise ValueError("version or issuer out of range for a QR token")
    header = {"alg": ALGORITHM, "kid": kid, "typ": TOKEN_TYPE}
    return SCHEME_PREFIX + pack(sign_es256(header, claims, private_key))


def to_compact_jws(qr_text: str) -> str:
    """Recover the compact JWS from scanned text."""
    text = qr_text.strip()
    if len(text) > MAX_TEXT or not text.startswith(SCHEME_PREFIX):
        raise QrMalformed()
    try:
        jws = unpack(text[len(SCHEME_PREFIX) :])
    except ValueError as exc:
        raise QrMalformed() from exc
    if jws.count(".") != 2:
        raise QrMalformed()
    return jws


def _checked_header(jws: str) -> QrHeader:
    try:
        header = unverified_header(jws)
    except ValueError as exc:
        raise QrMalformed() from exc
    if header.get("alg") != ALGORITHM:
        raise QrMalformed("the QR code must be signed with ES256")
    if header.get("typ") != TOKEN_TYPE:
        raise QrMalformed("the token is not an ecert QR token")
    if _FORBIDDEN_HEADERS & header.keys():
        raise QrMalformed("the QR code carries forbidden header parameters")
    kid = header.get("kid")
    if not isinstance(kid, str) or not KID_PATTERN.match(kid):
        raise QrMalformed("the QR code has no usable key id")
    return QrHeader(kid=kid, alg=ALGORITHM, typ=TOKEN_TYPE)


def read_header(qr_text: str) -> QrHeader:
    """The unverified header, checked: pinned algorithm, our type, no key material, sane kid."""
    return _checked_header(to_compact_jws(qr_text))


def open_code(qr_text: str) -> tuple[str, QrHeader]:
    """Unpack scanned text once: its compact JWS (for ``decode_jws``) and checked header."""
    jws = to_compact_jws(qr_text)
    return jws, _checked_header(jws)


def unverified_issuer(jws: str) -> str:
    """The ``iss`` a code claims, read before verifying it — only to choose whose keys verify it
    (a trust list of provinces); the verification that follows checks it again."""
    try:
        iss = unverified_payload(jws).get("iss")
    except ValueError as exc:
        raise QrMalformed() from exc
    if not isinstance(iss, str) or not ISS_PATTERN.match(iss):
        raise QrMalformed("the QR code names no issuing area")
    return iss


def decode(
    qr_text: str,
    public_key: ec.EllipticCurvePublicKey,
    *,
    now: int,
    leeway_s: int,
    issuers: Collection[str] | None = None,
) -> QrClaims:
    """Verify a QR token fully (signature, type, claims, time, issuer) and return its claims."""
    return decode_jws(
        to_compact_jws(qr_text), public_key, now=now, leeway_s=leeway_s, issuers=issuers
    )


def decode_jws(
    jws: str,
    public_key: ec.EllipticCurvePublicKey,
    *,
    now: int,
    leeway_s: int,
    issuers: Collection[str] | None = None,
) -> QrClaims:
    """``decode`` for a code already unpacked by ``open_code``."""
    _checked_header(jws)
    try:
        payload = verify_es256(jws, public_key)
    except ValueError as exc:  # JwsInvalid too: a token that does not verify, whatever its flaw
        raise QrSignatureInvalid() from exc
    try:
        parsed = msgspec.json.decode(payload, type=QrClaims)
    except msgspec.ValidationError as exc:  # names the claim, never echoes its value
        raise QrMalformed(f"the QR code's claims are not valid: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise QrMalformed("the QR code's payload is not JSON") from exc
    if parsed.exp <= parsed.iat:
        raise QrMalformed("the QR code's claims are out of range")
    if parsed.exp + leeway_s < now:
        raise QrExpired()
    if parsed.iat - leeway_s > now:
        raise QrNotYetValid()
    if issuers is not None and parsed.iss not in issuers:
        raise QrWrongIssuer()
    return parsed
