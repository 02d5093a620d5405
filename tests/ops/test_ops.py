"""Health, readiness, metrics, OpenAPI, problem+json shape, size limits, request ids."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
import structlog
from click.testing import CliRunner
from prometheus_client import REGISTRY
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from ecert.app import create_app
from ecert.cli.main import main
from ecert.config import Settings, get_settings, settings_from_env
from ecert.db.migrate import schema_state, upgrade
from ecert.server.runtime import Runtime, build_runtime
from ecert.store import RedisStore, StoreUnavailable
from tests import servers
from tests.factories import credit, ec_token, holder, institution, load_policies
from tests.fixtures.app import AppFactory, open_client
from tests.helpers import Client, metric, run_cli
from tests.servers import _wait_port, free_port


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


async def test_health_and_ready(client: Client) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    # warnings depend on today's date (the working-day calendar), checked in tests/cards.
    assert {k: v for k, v in body.items() if k != "warnings"} == {
        "status": "ready",
        "database": "ok",
        "store": "ok",
        "schema": "current",
    }


async def test_ready_reports_redis_down_quickly(make_app: AppFactory) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with open_client(app) as test_client:
        async with asyncio.timeout(5):
            response = await test_client.get("/readyz")
        # A cache outage is not a node outage: still ready, the store degraded.
        assert response.status_code == 200
        assert response.json()["store"] == "degraded"
        assert response.json()["database"] == "ok"
        assert (await test_client.get("/healthz")).status_code == 200


@pytest.mark.parametrize("fault", ["stopped", "hung"])
async def test_ops_readyz_stays_ready_with_the_store_degraded(
    make_app: AppFactory, fault: str
) -> None:
    with servers.redis() as (redis_url, process):
        app = make_app(redis_url=redis_url, redis_breaker_s=30)
        async with open_client(app) as test_client:
            assert (await test_client.get("/readyz")).json()["store"] == "ok"
            if fault == "stopped":
                process.terminate()
                process.wait(10)
            else:
                os.kill(process.pid, signal.SIGSTOP)  # accepts connections, never answers
            try:
                async with asyncio.timeout(5):
                    response = await test_client.get("/readyz")
                assert response.status_code == 200, response.text
                assert response.json()["status"] == "degraded"
                assert response.json()["store"] == "degraded"
                assert response.json()["database"] == "ok"
                # The breaker is open: 20 requests that use the store do not each wait for it
                # (a call that waited and failed counts as an error; a skipped one does not).
                anonymous = {"grant_type": "client_credentials"}
                waited = _store_fallbacks("error")
                for _ in range(20):
                    refused = await test_client.post("/oauth/token", data=anonymous)
                    assert refused.status_code == 401
                assert _store_fallbacks("error") == waited
            finally:
                if fault == "hung":
                    os.kill(process.pid, signal.SIGCONT)


def _store_fallbacks(reason: str) -> float:
    """Store calls that failed after waiting (``error``) or were skipped (``circuit_open``)."""
    return REGISTRY.get_sample_value("ecert_store_fallbacks_total", {"reason": reason}) or 0.0


@pytest.fixture
def all_levels() -> Iterator[None]:
    """Another test may have configured ERROR level: let warnings through, restore after."""
    wrapper = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    yield
    structlog.configure(wrapper_class=wrapper)


@pytest.mark.usefixtures("all_levels")
async def test_ops_breaker_logs_once_and_closes_when_redis_answers_again() -> None:
    with servers.redis() as (redis_url, process), capture_logs() as logs:
        store = RedisStore(redis_url, timeout_s=0.1, breaker_s=0.3)
        try:
            assert await store.ping()
            os.kill(process.pid, signal.SIGSTOP)
            try:
                waited, skipped = _store_fallbacks("error"), _store_fallbacks("circuit_open")
                for _ in range(50):
                    with contextlib.suppress(StoreUnavailable):
                        await store.set_once("k", 5)
                # One timeout, then skipped: not 50 timeouts.
                assert _store_fallbacks("error") - waited == 1
                assert _store_fallbacks("circuit_open") - skipped == 49
                assert store.breaker.is_open
            finally:
                os.kill(process.pid, signal.SIGCONT)
            await asyncio.sleep(0.4)
            assert await store.ping()  # the probe after the interval closes the circuit
            assert not store.breaker.is_open
            assert await store.set_once("k2", 5)
        finally:
            await store.close()
    events = [entry["event"] for entry in logs]
    assert events.count("store circuit open") == 1
    assert events.count("store circuit closed") == 1


async def test_ops_a_client_fault_on_a_torn_down_connection_is_a_store_failure() -> None:
    """redis-py's cluster client raised AttributeError ('NoneType' object has no attribute
    'writelines') when a master died mid-command (CI on c51e2cb): a 500 then. Now the store
    is unavailable for that call, counted, and the caller falls back to PostgreSQL."""
    store = RedisStore("redis://127.0.0.1:9", timeout_s=0.1)

    async def torn_down() -> None:
        raise AttributeError("'NoneType' object has no attribute 'writelines'")

    errors = _store_fallbacks("error")
    try:
        # capture_logs: the breaker's log line must not go to a stream an earlier test closed.
        with capture_logs(), pytest.raises(StoreUnavailable, match="AttributeError"):
            await store._guard(torn_down())
        assert _store_fallbacks("error") - errors == 1
    finally:
        await store.close()


async def test_ops_readyz_not_ready_while_the_schema_is_behind(tmp_path: Path) -> None:
    settings = settings_from_env(
        {}, data_dir=str(tmp_path), pii_keys=f"r1:{_key()}", hash_key=_key(), log_json=False
    )
    await asyncio.to_thread(upgrade, settings.effective_database_url, "0001")
    app = create_app(settings)
    response = await app.state.schema_check.state()
    assert response == "behind"
    await app.state.runtime.engine.dispose()
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    app = create_app(settings)
    async with open_client(app) as test_client:
        ready = await test_client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["schema"] == "current"


def test_ops_db_check_fails_while_migrations_are_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECERT_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        assert runner.invoke(main, ["db", "upgrade", "--revision", "0001"]).exit_code == 0
        behind = runner.invoke(main, ["db", "check"])
        assert behind.exit_code == 1
        assert "behind" in behind.output
        assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
        current = runner.invoke(main, ["db", "check"])
        assert current.exit_code == 0, current.output
    finally:
        get_settings.cache_clear()


async def test_ops_sigterm_turns_readyz_503_while_a_settlement_completes(tmp_path: Path) -> None:
    key = _key()
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ECERT_")},
        "ECERT_DATA_DIR": str(tmp_path),
        "ECERT_PII_KEYS": f"d1:{key}",
        "ECERT_HASH_KEY": key,
        "ECERT_LOG_LEVEL": "WARNING",
        "ECERT_DRAIN_GRACE_S": "3",
    }
    settings = settings_from_env(environ)
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    runtime = build_runtime(settings)
    port = free_port()
    process = subprocess.Popen(  # noqa: ASYNC220 - starting a server, not waiting on it
        [sys.executable, "-m", "ecert.cli", "serve", "--port", str(port)],
        env=environ,
        start_new_session=True,
    )
    try:
        _wait_port(port, 60)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            await load_policies(runtime)
            person = await holder(client, runtime)
            await credit(runtime, person.person_id, 100_000)
            hospital = await institution(client, runtime, code="P37010200001", level="community")
            bill = {
                "ec_token": await ec_token(client, runtime, person, hospital),
                "med_type": "41",
                "use_account": True,
                "items": [{"code": "A", "name": "药", "item_class": "A", "amount": 1_000}],
            }
            assert (await client.get("/readyz")).status_code == 200
            settle = asyncio.create_task(
                client.post(
                    "/v1/settlements", json=bill, headers={**hospital, "Idempotency-Key": "d"}
                )
            )
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["status"] == "draining"
            settled = await settle
            assert settled.status_code == 201, settled.text
        # After the grace the server stops on its own (uvicorn's own SIGTERM handling).
        await asyncio.to_thread(process.wait, 20)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        await runtime.engine.dispose()
        await runtime.store.close()


async def test_problem_json_shape(client: Client) -> None:
    response = await client.get("/v1/nowhere", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["x-request-id"] == "abc-123"
    body = response.json()
    assert body["code"] == "not_found"
    assert body["status"] == 404
    assert body["type"] == "urn:ecert:problem:not_found"
    assert body["request_id"] == "abc-123"
    assert body["instance"] == "/v1/nowhere"


async def test_insane_request_id_is_replaced(client: Client) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "x" * 500})
    assert len(response.headers["x-request-id"]) == 32


async def test_oversized_body_is_413(client: Client, settings: Settings) -> None:
    body = "grant_type=" + "x" * (settings.max_body_bytes + 10)
    response = await client.post(
        "/oauth/token",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_openapi_and_metrics(client: Client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/oauth/token" in schema["paths"]
    assert "/healthz" in schema["paths"]
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "ecert" in metrics.text


def test_ops_schema_ahead_of_this_release_stays_ready() -> None:
    known = {"0001", "0002", "0003"}
    assert schema_state({"0003"}, {"0003"}, known) == "current"
    assert schema_state({"0001"}, {"0003"}, known) == "behind"
    assert schema_state(set(), {"0003"}, known) == "behind"
    # A newer release migrated first (rolling deployment): this node keeps serving.
    assert schema_state({"0004"}, {"0003"}, known) == "ahead"


async def test_ops_metrics_need_the_token_when_one_is_set(make_app: AppFactory) -> None:
    token = secrets.token_urlsafe(24)
    app = make_app(metrics_token=token)
    async with open_client(app) as client:
        missing = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    for refused in (missing, wrong):
        assert refused.status_code == 401
        assert refused.json()["code"] == "metrics_token_required"
    assert right.status_code == 200
    assert "ecert_requests_total" in right.text


async def test_ops_business_counters_move(client: Client, runtime: Runtime) -> None:
    await load_policies(runtime)
    person = await holder(client, runtime)
    await credit(runtime, person.person_id, 50_000)
    hospital = await institution(client, runtime)
    before = (await client.get("/metrics")).text
    code = await person.qr(client)
    verified = await client.post("/v1/verify", json={"qr": code}, headers=hospital)
    replayed = await client.post("/v1/verify", json={"qr": code}, headers=hospital)
    assert verified.status_code == 200
    replay_code = replayed.json()["code"]
    bill = {
        "med_type": "11",
        "items": [{"code": "A001", "name": "阿莫西林", "item_class": "A", "amount": 10_000}],
        "use_account": True,
        "ec_token": verified.json()["ec_token"],
    }
    key = {**hospital, "Idempotency-Key": str(uuid.uuid4())}
    for _ in range(2):  # the second is a replay: not a second settlement
        settled = await client.post("/v1/settlements", json=bill, headers=key)
        assert settled.status_code == 201
    back = f"/v1/settlements/{settled.json()['settlement_id']}/reversal"
    again = {**hospital, "Idempotency-Key": str(uuid.uuid4())}
    for _ in range(2):  # likewise
        returned = await client.post(
            back, json={"reason": "returned", "amount": 100}, headers=again
        )
        assert returned.status_code == 201, returned.text
    after = (await client.get("/metrics")).text

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("ecert_verifications_total", result="ok") == 1
    assert grew("ecert_verifications_total", result=replay_code) == 1
    assert grew("ecert_problems_total", status="409", code=replay_code) == 1
    assert grew("ecert_settlements_total", med_type="11") == 1
    assert grew("ecert_reversals_total", med_type="11") == 1
    assert metric(after, "ecert_signing_key_age_seconds", purpose="qr") >= 0
    assert "ecert_db_pool_in_use" in after
    assert metric(after, "ecert_audit_chain_intact") == -1  # no `ecert audit verify` yet


async def test_ops_store_fallbacks_are_counted(make_app: AppFactory) -> None:
    # A limit under 20 a minute has no local share (ratelimit.LocalShares): every hit asks the
    # store first, then counts locally.
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0", peer_rate_limit_per_minute=10)
    async with open_client(app) as client:
        before = (await client.get("/metrics")).text
        for _ in range(3):
            await client.post("/oauth/token", data={"grant_type": "client_credentials"})
        after = (await client.get("/metrics")).text
    assert (
        metric(after, "ecert_store_fallbacks_total") - metric(before, "ecert_store_fallbacks_total")
        >= 3
    )


async def test_ops_audit_verify_result_reaches_metrics(client: Client, settings: Settings) -> None:
    await run_cli(settings, "audit", "verify")
    scraped = (await client.get("/metrics")).text
    # The command's result travels through the shared store; the in-process one is not shared.
    assert metric(scraped, "ecert_audit_chain_intact") == (1 if settings.redis_url else -1)
    if settings.redis_url:
        assert metric(scraped, "ecert_audit_chain_verified_timestamp_seconds") > time.time() - 60


async def test_ops_startup_line_is_json_without_secrets(
    make_app: AppFactory, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app(log_json=True, log_level="INFO")
    async with open_client(app):
        pass
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "startup" in line]
    assert len(lines) == 1
    line = lines[0]
    assert line["event"] == "startup"
    assert line["issuer"] == settings.issuer_url
    assert {"version", "database", "store", "issuer_area", "timestamp"} <= set(line)
    text = json.dumps(line)
    url = make_url(settings.effective_database_url)
    secrets_ = [settings.pii_keys, settings.hash_key, settings.effective_database_url]
    for secret in [*secrets_, url.password, url.username]:
        if secret:
            assert secret not in text
    if settings.redis_url:
        assert line["store"].startswith("redis:")
    else:
        assert line["store"] == "memory"


def _settlement_body(token: str) -> dict[str, object]:
    return {
        "ec_token": token,
        "med_type": "11",
        "items": [{"code": "A001", "name": "阿莫西林", "item_class": "A", "amount": 3_000}],
        "use_account": True,
    }


@pytest.mark.postgres  # PostgreSQL read-only transactions
async def test_ops_read_only_old_primary_is_a_retryable_503_and_writes_nothing(
    make_app: AppFactory,
) -> None:
    """After a failover the old primary refuses writes (SQLSTATE 25006): a retryable 503."""
    from sqlalchemy import func, select, text

    from ecert.db.models import Settlement

    writer = make_app()
    runtime = writer.state.runtime
    async with open_client(writer) as client:
        await load_policies(runtime)
        person = await holder(client, runtime)
        await credit(runtime, person.person_id, 50_000)
        hospital = await institution(client, runtime)
        body = _settlement_body(await ec_token(client, runtime, person, hospital))
    headers = {**hospital, "Idempotency-Key": "failover-1"}
    async with runtime.engine.connect() as connection:
        await connection.execute(
            text("ALTER ROLE CURRENT_USER SET default_transaction_read_only = on")
        )
        await connection.commit()
    try:
        old_primary = make_app()  # its connections open after the change: read-only sessions
        async with open_client(old_primary) as client:
            refused = await client.post("/v1/settlements", json=body, headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (503, "unavailable"), refused.text
        assert refused.headers["Retry-After"] == "1"
    finally:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SET default_transaction_read_only = off"))
            await connection.execute(
                text("ALTER ROLE CURRENT_USER RESET default_transaction_read_only")
            )
            await connection.commit()
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Settlement)) == 0
    async with open_client(writer) as client:  # the retry reaches the (new) primary
        retry = await client.post("/v1/settlements", json=body, headers=headers)
    assert retry.status_code == 201, retry.text


@pytest.mark.postgres  # asyncpg's command_timeout
async def test_ops_command_timeout_is_a_retryable_503(make_app: AppFactory) -> None:
    """A database that does not answer (no server-side timeout can fire) ends after
    ECERT_DB_COMMAND_TIMEOUT_S with a retryable 503, not a 500; the retry settles."""
    from sqlalchemy import select

    from ecert.db.models import Account

    app = make_app(db_lock_timeout_ms=0, db_statement_timeout_ms=0, db_command_timeout_s=0.5)
    runtime = app.state.runtime
    async with open_client(app) as client:
        await load_policies(runtime)
        person = await holder(client, runtime)
        await credit(runtime, person.person_id, 50_000)
        hospital = await institution(client, runtime)
        body = _settlement_body(await ec_token(client, runtime, person, hospital))
        headers = {**hospital, "Idempotency-Key": "hung-1"}
        async with runtime.sessions.begin() as other:  # the answer never comes in time
            await other.execute(select(Account.id).with_for_update())
            stuck = await client.post("/v1/settlements", json=body, headers=headers)
        assert (stuck.status_code, stuck.json()["code"]) == (503, "unavailable"), stuck.text
        retry = await client.post("/v1/settlements", json=body, headers=headers)
        assert retry.status_code == 201, retry.text


@pytest.mark.postgres  # asyncpg only
async def test_ops_pgbouncer_mode_sends_no_startup_settings_and_caches_no_statements(
    make_app: AppFactory,
) -> None:
    from sqlalchemy import text

    app = make_app(db_pgbouncer=True)
    runtime = app.state.runtime
    async with open_client(app) as client:
        assert (await client.get("/readyz")).status_code == 200
        async with runtime.engine.connect() as connection:
            # Timeouts come from the role behind a pooler, not from start-up parameters.
            assert await connection.scalar(text("SHOW statement_timeout")) == "0"
            raw = await connection.get_raw_connection()
            assert raw.driver_connection._stmt_cache.get_max_size() == 0


def _fresh_database(settings: Settings, name: str, tmp_path: Path) -> str:
    """A new empty database beside the test one (a file on SQLite); its URL."""
    if settings.is_sqlite:
        return f"sqlite+aiosqlite:///{tmp_path / name}.db"
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def create() -> None:
        engine = create_async_engine(settings.effective_database_url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        await engine.dispose()

    asyncio.run(create())
    return settings.effective_database_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.mark.postgres  # the advisory lock is PostgreSQL's; the embedded database migrates in serve
def test_ops_two_concurrent_upgrades_both_succeed_and_migrate_once(
    settings: Settings, tmp_path: Path
) -> None:
    """Two deployment jobs run ``ecert db upgrade`` at once (two processes: alembic's context is
    process-global): the advisory lock makes the second wait, then find nothing to do."""
    from ecert.db.migrate import script_heads
    from tests.helpers import settings_env

    url = _fresh_database(settings, "ecert_upgrade_race", tmp_path)
    env = {**os.environ, **settings_env(settings), "ECERT_DATABASE_URL": url}
    jobs = [
        subprocess.Popen(
            [sys.executable, "-m", "ecert.cli", "db", "upgrade"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for job in jobs:
        _, err = job.communicate(timeout=120)
        assert job.returncode == 0, err.decode()  # neither met "relation already exists"
    runtime = build_runtime(msgspec.structs.replace(settings, database_url=url))

    async def heads() -> set[str]:
        from ecert.db.migrate import database_heads

        try:
            return await database_heads(runtime.engine)
        finally:
            await runtime.engine.dispose()

    assert asyncio.run(heads()) == script_heads()


def _cli(settings: Settings, url: str, *args: str, stdin: str = "") -> tuple[int, str, str]:
    from tests.helpers import settings_env

    env = {**os.environ, **settings_env(settings), "ECERT_DATABASE_URL": url}
    done = subprocess.run(
        [sys.executable, "-m", "ecert.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def test_ops_db_current_and_downgrade_with_confirmation(settings: Settings, tmp_path: Path) -> None:
    import json

    from ecert.db.migrate import script_heads

    url = _fresh_database(settings, "ecert_downgrade", tmp_path)
    assert _cli(settings, url, "db", "upgrade")[0] == 0
    status, out, _ = _cli(settings, url, "db", "current")
    assert status == 0
    assert json.loads(out)["database"] == sorted(script_heads())
    assert json.loads(out)["state"] == "current"
    # Without --yes it asks; "no" (or no terminal) changes nothing.
    status, _, err = _cli(settings, url, "db", "downgrade", "0001", stdin="n\n")
    assert status == 1
    assert "Aborted" in err
    assert json.loads(_cli(settings, url, "db", "current")[1])["state"] == "current"
    status, out, err = _cli(settings, url, "db", "downgrade", "0001", "--yes")
    assert status == 0, err
    assert json.loads(out.splitlines()[-1])["database"] == ["0001"]
    assert json.loads(_cli(settings, url, "db", "current")[1])["state"] == "behind"
    assert _cli(settings, url, "db", "check")[0] == 1
    assert _cli(settings, url, "db", "upgrade")[0] == 0  # and up again: the downgrades are sound
    assert json.loads(_cli(settings, url, "db", "current")[1])["state"] == "current"
