"""ecert.db.native: one statement, asyncpg on PostgreSQL and the session on SQLite, with the same
values in and out as ``session.execute``."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import bindparam, insert, select

from ecert.db import native
from ecert.db.engine import reads_only
from ecert.db.models import QrUse
from ecert.server.runtime import Runtime

_TABLE = QrUse.__table__
_INSERT = native.Native(
    insert(QrUse)
    .values(
        {c: bindparam(c, type_=_TABLE.c[c].type) for c in ("iss", "sub", "jti", "at", "expires_at")}
    )
    .values(institution_code="H-NATIVE")  # a value bound in the statement itself
    .returning(_TABLE.c.id, _TABLE.c.at)
)
_SELECT = native.Native(
    select(QrUse.jti, QrUse.at, QrUse.institution_code)
    .where(QrUse.sub == bindparam("sub"), QrUse.iss == "370102")
    .order_by(QrUse.jti)
)


async def test_a_statement_runs_with_the_same_values_in_and_out(runtime: Runtime) -> None:
    at = dt.datetime(2026, 12, 1, 5, 30, tzinfo=dt.UTC)
    async with runtime.sessions() as session:
        await reads_only(session)  # each statement its own transaction, on both backends
        for jti in ("b", "a"):
            values = {"iss": "370102", "sub": "native-sub", "jti": jti, "at": at, "expires_at": at}
            [(row_id, written)] = await native.fetch(session, _INSERT, values)
            assert isinstance(row_id, int)
            assert written == at
        rows = await native.fetch(session, _SELECT, {"sub": "native-sub"})
    assert rows == [("a", at, "H-NATIVE"), ("b", at, "H-NATIVE")]
    async with runtime.sessions() as session:  # committed: another session sees them
        orm = (await session.execute(_SELECT.statement, {"sub": "native-sub"})).all()
    assert [tuple(row) for row in orm] == rows


@pytest.mark.postgres  # SQLite runs the statement through the session, which expands it
async def test_an_expanding_in_is_refused(runtime: Runtime) -> None:
    statement = native.Native(select(QrUse.id).where(QrUse.jti.in_(["a", "b"])))
    async with runtime.sessions() as session:
        with pytest.raises(ValueError, match="expanding"):
            await native.fetch(session, statement, {})


@pytest.mark.postgres  # SQLite keeps its connection: release is a no-op there
async def test_release_gives_an_autocommitted_connection_back_but_not_an_open_transaction(
    runtime: Runtime,
) -> None:
    pool = runtime.engine.pool
    at = dt.datetime(2026, 12, 1, 5, 30, tzinfo=dt.UTC)
    values = {"iss": "370102", "sub": "release-sub", "jti": "r", "at": at, "expires_at": at}
    async with runtime.sessions() as session:
        await native.fetch(session, _INSERT, values)  # autocommitted: nothing open on it
        assert pool.checkedout() == 1  # type: ignore[attr-defined]
        await native.release(session)
        assert pool.checkedout() == 0  # type: ignore[attr-defined]
        assert await native.fetch(session, _SELECT, {"sub": "release-sub"})  # checks one out
    async with runtime.sessions() as session, native.transaction(session):
        await native.fetch(session, _INSERT, values | {"jti": "s"})
        await native.release(session)  # BEGIN was sent: the write must stay on its connection
        assert pool.checkedout() == 1  # type: ignore[attr-defined]
