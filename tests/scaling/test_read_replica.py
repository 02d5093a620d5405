"""The person's lookups on a streaming replica, shown by the replica's own statistics; the
primary takes over when the replica lags past the bound or stops, and no lookup fails."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable

import pytest
from litestar import Litestar
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from ecert.db.replica import READ_BOUND_S
from ecert.server.runtime import Runtime
from tests import servers
from tests.factories import Holder, holder
from tests.fixtures.app import AppFactory, open_client
from tests.helpers import Client

pytestmark = pytest.mark.postgres

Pair = tuple[servers.PgServer, servers.PgServer]


def _served(by: str) -> float:
    return REGISTRY.get_sample_value("ecert_replica_reads_total", {"served_by": by}) or 0.0


async def _sql(server: servers.PgServer, statement: str) -> object:
    """One statement on that server, on a connection of its own."""
    engine = create_async_engine(server.url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.scalar(text(statement))
    finally:
        await engine.dispose()


async def _contribution_scans(server: servers.PgServer) -> int:
    """Scans of ``contributions`` (read by lookups alone) as that server itself counted them."""
    found = await _sql(
        server,
        "SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables"
        " WHERE relname = 'contributions'",
    )
    assert isinstance(found, int)
    return found


async def _scans_reach(server: servers.PgServer, at_least: int) -> int:
    """A backend reports its counters when idle, about once a second: wait for them."""
    deadline = time.monotonic() + 10
    found = await _contribution_scans(server)
    while found < at_least and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        found = await _contribution_scans(server)
    return found


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 20
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


def _paused(replica: servers.PgServer) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await _sql(replica, "SELECT pg_get_wal_replay_pause_state()") == "paused"

    return check


async def _caught_up(runtime: Runtime) -> None:
    replica = runtime.replica
    assert replica is not None

    async def check() -> bool:
        return await replica.lag() == 0

    await _until(check, "the replica did not catch up")
    await asyncio.sleep(0.2)  # past the worker's check interval: its next check sees it


async def _lookups(client: Client, person: Holder, times: int) -> None:
    for _ in range(times):
        response = await client.get("/v1/me/contributions", headers=person.headers)
        assert response.status_code == 200, response.text
        assert response.json()["total"] == 0


async def test_lookups_are_served_by_the_replica(replica_app: Litestar, replicated: Pair) -> None:
    primary, replica = replicated
    runtime: Runtime = replica_app.state.runtime
    async with open_client(replica_app) as client:
        person = await holder(client, runtime)
        await _caught_up(runtime)
        on_replica = await _contribution_scans(replica)
        await asyncio.sleep(1.5)  # the primary's own counters of the set-up are reported
        on_primary = await _contribution_scans(primary)
        served = _served("replica")
        await _lookups(client, person, 10)
        assert _served("replica") - served == 10
        assert await _scans_reach(replica, on_replica + 10) >= on_replica + 10
        await asyncio.sleep(1.5)
        assert await _contribution_scans(primary) == on_primary  # not one scan on the primary


async def test_a_lagging_replica_is_bypassed(replica_app: Litestar, replicated: Pair) -> None:
    _, replica = replicated
    runtime: Runtime = replica_app.state.runtime
    assert runtime.replica is not None
    async with open_client(replica_app) as client:
        await holder(client, runtime, name="王五")
        await _caught_up(runtime)
        await _sql(replica, "SELECT pg_wal_replay_pause()")
        await _until(_paused(replica), "replay did not pause")  # a pause is first a request
        try:
            # Registered while the replica stands still: only the primary knows this person.
            late = await holder(client, runtime, name="赵六")
            await asyncio.sleep(1.0)  # beyond the 0.5 s bound
            served = _served("primary")
            await _lookups(client, late, 3)
            assert _served("primary") - served == 3
            assert runtime.replica.reason == "lagging"
        finally:
            await _sql(replica, "SELECT pg_wal_replay_resume()")
        await _caught_up(runtime)
        served = _served("replica")
        await _lookups(client, late, 2)
        assert _served("replica") - served == 2


async def test_a_stopped_replica_falls_back_to_the_primary(
    replica_app: Litestar, replicated: Pair
) -> None:
    _, replica = replicated
    runtime: Runtime = replica_app.state.runtime
    assert runtime.replica is not None
    async with open_client(replica_app) as client:
        person = await holder(client, runtime)
        await _caught_up(runtime)
        await _lookups(client, person, 1)
        replica.stop()
        try:
            fallen = _served("primary") + _served("primary_after_error")
            await _lookups(client, person, 5)  # never an error for the caller
            assert _served("primary") + _served("primary_after_error") - fallen == 5
            assert runtime.replica.reason != "ok"
        finally:
            replica.start()
        await _caught_up(runtime)
        served = _served("replica")
        await _lookups(client, person, 2)
        assert _served("replica") - served == 2


async def test_a_server_that_is_no_replica_is_not_used(
    make_app: AppFactory, replicated: Pair
) -> None:
    """The read URL pointing at the primary itself (or at a promoted former replica)."""
    primary, _ = replicated
    app = make_app(database_url=primary.url, database_read_url=primary.url)
    runtime: Runtime = app.state.runtime
    async with open_client(app) as client:
        person = await holder(client, runtime)
        served = _served("primary")
        await _lookups(client, person, 2)
        assert _served("primary") - served == 2
        assert runtime.replica is not None
        assert runtime.replica.reason == "not_a_replica"


async def test_a_hung_replica_costs_a_lookup_the_read_bound(
    make_app: AppFactory, replicated: Pair
) -> None:
    """Replica processes stopped (SIGSTOP) between two checks: the lookup that meets it gives up
    after READ_BOUND_S and reads the primary; the next ones go to the primary at once."""
    primary, replica = replicated
    app = make_app(
        database_url=primary.url, database_read_url=replica.url, database_read_check_s=60
    )
    runtime: Runtime = app.state.runtime
    async with open_client(app) as client:
        person = await holder(client, runtime)
        await _caught_up(runtime)
        await _lookups(client, person, 1)  # checked once: used for the next 60 s
        replica.signal(signal.SIGSTOP)
        try:
            errors, started = _served("primary_after_error"), time.monotonic()
            await _lookups(client, person, 1)
            assert READ_BOUND_S <= time.monotonic() - started < READ_BOUND_S + 3
            assert _served("primary_after_error") - errors == 1
            started = time.monotonic()
            await _lookups(client, person, 3)
            assert time.monotonic() - started < 1
        finally:
            replica.signal(signal.SIGCONT)
