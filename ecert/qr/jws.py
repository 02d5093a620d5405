"""Compact JWS (ES256) for QR codes: sign, verify, and read the header before verifying.

PyJWT signs and verifies every other token here. QR codes take this short path because the
issue-6 targets ask mint and offline verification to come close to the bare P-256 operation,
and PyJWT spends about as long again around it: each segment is checked character by character
in Python and the header is parsed twice. What is left is what RFC 7515 asks for ES256: sign
``base64url(header) "." base64url(payload)``, and send the signature as the 64-byte ``r || s``.
The algorithm is fixed (the header's ``alg`` is checked by the caller, never used to choose).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

_SEGMENT = re.compile(r"[A-Za-z0-9_-]{4,512}")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{86}")  # 64 bytes, unpadded
_ES256 = ec.ECDSA(hashes.SHA256())


class JwsInvalid(ValueError):
    """The signature does not verify, or is not a 64-byte ES256 signature."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _unverified_object(segment: str) -> dict[str, Any]:
    if not _SEGMENT.fullmatch(segment):
        raise ValueError("malformed JWS segment")
    try:
        value = msgspec.json.decode(_unb64(segment))
    except (binascii.Error, msgspec.DecodeError) as exc:
        raise ValueError("malformed JWS segment") from exc
    if not isinstance(value, dict):
        raise ValueError("the JWS segment is not a JSON object")
    return value


def unverified_header(compact: str) -> dict[str, Any]:
    """The header object of a compact JWS; ValueError when it is not a base64url JSON object."""
    return _unverified_object(compact.partition(".")[0])


def unverified_payload(compact: str) -> dict[str, Any]:
    """The payload object, unverified: only to choose the key that will verify it."""
    return _unverified_object(compact.split(".")[1] if compact.count(".") == 2 else "")


def sign_es256(header: dict[str, Any], payload: Any, key: ec.EllipticCurvePrivateKey) -> str:
    """A compact JWS of ``payload`` (a dict, or a dataclass or Struct that msgspec encodes as
    a JSON object) signed with ``key``; ``header`` must say ES256."""
    signing_input = f"{_b64(msgspec.json.encode(header))}.{_b64(msgspec.json.encode(payload))}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), _ES256))
    return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def verify_es256(compact: str, key: ec.EllipticCurvePublicKey) -> bytes:
    """The payload bytes of a compact JWS whose ES256 signature ``key`` verifies.

    Raises JwsInvalid for a bad signature and ValueError for a malformed token.
    """
    signing_input, _, signature = compact.rpartition(".")
    payload = signing_input.partition(".")[2]
    if not _SEGMENT.fullmatch(payload):
        raise ValueError("malformed JWS payload segment")
    if not _SIGNATURE.fullmatch(signature):
        raise JwsInvalid("not a 64-byte ES256 signature")
    raw = _unb64(signature)
    if _b64(raw) != signature:  # the last character's spare bits must be zero: one text a code
        raise JwsInvalid("non-canonical signature encoding")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.verify(der, signing_input.encode(), _ES256)
    except InvalidSignature as exc:
        raise JwsInvalid("the signature does not verify") from exc
    try:
        return _unb64(payload)
    except binascii.Error as exc:
        raise ValueError("malformed JWS payload") from exc
