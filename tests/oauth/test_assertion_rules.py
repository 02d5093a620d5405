"""A refused assertion names the rule it broke; a one-hour client assertion works once."""

from __future__ import annotations

import datetime as dt
import hmac
import json
import secrets
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.utils import base64url_encode
from sqlalchemy import select

from ecert.db.models import UsedJti
from ecert.server.runtime import Runtime
from tests.factories import add_client, add_person
from tests.fixtures.auth import JWT_BEARER, person_assertion
from tests.helpers import Client

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    public = key.public_key()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _claims(client_id: str, audience: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 3600,
        "jti": secrets.token_urlsafe(16),
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


async def _token(client: Client, assertion: str) -> Any:
    return await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )


async def test_a_one_hour_assertion_works_once_and_its_jti_is_kept_until_exp(
    client: Client, runtime: Runtime
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    client_id, _ = await add_client(runtime, "institution", public_key_pem=_pem(key))
    claims = _claims(client_id, runtime.settings.issuer_url)
    assertion = jwt.encode(claims, key, algorithm="ES256")
    assert (await _token(client, assertion)).status_code == 200
    replay = await _token(client, assertion)
    assert replay.status_code == 401
    body = replay.json()
    assert (body["error"], body["rule"]) == ("invalid_client", "replayed_jti")
    async with runtime.sessions() as session:
        row = await session.scalar(select(UsedJti).where(UsedJti.jti == claims["jti"]))
    assert row is not None
    assert row.expires_at.replace(tzinfo=dt.UTC) == dt.datetime.fromtimestamp(claims["exp"], dt.UTC)


@pytest.mark.parametrize(
    "rule",
    [
        "lifetime",
        "expired",
        "audience",
        "issuer",
        "subject",
        "signature",
        "algorithm",
        "missing_claim",
        "header",
        "malformed",
        "jti",
    ],
)
async def test_each_refused_client_assertion_names_its_rule(
    client: Client, runtime: Runtime, rule: str
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    client_id, _ = await add_client(runtime, "institution", public_key_pem=_pem(key))
    aud = runtime.settings.issuer_url
    now = int(time.time())
    headers: dict[str, Any] | None = None
    signer: Any = key
    algorithm = "ES256"
    changes: dict[str, Any] = {}
    expected = rule
    if rule == "lifetime":
        changes = {"exp": now + 3601 + runtime.settings.leeway_s}
    elif rule == "expired":
        changes, expected = {"iat": now - 600, "exp": now - 300}, "lifetime"
    elif rule == "audience":
        changes = {"aud": "https://elsewhere.example"}
    elif rule == "issuer":
        changes = {"iss": "ins_doesnotexist00", "sub": "ins_doesnotexist00"}
    elif rule == "subject":
        changes = {"sub": "someone-else"}
    elif rule == "signature":
        signer = ec.generate_private_key(ec.SECP256R1())
    elif rule == "algorithm":
        signer, algorithm = _pem(key), "HS256"  # HMAC keyed with the public key
    elif rule == "missing_claim":
        changes = {"jti": None}
    elif rule == "header":
        headers = {"jku": "https://attacker.example/keys"}
    elif rule == "jti":
        changes = {"jti": "short"}
    if rule == "malformed":
        assertion = "not.a-jwt"
    elif algorithm == "HS256":
        # PyJWT refuses to HMAC with a PEM (the very attack): sign by hand.
        header = base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
        payload = base64url_encode(json.dumps(_claims(client_id, aud)).encode())
        mac = hmac.digest(str(signer).encode(), header + b"." + payload, "sha256")
        assertion = b".".join([header, payload, base64url_encode(mac)]).decode()
    else:
        claims = _claims(client_id, aud, **changes)
        assertion = jwt.encode(claims, signer, algorithm=algorithm, headers=headers)
    response = await _token(client, assertion)
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["code"] == body["error"] == "invalid_client"
    assert body["rule"] == expected
    assert f"({expected})" in body["error_description"]
    assert assertion not in response.text


async def test_a_refused_person_assertion_names_its_rule(client: Client, runtime: Runtime) -> None:
    channel_id, secret = await add_client(runtime, "channel")
    assert secret is not None
    _, id_number = await add_person(runtime, name="李四")
    # Person assertions keep the spec's five minutes.
    assertion = person_assertion(
        channel_id,
        secret,
        id_number,
        "李四",
        audience=runtime.settings.issuer_url,
        exp=int(time.time()) + 3600,
    )
    response = await client.post(
        "/oauth/token",
        data={"grant_type": JWT_BEARER, "assertion": assertion},
        auth=(channel_id, secret),
    )
    assert response.status_code == 400
    body = response.json()
    assert (body["error"], body["rule"]) == ("invalid_grant", "lifetime")
    assert "at most 300 s" in body["error_description"]
    assert secret not in response.text
    assert id_number not in response.text
