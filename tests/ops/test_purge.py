"""``ecert purge``: rows past retention go, the others stay, replays stay refused, twice = once."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, insert, select

from ecert.clock import utcnow
from ecert.config import ConfigurationError, Settings, retention_floors, settings_from_env
from ecert.db.models import ECert, EcToken, IdempotencyRecord, NumericCode, QrUse, UsedJti
from ecert.ops.purge import TARGETS, purge
from ecert.server.runtime import Runtime
from tests.factories import holder, institution
from tests.fixtures.app import AppFactory, open_client
from tests.helpers import Client, run_cli

HOUR = dt.timedelta(hours=1)


def _rows(ecert: ECert, tag: str, at: dt.datetime) -> dict[type[Any], dict[str, Any]]:
    """One row of each purged table whose age column is ``at``."""
    return {
        QrUse: {"iss": "370102", "sub": ecert.pseudonym, "jti": tag, "institution_code": "H1"}
        | {"at": at, "expires_at": at},
        UsedJti: {"issuer": "c1", "jti": f"jti-{tag}", "expires_at": at},
        EcToken: {
            "token": f"ect-{tag}",
            "person_id": ecert.person_id,
            "ecert_id": ecert.id,
            "institution_code": "H1",
            "expires_at": at,
            "ecert_version": 1,
        },
        NumericCode: {"code": tag.rjust(28, "0"), "ecert_id": ecert.id, "version": 1}
        | {"expires_at": at},
        IdempotencyRecord: {"scope": "c1", "key": tag, "request_hash": "0" * 64}
        | {"started_at": at, "status": "done"},
    }


async def _count(runtime: Runtime) -> dict[str, int]:
    async with runtime.sessions() as session:
        return {
            target.name: int(
                await session.scalar(select(func.count()).select_from(target.table)) or 0
            )
            for target in TARGETS
        }


async def test_ops_purge_removes_rows_past_retention_keeps_the_rest_and_twice_is_once(
    client: Client, runtime: Runtime
) -> None:
    await holder(client, runtime)
    async with runtime.sessions.begin() as session:
        ecert = await session.scalar(select(ECert))
        assert ecert is not None
        settings = runtime.settings
        now = utcnow()
        for target in TARGETS:
            retention = dt.timedelta(seconds=getattr(settings, target.setting))
            for tag, at in (("old0", now - retention - HOUR), ("new0", now - retention + HOUR)):
                rows = _rows(ecert, tag, at)
                model = next(m for m in rows if m.__table__ is target.table)
                await session.execute(insert(model), [rows[model]])
    before = await _count(runtime)
    removed = await purge(runtime.engine, settings, now=now, batch=1)
    assert removed == {target.name: 1 for target in TARGETS}
    after = await _count(runtime)
    assert after == {name: n - 1 for name, n in before.items()}
    async with runtime.sessions() as session:
        for target in TARGETS:
            kept = (await session.execute(select(target.table))).mappings().all()
            assert all(
                "old0" not in json.dumps({k: str(v) for k, v in row.items()}) for row in kept
            ), target.name
    assert await purge(runtime.engine, settings, now=now) == {t.name: 0 for t in TARGETS}
    assert await _count(runtime) == after


async def test_ops_replay_of_a_still_valid_code_is_refused_after_purge(
    make_app: AppFactory, settings: Settings
) -> None:
    floors = retention_floors(settings)
    shortest = msgspec.structs.replace(settings, **floors)
    first = make_app(**floors)
    async with open_client(first) as client:
        runtime: Runtime = first.state.runtime
        person = await holder(client, runtime)
        hospital = await institution(client, runtime)
        code = await person.qr(client)
        verified = await client.post("/v1/verify", json={"qr": code}, headers=hospital)
        assert verified.status_code == 200
        # The purge with the shortest retention allowed, at the last moment the code is valid.
        last_valid = utcnow() + dt.timedelta(seconds=settings.qr_ttl_s + 2 * settings.leeway_s)
        await purge(runtime.engine, shortest, now=last_valid)
    if settings.redis_url:  # the store's early answer is gone too: only the database decides
        redis = aioredis.Redis.from_url(settings.redis_url)
        await redis.flushdb()
        await redis.aclose()
    second = make_app(**floors)  # (embedded: a fresh in-process store)
    async with open_client(second) as client:
        replayed = await client.post("/v1/verify", json={"qr": code}, headers=hospital)
    assert replayed.status_code == 409, replayed.text
    assert replayed.json()["code"] == "qr_replayed"


def test_ops_retention_shorter_than_a_token_lifetime_is_refused() -> None:
    floor = retention_floors(settings_from_env({}))["retention_qr_uses_s"]
    with pytest.raises(ConfigurationError, match="ECERT_RETENTION_QR_USES_S"):
        settings_from_env({"ECERT_RETENTION_QR_USES_S": str(floor - 1)})
    settings_from_env({"ECERT_RETENTION_QR_USES_S": str(floor)})


async def test_ops_purge_command_dry_run_then_run(client: Client, settings: Settings) -> None:
    await client.get("/healthz")
    dry = json.loads(await run_cli(settings, "purge", "--dry-run"))
    assert dry["dry_run"] is True
    assert set(dry["rows"]) == {t.name for t in TARGETS}
    done = json.loads(await run_cli(settings, "purge"))
    assert done["dry_run"] is False
    again = json.loads(await run_cli(settings, "purge"))
    assert again["rows"] == {t.name: 0 for t in TARGETS}
    # The partitions step ran first (PostgreSQL; nothing to do on SQLite) and is idempotent too.
    assert again["partitions"] == {"created": [], "dropped": []}


async def test_ops_db_partitions_command(client: Client, settings: Settings) -> None:
    await client.get("/healthz")
    first = json.loads(await run_cli(settings, "db", "partitions", "--ahead", "12"))
    again = json.loads(await run_cli(settings, "db", "partitions", "--ahead", "12"))
    assert again == {"created": [], "dropped": []}
    if settings.is_sqlite:
        assert first == again  # plain tables there
    else:
        assert len(first["created"]) <= 3 * 12
