"""The QR token codec: format, size, verification and refusal of every kind of bad input."""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

import jwt
import pytest
import qrcode
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st
from qrcode.util import MODE_ALPHA_NUM, MODE_NUMBER, QRData

from ecert.qr import codec
from ecert.qr.codec import (
    QrClaims,
    QrError,
    QrExpired,
    QrMalformed,
    QrNotYetValid,
    QrSignatureInvalid,
    QrWrongIssuer,
)

KEY = ec.generate_private_key(ec.SECP256R1())
NOW = 1_795_000_000


def _mint(**changes: Any) -> str:
    claims = codec.new_claims("370102", "AbCdEfGhIjKl", 3, NOW, 60)
    fields = {**claims.__dict__, **changes}
    return codec.encode(QrClaims(**fields), KEY, "k1Ab")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _forge(header: dict[str, Any], payload: dict[str, Any], key: Any, alg: str) -> str:
    token = jwt.encode(payload, key, algorithm=alg, headers=header)
    return codec.SCHEME_PREFIX + codec.pack(token)


def test_round_trip_claims_and_header() -> None:
    text = _mint()
    assert text.startswith("EC1:/")
    assert text[5:].isdigit()
    claims = codec.decode(text, KEY.public_key(), now=NOW + 10, leeway_s=5)
    assert (claims.iss, claims.sub, claims.ver, claims.iat, claims.exp) == (
        "370102",
        "AbCdEfGhIjKl",
        3,
        NOW,
        NOW + 60,
    )
    jws = codec.to_compact_jws(text)
    header = jwt.get_unverified_header(jws)
    assert header == {"alg": "ES256", "kid": "k1Ab", "typ": "ecqr"}
    payload = jwt.decode(jws, options={"verify_signature": False})
    assert set(payload) == {"iss", "sub", "ver", "iat", "exp", "jti"}
    # The compact JWS verifies with any JOSE library given the public key.
    verified = jwt.decode(
        jws, KEY.public_key(), algorithms=["ES256"], options={"verify_exp": False}
    )
    assert verified["sub"] == "AbCdEfGhIjKl"


def test_worst_case_fits_qr_version_10_at_m() -> None:
    text = _mint(iss="999999", ver=codec.MAX_VERSION, iat=4_102_444_800, exp=4_102_444_920)
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(QRData(codec.SCHEME_PREFIX, mode=MODE_ALPHA_NUM))
    code.add_data(QRData(text[len(codec.SCHEME_PREFIX) :], mode=MODE_NUMBER))
    code.make(fit=True)
    assert code.version <= 10


@given(st.text(alphabet=codec.ALPHABET, max_size=300))
def test_pack_unpack_round_trip(jws: str) -> None:
    assert codec.unpack(codec.pack(jws)) == jws


@pytest.mark.parametrize(
    ("now", "error"),
    [
        (NOW + 60 + 5, None),  # expiry edge, inside leeway
        (NOW + 60 + 6, QrExpired),
        (NOW - 5, None),  # scanner clock behind, inside leeway
        (NOW - 6, QrNotYetValid),
    ],
)
def test_time_edges_with_leeway(now: int, error: type[QrError] | None) -> None:
    text = _mint()
    if error is None:
        codec.decode(text, KEY.public_key(), now=now, leeway_s=5)
    else:
        with pytest.raises(error):
            codec.decode(text, KEY.public_key(), now=now, leeway_s=5)


def test_other_key_is_a_signature_error() -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(QrSignatureInvalid):
        codec.decode(_mint(), other, now=NOW, leeway_s=5)


def test_issuer_must_be_trusted() -> None:
    with pytest.raises(QrWrongIssuer):
        codec.decode(_mint(), KEY.public_key(), now=NOW, leeway_s=5, issuers={"110105"})


PAYLOAD = {
    "iss": "370102",
    "sub": "AbCdEfGhIjKl",
    "ver": 1,
    "iat": NOW,
    "exp": NOW + 60,
    "jti": "abcdefgh",
}


@pytest.mark.parametrize(
    "case",
    [
        "alg_none",
        "hs256_public_key",
        "es384",
        "wrong_typ",
        "jku",
        "jwk",
        "kid_path",
        "kid_sql",
        "no_kid",
        "missing_claim",
        "sub_with_id_number",
        "bool_version",
    ],
)
def test_hostile_tokens_are_refused(case: str) -> None:
    header: dict[str, Any] = {"kid": "k1Ab", "typ": "ecqr"}
    payload = dict(PAYLOAD)
    if case == "alg_none":
        head = _b64(json.dumps({"alg": "none", **header}).encode())
        raw = f"{head}.{_b64(json.dumps(payload).encode())}."
        text = codec.SCHEME_PREFIX + codec.pack(raw)
    elif case == "hs256_public_key":
        text = _forge(header, payload, "public-key-as-secret-" * 3, "HS256")
    elif case == "es384":
        text = _forge(header, payload, ec.generate_private_key(ec.SECP384R1()), "ES384")
    else:
        if case == "wrong_typ":
            header["typ"] = "at+jwt"
        elif case in ("jku", "jwk"):
            header[case] = "https://evil.example/keys"
        elif case == "kid_path":
            header["kid"] = "../../etc/passwd"
        elif case == "kid_sql":
            header["kid"] = "x' OR '1'='1"
        elif case == "no_kid":
            del header["kid"]
        elif case == "missing_claim":
            del payload["jti"]
        elif case == "sub_with_id_number":
            payload["sub"] = "11010519491231002X"
        elif case == "bool_version":
            payload["ver"] = True
        text = _forge(header, payload, KEY, "ES256")
    with pytest.raises(QrError):
        codec.decode(text, KEY.public_key(), now=NOW, leeway_s=5)


@settings(max_examples=200)
@given(st.text(max_size=700))
def test_garbage_is_always_a_qr_error(text: str) -> None:
    with pytest.raises(QrError):
        codec.decode(text, KEY.public_key(), now=NOW, leeway_s=5)


@functools.cache
def _one_jws() -> str:
    """One token for every example: a fresh one each time (random ECDSA nonce and jti) made
    Hypothesis see data generation change between a test case and its replay (flaky)."""
    return codec.to_compact_jws(_mint())


@settings(max_examples=200)
@given(st.data())
def test_any_tampering_is_refused(data: st.DataObject) -> None:
    jws = _one_jws()
    position = data.draw(st.integers(0, len(jws) - 1))
    others = [c for c in codec.ALPHABET if c != jws[position]]
    replacement = data.draw(st.sampled_from(others))
    tampered = jws[:position] + replacement + jws[position + 1 :]
    with pytest.raises(QrError):
        codec.decode(
            codec.SCHEME_PREFIX + codec.pack(tampered), KEY.public_key(), now=NOW, leeway_s=5
        )


def test_prefix_is_required() -> None:
    with pytest.raises(QrMalformed):
        codec.to_compact_jws(_mint().replace("EC1:/", "XX1:/"))
