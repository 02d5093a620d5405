"""What attackers and careless clients will do: each refused with a clear code, never a 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ecert.qr import codec
from ecert.server.runtime import Runtime
from tests.factories import add_client, credit, ec_token, holder, institution, load_policies
from tests.fixtures.auth import bearer, client_token
from tests.helpers import Client


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


NASTY = [
    "",
    " ",
    "EC1:/",
    "EC1:/0",
    "EC1:/1",
    "EC1:/" + "9" * 600,
    "424",
    "4" * 28,
    "424" + "x" * 25,
    "EC1:/" + "1" * 40,
    "\x00\x01",
    "eyJhbGciOiJub25lIn0.e30.",
    "null",
    "{}",
    "😀" * 50,
]


async def test_any_scanned_text_is_refused_cleanly(client: Client, runtime: Runtime) -> None:
    hospital = await institution(client, runtime)
    rng = random.Random(7)
    noise = [
        "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(1, 300)))
        for _ in range(40)
    ]
    digits = [
        "EC1:/1" + "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 520)))
        for _ in range(40)
    ]
    for text in NASTY + noise + digits:
        response = await client.post("/v1/verify", json={"qr": text or " "}, headers=hospital)
        assert response.status_code in (400, 409, 422), (text, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


async def _forged(
    client: Client, runtime: Runtime, header: dict[str, Any], key: Any, alg: str
) -> str:
    person = await holder(client, runtime)
    genuine = codec.to_compact_jws(await person.qr(client))
    payload = jwt.decode(genuine, options={"verify_signature": False})
    if alg == "HS256":  # PyJWT refuses to do this on purpose; an attacker does it by hand
        head = _b64(json.dumps({**header, "alg": "HS256"}).encode())
        signing_input = f"{head}.{genuine.split('.')[1]}"
        mac = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
        return codec.SCHEME_PREFIX + codec.pack(f"{signing_input}.{_b64(mac)}")
    token = jwt.encode(payload, key, algorithm=alg, headers=header)
    return codec.SCHEME_PREFIX + codec.pack(token)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("eddsa", "qr_malformed"),
        ("es384", "qr_malformed"),
        ("hs256_with_jwk_as_secret", "qr_malformed"),
        ("jku", "qr_malformed"),
        ("x5c", "qr_malformed"),
        ("crit", "qr_malformed"),
        ("kid_path", "qr_malformed"),
        ("kid_sql", "qr_malformed"),
    ],
)
async def test_algorithm_and_header_attacks(
    client: Client, runtime: Runtime, case: str, code: str
) -> None:
    hospital = await institution(client, runtime)
    kid = runtime.keys.signer("qr").kid
    header: dict[str, Any] = {"kid": kid, "typ": "ecqr"}
    key: Any = ec.generate_private_key(ec.SECP256R1())
    alg = "ES256"
    if case == "eddsa":
        key, alg = ed25519.Ed25519PrivateKey.generate(), "EdDSA"
    elif case == "es384":
        key, alg = ec.generate_private_key(ec.SECP384R1()), "ES384"
    elif case == "hs256_with_jwk_as_secret":
        jwk = json.dumps(runtime.keys.signer("qr").jwk)
        key, alg = jwk + " " * 10, "HS256"
    elif case in ("jku", "x5c"):
        header[case] = "https://attacker.example/keys"
    elif case == "crit":
        header["crit"] = ["exp"]
    elif case == "kid_path":
        header["kid"] = "../../../../etc/passwd"
    elif case == "kid_sql":
        header["kid"] = "' OR 1=1 --"
    text = await _forged(client, runtime, header, key, alg)
    response = await client.post("/v1/verify", json={"qr": text}, headers=hospital)
    assert (response.status_code, response.json()["code"]) == (422, code)


async def test_token_kinds_cannot_stand_in_for_each_other(client: Client, runtime: Runtime) -> None:
    person = await holder(client, runtime)
    hospital_creds = await add_client(runtime, "institution", code="H37010200008", level="2")
    hospital = bearer(await client_token(client, *hospital_creds))
    qr = await person.qr(client)
    access = hospital["Authorization"].split()[1]
    # A QR token or its JWS as an access token.
    for wrong in (qr, codec.to_compact_jws(qr)):
        assert (
            await client.post("/v1/verify", json={"qr": "x"}, headers=bearer(wrong))
        ).status_code == 401
    # An access token scanned as a QR code.
    refused = await client.post("/v1/verify", json={"qr": access}, headers=hospital)
    assert refused.json()["code"] == "qr_malformed"
    # An ec_token as an access token, and as a QR code.
    await load_policies(runtime)
    token = await ec_token(client, runtime, person, hospital)
    assert (
        await client.get("/v1/reconciliation?date=2026-01-01", headers=bearer(token))
    ).status_code == 401
    assert (await client.post("/v1/verify", json={"qr": token}, headers=hospital)).json()[
        "code"
    ] == "qr_malformed"
    # A client assertion (signed by the client, audience = us) as an access token.
    key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": "x",
            "sub": "x",
            "aud": runtime.settings.issuer_url,
            "iat": now,
            "exp": now + 60,
            "jti": "j" * 10,
        },
        key,
        algorithm="ES256",
        headers={"typ": "at+jwt", "kid": runtime.keys.signer("access").kid},
    )
    assert (await client.get("/v1/me/ecert", headers=bearer(assertion))).status_code == 401


@pytest.mark.parametrize("change", ["aud", "iss", "typ", "exp", "missing_jti", "alg_none"])
async def test_tampered_access_tokens(client: Client, runtime: Runtime, change: str) -> None:
    person = await holder(client, runtime)
    token = person.headers["Authorization"].split()[1]
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    signer = runtime.keys.signer("access")
    if change == "aud":
        claims["aud"] = "someone-else"
    elif change == "iss":
        claims["iss"] = "https://evil.example"
    elif change == "typ":
        header["typ"] = "JWT"
    elif change == "exp":
        claims["exp"] = int(time.time()) - 60
    elif change == "missing_jti":
        del claims["jti"]
    if change == "alg_none":
        head = _b64(json.dumps({**header, "alg": "none"}).encode())
        forged = f"{head}.{_b64(json.dumps(claims).encode())}."
    else:
        forged = jwt.encode(claims, signer.private, algorithm="ES256", headers=header)
    response = await client.get("/v1/me/ecert", headers=bearer(forged))
    assert response.status_code == 401


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "1",
        "11010519491231002",
        "110105194912310021",
        "11010519491331002X",
        "ＡＢＣ",
        "11010519491231002X" * 3,
        "110105 19491231002X",
        "../../etc/passwd",
        "'; DROP TABLE persons;--",
    ],
)
async def test_malformed_id_numbers_are_refused_and_not_echoed(
    client: Client, runtime: Runtime, raw: str
) -> None:
    agency = bearer(await client_token(client, *await add_client(runtime, "agency")))
    response = await client.post(
        "/v1/agency/ecerts/suspend", json={"id_number": raw}, headers=agency
    )
    assert response.status_code in (400, 422)
    body = response.json()
    assert body["code"] in ("invalid_id_number", "validation_failed")
    if len(raw) >= 6:
        assert raw not in response.text


async def test_deep_json_and_huge_arrays_are_400(client: Client, runtime: Runtime) -> None:
    hospital = await institution(client, runtime)
    deep = "[" * 50_000 + "]" * 50_000
    response = await client.post(
        "/v1/verify", content=deep, headers={**hospital, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    items = [{"code": "A", "name": "x", "item_class": "A", "amount": 1}] * 5_000
    big = await client.post(
        "/v1/settlements/preview",
        headers=hospital,
        json={"ec_token": "370102" + "a" * 32, "med_type": "11", "items": items},
    )
    assert big.status_code in (400, 413)


async def test_mass_assignment_is_refused_and_changes_nothing(
    client: Client, runtime: Runtime
) -> None:
    await load_policies(runtime)
    person = await holder(client, runtime)
    await credit(runtime, person.person_id, 1_000)
    hospital = await institution(client, runtime)
    token = await ec_token(client, runtime, person, hospital)
    for extra in (
        {"balance": 10**9},
        {"institution_code": "H00000000000"},
        {"fund_paid": 0},
        {"status": "settled"},
    ):
        body = {
            "ec_token": token,
            "med_type": "11",
            "use_account": True,
            "items": [{"code": "A", "name": "x", "item_class": "A", "amount": 100}],
            **extra,
        }
        response = await client.post(
            "/v1/settlements",
            json=body,
            headers={**hospital, "Idempotency-Key": f"k-{next(iter(extra))}"},
        )
        assert response.status_code == 400, response.text
    role = await client.post(
        "/v1/me/ecert",
        headers=person.headers,
        json={"device_id": "d", "device_name": "n", "kind": "agency"},
    )
    assert role.status_code == 400
    assert (await client.get("/v1/me/account", headers=person.headers)).json() == {"balance": 1_000}
