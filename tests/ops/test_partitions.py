"""Daily partitions of the short-lived tables (PostgreSQL): made ahead, dropped whole past
retention with their rows, a DEFAULT partition's rows moved into their day, replays refused
across a day boundary, and migration 0013 up and down with data."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from ecert.clock import utcnow
from ecert.config import Settings
from ecert.db.migrate import downgrade, upgrade
from ecert.db.models import QrUse, UsedJti
from ecert.db.partitions import create_day
from ecert.db.upsert import insert_ignore
from ecert.ops.partitions import maintain
from ecert.server.runtime import Runtime
from tests.ops.test_ops import _fresh_database

pytestmark = pytest.mark.postgres

DAY = dt.timedelta(days=1)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


async def _where(runtime: Runtime, table: str, column: str, value: Any) -> list[str]:
    """The partitions holding the table's rows with ``column = value``."""
    async with runtime.engine.connect() as connection:
        rows = await connection.execute(
            text(f"SELECT tableoid::regclass::text FROM {table} WHERE {column} = :v"),  # noqa: S608
            {"v": value},
        )
        return [r[0] for r in rows]


async def test_partitions_are_made_ahead_and_old_ones_dropped_with_their_rows(
    runtime: Runtime,
) -> None:
    now = utcnow()
    today = now.date()
    old_day = today - 10 * DAY  # past used_jtis' one-day retention
    async with runtime.engine.begin() as connection:
        await connection.run_sync(create_day, "used_jtis", old_day)
    async with runtime.engine.begin() as connection:
        old = {
            "issuer": "c1",
            "jti": "old-jti-1",
            "expires_at": _midnight(old_day) + dt.timedelta(hours=3),
        }
        fresh = {"issuer": "c1", "jti": "new-jti-1", "expires_at": now + dt.timedelta(minutes=5)}
        # A day nobody made a partition for yet: the DEFAULT partition catches it.
        later = {"issuer": "c1", "jti": "later-jti", "expires_at": _midnight(today + 9 * DAY)}
        await connection.execute(insert(UsedJti), [old, fresh, later])
    assert await _where(runtime, "used_jtis", "jti", "later-jti") == ["used_jtis_default"]

    done = await maintain(runtime.engine, runtime.settings, now=now, ahead=10)
    assert f"used_jtis_p{old_day:%Y%m%d}" in done.dropped
    for day in (today + 7 * DAY, today + 9 * DAY):
        assert f"used_jtis_p{day:%Y%m%d}" in done.created
        assert f"qr_uses_p{day:%Y%m%d}" in done.created
    # The caught row moved into its new day; the old partition went with its row; today's stays.
    assert await _where(runtime, "used_jtis", "jti", "later-jti") == [
        f"used_jtis_p{today + 9 * DAY:%Y%m%d}"
    ]
    assert await _where(runtime, "used_jtis", "jti", "old-jti-1") == []
    assert await _where(runtime, "used_jtis", "jti", "new-jti-1") == [f"used_jtis_p{today:%Y%m%d}"]
    # Twice is once.
    again = await maintain(runtime.engine, runtime.settings, now=now, ahead=10)
    assert (again.created, again.dropped) == ([], [])


async def test_a_replay_across_a_day_boundary_is_still_refused(runtime: Runtime) -> None:
    """The partition key is the code's own expiry, not the clock at the scan: a code scanned at
    23:59:59 and again at 00:00:01 meets the same unique key in the same partition."""
    midnight = _midnight(utcnow().date() + DAY)
    use = {"iss": "370102", "sub": "s" * 24, "jti": "j" * 16, "institution_code": "H1"}
    exp = midnight + dt.timedelta(seconds=30)
    async with runtime.sessions.begin() as session:
        first = await insert_ignore(
            session,
            QrUse.__table__,
            {**use, "at": midnight - dt.timedelta(seconds=1), "expires_at": exp},
            returning=QrUse.__table__.c.id,
        )
    async with runtime.sessions.begin() as session:
        replay = await insert_ignore(
            session,
            QrUse.__table__,
            {**use, "at": midnight + dt.timedelta(seconds=1), "expires_at": exp},
            returning=QrUse.__table__.c.id,
        )
    assert first is not None
    assert replay is None
    # Likewise an OAuth assertion's jti (its exp is signed).
    jti = {"issuer": "c1", "jti": "assertion-1", "expires_at": midnight}
    async with runtime.sessions.begin() as session:
        assert (
            await insert_ignore(session, UsedJti.__table__, jti, returning=UsedJti.id) is not None
        )
    async with runtime.sessions.begin() as session:
        assert await insert_ignore(session, UsedJti.__table__, jti, returning=UsedJti.id) is None


def test_migration_0013_converts_the_tables_with_their_data_and_back(
    settings: Settings, tmp_path: Path
) -> None:
    url = _fresh_database(settings, "ecert_partitions", tmp_path)
    upgrade(url, "0015")
    at = utcnow() - dt.timedelta(minutes=1)
    soon = utcnow() + 2 * DAY

    async def run(*statements: str, params: dict[str, Any] | None = None) -> list[Any]:
        engine = create_async_engine(url)
        out = []
        async with engine.begin() as connection:
            for statement in statements:
                result = await connection.execute(text(statement), params or {})
                out.append(result.all() if result.returns_rows else [])
        await engine.dispose()
        return out

    kinds = (
        "SELECT relname, relkind::text FROM pg_class WHERE relname IN "
        "('qr_uses', 'used_jtis', 'numeric_codes') ORDER BY relname"
    )
    asyncio.run(
        run(
            "INSERT INTO qr_uses (iss, sub, jti, institution_code, at) "
            "VALUES ('370102', 'sub1', 'jti1', 'H1', :at)",
            "INSERT INTO used_jtis (issuer, jti, expires_at) VALUES ('c1', 'j1', :soon)",
            params={"at": at, "soon": soon},
        )
    )
    upgrade(url, "heads")
    parted, qr, jti = asyncio.run(
        run(
            kinds,
            "SELECT jti, expires_at > at FROM qr_uses",
            "SELECT jti, tableoid::regclass::text FROM used_jtis",
        )
    )
    assert parted == [("numeric_codes", "p"), ("qr_uses", "p"), ("used_jtis", "p")]
    assert qr == [("jti1", True)]
    assert jti == [("j1", f"used_jtis_p{soon:%Y%m%d}")]  # moved out of DEFAULT into its day
    # A new row takes the next id of the same sequence.
    asyncio.run(run("INSERT INTO used_jtis (issuer, jti, expires_at) VALUES ('c1', 'j2', now())"))

    downgrade(url, "0015")
    plain, ids = asyncio.run(run(kinds, "SELECT jti FROM used_jtis ORDER BY id"))
    assert plain == [("numeric_codes", "r"), ("qr_uses", "r"), ("used_jtis", "r")]
    assert ids == [("j1",), ("j2",)]
    upgrade(url, "heads")  # and up again
    assert asyncio.run(run(kinds))[0] == parted
