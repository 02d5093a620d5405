"""The QR token codec (pure: no database, no HTTP).

A QR code carries ``EC1:/`` followed by digits. The digits are the compact JWS (ES256) packed
as one base-65 number written in decimal: QR numeric mode stores 3.33 bits a digit, so the token
fits a version-10 QR at error correction M, where the JWS in byte mode would need version 11–12.
SMART Health Cards' two-digits-per-character scheme was the model; packing the whole string as
one number (1.81 digits a character instead of 2) is what buys the last version. No library does
this packing; the reference algorithm is in docs/qr-format.md.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.errors import EcertError

SCHEME_PREFIX = "EC1:/"
TOKEN_TYPE = "ecqr"  # noqa: S105 - a JWT type, not a password
ALGORITHM = "ES256"
#: The 65 characters of a compact JWS (base64url and '.'), in the order that defines the packing.
ALPHABET = "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit", "zip"})
KID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,4}$")
SUB_PATTERN = re.compile(r"^[A-Za-z0-9_-]{12}$")
JTI_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8}$")
ISS_PATTERN = re.compile(r"^\d{6}$")
MAX_VERSION = 999
#: Longest accepted QR text; anything longer is refused before any parsing work.
MAX_TEXT = 600
_REQUIRED = frozenset({"iss", "sub", "ver", "iat", "exp", "jti"})


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
    """The claims of a QR token. ``sub`` is the certificate pseudonym, never personal data."""

    iss: str
    sub: str
    ver: int
    iat: int
    exp: int
    jti: str


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
_PAIR_INDEX = {pair: i for i, pair in enumerate(_PAIRS)}


def pack(jws: str) -> str:
    """Compact JWS → decimal digits (a leading 1 keeps leading zero-valued characters)."""
    head = len(jws) % _CHUNK
    number = 1
    for char in jws[:head]:
        number = number * 65 + _INDEX[char]
    for start in range(head, len(jws), _CHUNK):
        value = 0
        for pos in range(start, start + _CHUNK, 2):
            value = value * 4225 + _PAIR_INDEX[jws[pos : pos + 2]]
        number = number * _CHUNK_BASE + value
    return str(number)


def unpack(digits: str) -> str:
    """Decimal digits → compact JWS; raises ValueError on anything else."""
    if not digits.isascii() or not digits.isdigit() or digits[0] == "0":
        raise ValueError("not a packed token")
    number = int(digits)
    pairs: list[str] = []
    while number >= _CHUNK_BASE:
        number, rest = divmod(number, _CHUNK_BASE)
        for _ in range(_CHUNK // 2):
            rest, index = divmod(rest, 4225)
            pairs.append(_PAIRS[index])
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
    payload = {
        "iss": claims.iss,
        "sub": claims.sub,
        "ver": claims.ver,
        "iat": claims.iat,
        "exp": claims.exp,
        "jti": claims.jti,
    }
    token = jwt.encode(
        payload, private_key, algorithm=ALGORITHM, headers={"kid": kid, "typ": TOKEN_TYPE}
    )
    return SCHEME_PREFIX + pack(token)


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
        header = jwt.get_unverified_header(jws)
    except (jwt.PyJWTError, ValueError, json.JSONDecodeError) as exc:
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


#: JWS layer only: claims are checked below against the caller's clock and rules.
_JWS = jwt.PyJWS(algorithms=[ALGORITHM])


def decode(
    qr_text: str,
    public_key: ec.EllipticCurvePublicKey,
    *,
    now: int,
    leeway_s: int,
    issuers: Collection[str] | None = None,
) -> QrClaims:
    """Verify a QR token fully (signature, type, claims, time, issuer) and return its claims."""
    jws = to_compact_jws(qr_text)
    _checked_header(jws)
    try:
        payload = _JWS.decode_complete(jws, public_key, algorithms=[ALGORITHM])["payload"]
    except jwt.InvalidSignatureError as exc:
        raise QrSignatureInvalid() from exc
    except (jwt.PyJWTError, ValueError) as exc:
        raise QrSignatureInvalid() from exc
    try:
        raw = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise QrMalformed("the QR code's payload is not JSON") from exc
    if not isinstance(raw, dict) or not raw.keys() >= _REQUIRED:
        raise QrMalformed("the QR code lacks a required claim")
    parsed = _claims(raw)
    if parsed.exp + leeway_s < now:
        raise QrExpired()
    if parsed.iat - leeway_s > now:
        raise QrNotYetValid()
    if issuers is not None and parsed.iss not in issuers:
        raise QrWrongIssuer()
    return parsed


def _claims(raw: dict[str, Any]) -> QrClaims:
    iss, sub, ver, iat, exp, jti = (raw[k] for k in ("iss", "sub", "ver", "iat", "exp", "jti"))
    ints_ok = all(type(v) is int for v in (ver, iat, exp))  # bool is not an int here
    strs_ok = all(isinstance(v, str) for v in (iss, sub, jti))
    if not (ints_ok and strs_ok):
        raise QrMalformed("the QR code's claims have the wrong types")
    if not (SUB_PATTERN.match(sub) and JTI_PATTERN.match(jti) and ISS_PATTERN.match(iss)):
        raise QrMalformed("the QR code's claims have the wrong shape")
    if not 1 <= ver <= MAX_VERSION or exp <= iat:
        raise QrMalformed("the QR code's claims are out of range")
    return QrClaims(iss=iss, sub=sub, ver=ver, iat=iat, exp=exp, jti=jti)
