"""Factories and token helpers shared by the tests."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import sys
import time
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ecert.config import Settings
from ecert.db.models import Enrolment, Person
from ecert.identity import make_id_number
from ecert.oauth.services import register_client
from ecert.persons import upsert_person
from ecert.server.runtime import Runtime

Client = httpx.AsyncClient
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_seq = iter(range(1, 10**6))


def new_id_number(area: str = "370102", birth: dt.date = dt.date(1980, 5, 17)) -> str:
    return make_id_number(area, birth, next(_seq) % 1000)


async def add_client(runtime: Runtime, kind: str, **kwargs: Any) -> tuple[str, str | None]:
    if kind == "institution":
        kwargs.setdefault("code", f"H370102{next(_seq):05d}")
        kwargs.setdefault("level", "3")
        kwargs.setdefault("area", "370102")
    async with runtime.sessions.begin() as session:
        client, secret = await register_client(
            session,
            cipher=runtime.cipher,
            kind=kind,
            name=kwargs.pop("name", f"test {kind}"),
            **kwargs,
        )
        return client.client_id, secret


async def add_person(
    runtime: Runtime,
    *,
    id_number: str | None = None,
    name: str = "张三",
    area: str = "370102",
    category: str = "employee",
    enrolment_status: str | None = "active",
    insurance_type: str = "310",
) -> tuple[Person, str]:
    number = id_number or new_id_number(area)
    async with runtime.sessions.begin() as session:
        person = await upsert_person(
            session, runtime.cipher, id_number=number, name=name, area=area, category=category
        )
        if enrolment_status is not None:
            session.add(
                Enrolment(
                    person_id=person.id,
                    insurance_type=insurance_type,
                    area=area,
                    employer="测试单位",
                    status=enrolment_status,
                    start_date=dt.date(2020, 1, 1),
                )
            )
    return person, number


async def client_token(client: Client, client_id: str, secret: str | None) -> str:
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret or ""),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def person_assertion(
    channel_id: str, key: Any, id_number: str, name: str, *, audience: str, **overrides: Any
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": channel_id,
        "sub": id_number,
        "name": name,
        "amr": ["face"],
        "aud": audience,
        "iat": now,
        "exp": now + 120,
        "jti": secrets.token_urlsafe(16),
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    algorithm = "HS256" if isinstance(key, str) else "ES256"
    return jwt.encode(claims, key, algorithm=algorithm)


async def person_token(
    client: Client, runtime: Runtime, channel: tuple[str, str | None], id_number: str, name: str
) -> str:
    channel_id, secret = channel
    assert secret is not None
    assertion = person_assertion(
        channel_id, secret, id_number, name, audience=runtime.settings.issuer_url
    )
    response = await client.post(
        "/oauth/token",
        data={"grant_type": JWT_BEARER, "assertion": assertion},
        auth=(channel_id, secret),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def province_token(client: Client, runtime: Runtime, area: str = "440106") -> str:
    """Another province's ecert registered here (private_key_jwt), and its access token."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    client_id, _ = await add_client(runtime, "province", area=area, public_key_pem=public.decode())
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": client_id,
            "sub": client_id,
            "aud": runtime.settings.issuer_url,
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(16),
        },
        key,
        algorithm="ES256",
    )
    response = await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``ECERT_*`` variables an operator's command needs to reach the test's deployment (a
    PostgreSQL URL means production mode, which wants the issuer spelt out)."""
    return {
        "ECERT_DATABASE_URL": settings.effective_database_url,
        "ECERT_REDIS_URL": settings.redis_url,
        "ECERT_DATA_DIR": settings.data_dir,
        "ECERT_PII_KEYS": settings.pii_keys,
        "ECERT_HASH_KEY": settings.hash_key,
        "ECERT_PII_ACTIVE_KEY": settings.pii_active_key,
        "ECERT_HASH_ACTIVE_KEY": settings.hash_active_key,
        "ECERT_AUDIT_KEY": settings.audit_key,
        "ECERT_ISSUER_URL": settings.issuer_url,
        "ECERT_ISSUER_AREA": settings.issuer_area,
    }


async def run_cli(settings: Settings, *args: str, stdin: str = "", ok: bool = True) -> str:
    """Run ``ecert ARGS`` as an operator would: another process, its own runtime and store.

    ``stdin`` is what the operator types or pipes (ID numbers, passwords); with ``ok=False`` the
    command must fail, and its error output is returned."""
    env = {**os.environ, **settings_env(settings)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ecert.cli",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(stdin.encode())
    assert (process.returncode == 0) is ok, (out + err).decode()
    return (out if ok else err).decode()


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` of an exposition whose labels include ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )
