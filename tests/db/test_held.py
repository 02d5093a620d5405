"""ecert.db.held: a group writer's own connection — kept between statements, replaced when it
died, was cancelled midway, or was held past the pool's recycle time."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import bindparam, event, func, literal, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from ecert.db import native
from ecert.db.held import HeldConnection
from ecert.server.runtime import Runtime

pytestmark = pytest.mark.postgres  # the group writers are PostgreSQL's

_PID = native.Native(select(func.pg_backend_pid()))
_SLEEP = native.Native(select(func.pg_sleep(bindparam("s"))))
_UNKNOWN = native.Native(
    select(literal(1)).where(func.ecert_no_such_function(bindparam("x")).is_(None))
)


async def _pid(held: HeldConnection) -> int:
    [(pid,)] = await held.fetch(_PID, {})
    return int(pid)


def _held(runtime: Runtime, recycle_s: float = -1) -> HeldConnection:
    assert runtime.group_engine is not None
    return HeldConnection(runtime.group_engine, recycle_s)


async def test_statements_share_one_connection(runtime: Runtime) -> None:
    held = _held(runtime)
    try:
        assert await _pid(held) == await _pid(held)
    finally:
        await held.close()


async def test_a_dropped_connection_fails_once_and_the_next_statement_reconnects(
    runtime: Runtime,
) -> None:
    """Terminated while its statement runs (terminated while idle, asyncpg may notice first:
    then the next statement simply reconnects, which the last line checks as well)."""
    held = _held(runtime)
    try:
        first = await _pid(held)
        sleeping = asyncio.create_task(held.fetch(_SLEEP, {"s": 5}))
        await asyncio.sleep(0.2)
        async with runtime.engine.connect() as other:
            await other.exec_driver_sql(f"SELECT pg_terminate_backend({first})")
        with pytest.raises(OperationalError) as failed:
            await sleeping
        assert failed.value.connection_invalidated  # a retryable 503, and the spend's one retry
        assert await _pid(held) != first
    finally:
        await held.close()


async def test_a_statement_error_keeps_the_connection(runtime: Runtime) -> None:
    held = _held(runtime)
    try:
        first = await _pid(held)
        with pytest.raises(DBAPIError, match="ecert_no_such_function") as failed:
            await held.fetch(_UNKNOWN, {"x": 1})
        assert not isinstance(failed.value, IntegrityError | OperationalError)
        assert await _pid(held) == first
    finally:
        await held.close()


async def test_a_cancelled_statement_leaves_a_fresh_connection_for_the_next(
    runtime: Runtime,
) -> None:
    held = _held(runtime)
    try:
        first = await _pid(held)
        sleeping = asyncio.create_task(held.fetch(_SLEEP, {"s": 5}))
        await asyncio.sleep(0.2)
        sleeping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeping
        assert await _pid(held) != first
    finally:
        await held.close()


async def test_a_connection_past_the_recycle_time_goes_back_to_the_pool(runtime: Runtime) -> None:
    """Checked in and out again, so that the pool's own recycling (``pool_recycle``) applies."""
    assert runtime.group_engine is not None
    checkins: list[object] = []

    def counted(*_: object) -> None:
        checkins.append(None)

    event.listen(runtime.group_engine.sync_engine.pool, "checkin", counted)
    held = _held(runtime, recycle_s=0)
    try:
        await _pid(held)
        await asyncio.sleep(0.01)
        await _pid(held)
        assert len(checkins) == 1
    finally:
        await held.close()
        event.remove(runtime.group_engine.sync_engine.pool, "checkin", counted)


async def test_close_gives_the_connection_back_to_the_pool(runtime: Runtime) -> None:
    assert runtime.group_engine is not None
    pool = runtime.group_engine.pool
    held = _held(runtime)
    await _pid(held)
    out = pool.checkedout()  # type: ignore[attr-defined]
    await held.close()
    assert pool.checkedout() == out - 1  # type: ignore[attr-defined]
