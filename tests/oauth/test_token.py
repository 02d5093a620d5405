"""POST /oauth/token: client credentials (secret, Basic, private_key_jwt) and JWT-bearer grant."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import time

import argon2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from ecert.config import Settings
from ecert.db.models import AuditEvent
from ecert.db.models import Client as ClientRow
from ecert.oauth.services import set_client_active
from ecert.server.runtime import Runtime
from tests.factories import add_client, add_person
from tests.fixtures.app import AppFactory, open_client
from tests.fixtures.auth import JWT_BEARER, client_token, person_assertion
from tests.helpers import Client, run_cli, settings_env

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _client_assertion(
    client_id: str, key: ec.EllipticCurvePrivateKey, aud: str, **extra: object
) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": now,
        "exp": now + 60,
        "jti": f"j-{time.time_ns()}",
    }
    claims.update(extra)
    return jwt.encode(claims, key, algorithm="ES256")


async def test_client_secret_basic_and_post(client: Client, runtime: Runtime) -> None:
    client_id, secret = await add_client(runtime, "institution")
    basic = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret or "")
    )
    assert basic.status_code == 200
    assert basic.headers["cache-control"] == "no-store"
    body = basic.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == runtime.settings.access_token_ttl_s
    assert set(body["scope"].split()) == {"verify", "settle"}
    form = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert form.status_code == 200
    header = jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"


@pytest.mark.parametrize("wrong", ["secret", "client"])
async def test_wrong_credentials_are_refused(client: Client, runtime: Runtime, wrong: str) -> None:
    client_id, secret = await add_client(runtime, "channel")
    creds = (client_id, "nope") if wrong == "secret" else ("chn_doesnotexist", secret or "")
    response = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=creds
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "invalid_client"


async def test_two_authentication_methods_at_once_are_refused(
    client: Client, runtime: Runtime
) -> None:
    client_id, secret = await add_client(runtime, "channel")
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        auth=(client_id, secret or ""),
    )
    assert response.json()["code"] == "invalid_client"


async def test_unsupported_grant(client: Client, runtime: Runtime) -> None:
    client_id, secret = await add_client(runtime, "channel")
    response = await client.post(
        "/oauth/token", data={"grant_type": "password"}, auth=(client_id, secret or "")
    )
    assert response.status_code == 400
    assert response.json()["code"] == "unsupported_grant_type"


async def test_private_key_jwt(client: Client, runtime: Runtime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    client_id, secret = await add_client(runtime, "institution", public_key_pem=_pem(key))
    assert secret is None
    assertion = _client_assertion(client_id, key, runtime.settings.issuer_url)
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    first = await client.post("/oauth/token", data=form)
    assert first.status_code == 200, first.text
    replay = await client.post("/oauth/token", data=form)
    assert replay.status_code == 401
    assert replay.json()["code"] == "invalid_client"


@pytest.mark.parametrize(
    "change",
    ["expired", "wrong_audience", "wrong_key", "hs256_with_public_key", "too_long", "no_jti"],
)
async def test_bad_client_assertions(client: Client, runtime: Runtime, change: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    client_id, _ = await add_client(runtime, "institution", public_key_pem=_pem(key))
    aud = runtime.settings.issuer_url
    now = int(time.time())
    if change == "expired":
        assertion = _client_assertion(client_id, key, aud, iat=now - 600, exp=now - 300)
    elif change == "wrong_audience":
        assertion = _client_assertion(client_id, key, "https://elsewhere.example")
    elif change == "wrong_key":
        assertion = _client_assertion(client_id, ec.generate_private_key(ec.SECP256R1()), aud)
    elif change == "too_long":
        assertion = _client_assertion(client_id, key, aud, exp=now + 7200)
    elif change == "no_jti":
        claims = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60}
        assertion = jwt.encode(claims, key, algorithm="ES256")
    else:
        # Algorithm confusion: HMAC keyed with the public PEM must not verify.
        import base64
        import hashlib
        import hmac
        import json

        def b64(raw: bytes) -> str:
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = b64(
            json.dumps(
                {
                    "iss": client_id,
                    "sub": client_id,
                    "aud": aud,
                    "iat": now,
                    "exp": now + 60,
                    "jti": "x" * 16,
                }
            ).encode()
        )
        mac = hmac.new(_pem(key).encode(), f"{header}.{payload}".encode(), hashlib.sha256)
        assertion = f"{header}.{payload}.{b64(mac.digest())}"
    response = await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_client"


async def test_jwt_bearer_grant_gives_person_token_without_id_number(
    client: Client, runtime: Runtime
) -> None:
    channel_id, secret = await add_client(runtime, "channel")
    person, id_number = await add_person(runtime, name="李四")
    assertion = person_assertion(
        channel_id, secret, id_number, "李四", audience=runtime.settings.issuer_url
    )
    response = await client.post(
        "/oauth/token",
        data={"grant_type": JWT_BEARER, "assertion": assertion},
        auth=(channel_id, secret or ""),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["expires_in"] == runtime.settings.person_token_ttl_s
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["psn"] == str(person.id)
    assert id_number not in body["access_token"]
    assert id_number not in str(claims)
    replay = await client.post(
        "/oauth/token",
        data={"grant_type": JWT_BEARER, "assertion": assertion},
        auth=(channel_id, secret or ""),
    )
    assert replay.status_code == 400
    assert replay.json()["code"] == "invalid_grant"


async def test_jwt_bearer_with_registered_key(client: Client, runtime: Runtime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    channel_id, _ = await add_client(runtime, "channel", public_key_pem=_pem(key))
    _, id_number = await add_person(runtime, name="王五")
    assertion = person_assertion(
        channel_id, key, id_number, "王五", audience=runtime.settings.issuer_url
    )
    response = await client.post(
        "/oauth/token",
        data={
            "grant_type": JWT_BEARER,
            "assertion": assertion,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": _client_assertion(channel_id, key, runtime.settings.issuer_url),
        },
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("wrong_name", 400, "identity_mismatch"),
        ("unknown_person", 400, "identity_mismatch"),
        ("expired", 400, "invalid_grant"),
        ("too_long", 400, "invalid_grant"),
        ("no_amr", 400, "invalid_grant"),
        ("bad_id", 422, "invalid_id_number"),
        ("wrong_issuer", 400, "invalid_grant"),
    ],
)
async def test_bad_person_assertions(
    client: Client, runtime: Runtime, case: str, status: int, code: str
) -> None:
    channel_id, secret = await add_client(runtime, "channel")
    _, id_number = await add_person(runtime, name="赵六")
    now = int(time.time())
    overrides: dict[str, object] = {}
    name = "赵六"
    if case == "wrong_name":
        name = "赵七"
    elif case == "unknown_person":
        from tests.factories import new_id_number

        id_number = new_id_number("110105")
    elif case == "expired":
        overrides = {"iat": now - 900, "exp": now - 600}
    elif case == "too_long":
        overrides = {"exp": now + 3600}
    elif case == "no_amr":
        overrides = {"amr": None}
    elif case == "bad_id":
        id_number = id_number[:-1] + ("0" if id_number[-1] != "0" else "1")
    elif case == "wrong_issuer":
        overrides = {"iss": "chn_someoneelse"}
    assertion = person_assertion(
        channel_id, secret, id_number, name, audience=runtime.settings.issuer_url, **overrides
    )
    response = await client.post(
        "/oauth/token",
        data={"grant_type": JWT_BEARER, "assertion": assertion},
        auth=(channel_id, secret or ""),
    )
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert id_number not in response.text


async def test_only_channels_use_the_person_grant(client: Client, runtime: Runtime) -> None:
    client_id, secret = await add_client(runtime, "institution")
    _, id_number = await add_person(runtime, name="孙八")
    assertion = person_assertion(
        client_id, secret, id_number, "孙八", audience=runtime.settings.issuer_url
    )
    response = await client.post(
        "/oauth/token",
        data={"grant_type": JWT_BEARER, "assertion": assertion},
        auth=(client_id, secret or ""),
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_grant"


async def _legacy_argon2_client(runtime: Runtime) -> tuple[str, str]:
    """A client registered before finding 1: its secret is stored as an Argon2 hash."""
    client_id, secret = await add_client(runtime, "institution")
    assert secret is not None
    async with runtime.sessions.begin() as session:
        row = await session.scalar(select(ClientRow).where(ClientRow.client_id == client_id))
        assert row is not None
        row.secret_hash = argon2.PasswordHasher().hash(secret)
    return client_id, secret


async def test_finding_01_wrong_secrets_do_not_hold_the_event_loop(
    client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy_id, _ = await _legacy_argon2_client(runtime)
    new_id, _ = await add_client(runtime, "channel")
    on_loop: list[bool] = []
    verify = argon2.PasswordHasher.verify

    def spy(self: argon2.PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:  # a worker thread has no running loop
            on_loop.append(False)
        return verify(self, hash, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", spy)

    async def wrong(client_id: str) -> int:
        response = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, "not-the-secret"),
        )
        return response.status_code

    flood = asyncio.gather(*(wrong(c) for c in [legacy_id, new_id, "ins_unknown"] * 10))
    worst = 0.0
    while not flood.done():
        started = time.perf_counter()
        await asyncio.sleep(0.01)
        assert (await client.get("/healthz")).status_code == 200
        worst = max(worst, time.perf_counter() - started - 0.01)
    assert set(await flood) == {401}
    # The deciding check: no Argon2 call ran on the loop (every one did before the fix).
    assert True not in on_loop, "an Argon2 hash was checked on the event loop"
    # A loose bound only (a loaded test machine is slow): liveness stays answered while 30 wrong
    # secrets are checked; before the fix it waited for all of them, seconds.
    assert worst < 2.0, f"/healthz waited {worst:.2f} s behind the token endpoint"


async def test_finding_01_new_secrets_are_keyed_hashes_and_old_ones_upgrade(
    client: Client, runtime: Runtime
) -> None:
    new_id, new_secret = await add_client(runtime, "channel")
    legacy_id, legacy_secret = await _legacy_argon2_client(runtime)

    async def stored(client_id: str) -> str:
        async with runtime.sessions() as session:
            value = await session.scalar(
                select(ClientRow.secret_hash).where(ClientRow.client_id == client_id)
            )
            assert value is not None
            return value

    assert (await stored(new_id)).startswith("hmac-sha256$")
    assert new_secret is not None
    assert new_secret not in await stored(new_id)
    assert (await stored(legacy_id)).startswith("$argon2")
    for _ in range(2):  # the first use upgrades the hash, the second uses the upgraded one
        response = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(legacy_id, legacy_secret),
        )
        assert response.status_code == 200, response.text
        assert (await stored(legacy_id)).startswith("hmac-sha256$")
    wrong = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(legacy_id, "nope")
    )
    assert wrong.status_code == 401


async def test_finding_11_unknown_person_and_wrong_name_get_one_answer(
    client: Client, runtime: Runtime
) -> None:
    channel_id, secret = await add_client(runtime, "channel")
    _, insured = await add_person(runtime, name="周九")
    from tests.factories import new_id_number

    answers = []
    for id_number, name in ((insured, "周十"), (new_id_number("110105"), "周九")):
        assertion = person_assertion(
            channel_id, secret, id_number, name, audience=runtime.settings.issuer_url
        )
        response = await client.post(
            "/oauth/token",
            data={"grant_type": JWT_BEARER, "assertion": assertion},
            auth=(channel_id, secret or ""),
        )
        body = response.json()
        assert body.pop("request_id")
        answers.append((response.status_code, response.headers["content-type"], body))
    # Insured with a wrong name, or not insured at all: nothing tells the two apart.
    assert answers[0] == answers[1]
    assert answers[0][0] == 400
    # The audit does tell them apart, and keeps the refusals although the requests rolled back.
    async with runtime.sessions() as session:
        rows = (
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "POST /oauth/token")
                .order_by(AuditEvent.id)
            )
        ).all()
    assert [(r.outcome, (r.detail or {}).get("reason")) for r in rows] == [
        ("identity_mismatch", "name_mismatch"),
        ("identity_mismatch", "unknown_person"),
    ]
    assert rows[0].person_id is not None
    assert rows[1].person_id is None
    assert {r.actor for r in rows} == {channel_id}
    assert insured not in repr([r.detail for r in rows])


async def test_ops_disabled_client_tokens_stop_working_within_the_refresh(
    make_app: AppFactory,
) -> None:
    app = make_app(client_status_refresh_s=1)
    runtime: Runtime = app.state.runtime
    async with open_client(app) as http:
        client_id, secret = await add_client(runtime, "institution")
        headers = {"Authorization": f"Bearer {await client_token(http, client_id, secret)}"}
        before = await http.post("/v1/verify", json={"qr": "not-a-code"}, headers=headers)
        assert before.status_code != 401, before.text
        async with runtime.sessions.begin() as session:
            assert await set_client_active(session, client_id, False) is not None
        deadline = time.monotonic() + 3
        status = before.status_code
        while status != 401 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            response = await http.post("/v1/verify", json={"qr": "not-a-code"}, headers=headers)
            status = response.status_code
        assert status == 401  # the token itself is still valid for minutes
        assert response.json()["code"] == "unauthorized"
        # and no new token for it
        refused = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret or ""),
        )
        assert refused.status_code == 401


async def _token_status(http: Client, client_id: str, secret: str) -> int:
    response = await http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    return response.status_code


async def test_ops_rotate_secret_stops_the_old_secret_at_once_or_after_the_grace(
    client: Client, runtime: Runtime, settings: Settings
) -> None:
    client_id, old = await add_client(runtime, "institution")
    assert old is not None
    out = json.loads(await run_cli(settings, "clients", "rotate-secret", client_id))
    assert out["client_id"] == client_id
    assert out["old_secret_until"] is None
    assert await _token_status(client, client_id, old) == 401
    assert await _token_status(client, client_id, out["client_secret"]) == 200
    # With a grace both work until it ends; then only the new one.
    graced = json.loads(
        await run_cli(settings, "clients", "rotate-secret", client_id, "--grace", "600")
    )
    assert graced["old_secret_until"] is not None
    assert await _token_status(client, client_id, out["client_secret"]) == 200
    assert await _token_status(client, client_id, graced["client_secret"]) == 200
    async with runtime.sessions.begin() as session:
        row = await session.scalar(select(ClientRow).where(ClientRow.client_id == client_id))
        assert row is not None
        row.previous_secret_until = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    assert await _token_status(client, client_id, out["client_secret"]) == 401
    assert await _token_status(client, client_id, graced["client_secret"]) == 200
    async with runtime.sessions() as session:
        actions = list(await session.scalars(select(AuditEvent.action)))
    assert actions.count("client.rotate_secret") == 2


async def test_ops_rotate_secret_refuses_unknown_and_public_key_clients(
    runtime: Runtime, settings: Settings
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    keyed, _ = await add_client(runtime, "institution", public_key_pem=_pem(key))
    env = {**os.environ, **settings_env(settings)}
    for client_id, message in ((keyed, "public key"), ("nobody", "no client")):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ecert.cli", "clients", "rotate-secret", client_id,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
        assert process.returncode == 1
        assert message in err.decode()
        assert not out
