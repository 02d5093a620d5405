"""The QR codes' own ES256 compact JWS: interoperable with PyJWT both ways, strict on input."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.qr.jws import JwsInvalid, sign_es256, unverified_header, verify_es256

KEY = ec.generate_private_key(ec.SECP256R1())
OTHER = ec.generate_private_key(ec.SECP256R1())
PAYLOAD = {"iss": "370102", "sub": "AbCdEfGhIjKl", "ver": 1, "iat": 1, "exp": 2, "jti": "abcdefgh"}


def test_pyjwt_verifies_what_we_sign() -> None:
    token = sign_es256({"alg": "ES256", "kid": "k1", "typ": "ecqr"}, PAYLOAD, KEY)
    decoded = jwt.decode(
        token, KEY.public_key(), algorithms=["ES256"], options={"verify_exp": False}
    )
    assert decoded == PAYLOAD
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": "k1", "typ": "ecqr"}


def test_we_verify_what_pyjwt_signs() -> None:
    token = jwt.encode(PAYLOAD, KEY, algorithm="ES256", headers={"kid": "k1"})
    assert jwt.decode_complete(token, options={"verify_signature": False})["payload"] == PAYLOAD
    assert verify_es256(token, KEY.public_key()) == jwt.utils.base64url_decode(token.split(".")[1])
    assert unverified_header(token)["kid"] == "k1"


def test_another_key_or_a_changed_payload_is_refused() -> None:
    token = sign_es256({"alg": "ES256"}, PAYLOAD, KEY)
    with pytest.raises(JwsInvalid):
        verify_es256(token, OTHER.public_key())
    head, _, signature = token.split(".")
    forged = jwt.utils.base64url_encode(b'{"sub":"someone-else"}').decode()
    with pytest.raises(JwsInvalid):
        verify_es256(f"{head}.{forged}.{signature}", KEY.public_key())


def test_only_the_canonical_64_byte_signature_is_accepted() -> None:
    token = sign_es256({"alg": "ES256"}, PAYLOAD, KEY)
    signing_input, _, signature = token.rpartition(".")
    # The last character carries 2 bits of the signature and 4 spare bits; set a spare bit.
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare = last[last.index(signature[-1]) + 1]
    with pytest.raises(JwsInvalid):
        verify_es256(f"{signing_input}.{signature[:-1]}{spare}", KEY.public_key())
    der = KEY.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(JwsInvalid):  # DER (what OpenSSL emits) is not the JWS form
        verify_es256(
            f"{signing_input}.{jwt.utils.base64url_encode(der).decode()}", KEY.public_key()
        )


@pytest.mark.parametrize(
    "text", ["", "a.b.c", "!!!!.e30.x", "e30", "W10.e30.x", "bm90anNvbg.e30.x"]
)
def test_malformed_headers_are_value_errors(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the contract is ValueError for any flaw
        unverified_header(text)
