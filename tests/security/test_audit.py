"""The audit log: refusals are recorded, rows are chained, and the chain shows tampering."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from ecert.cli.main import main
from ecert.clock import utcnow
from ecert.config import Settings, get_settings
from ecert.db.models import AuditAnchor, AuditEvent
from ecert.security import auditchain, auditpurge
from ecert.server.runtime import Runtime, build_runtime
from tests.factories import add_client, add_person, holder, institution, set_enrolment
from tests.fixtures.app import clean
from tests.fixtures.auth import JWT_BEARER, person_assertion
from tests.fixtures.database import Backend
from tests.helpers import Client, run_cli, settings_env


async def _rows(runtime: Runtime) -> list[AuditEvent]:
    async with runtime.sessions() as session:
        return list((await session.scalars(select(AuditEvent).order_by(AuditEvent.id))).all())


async def test_finding_12_refused_verifies_leave_audit_rows(
    client: Client, runtime: Runtime
) -> None:
    person = await holder(client, runtime)
    hospital = await institution(client, runtime)
    code = await person.qr(client)
    ok = await client.post("/v1/verify", json={"qr": code}, headers=hospital)
    assert ok.status_code == 200
    replay = await client.post("/v1/verify", json={"qr": code}, headers=hospital)
    assert replay.json()["code"] == "qr_replayed"
    await set_enrolment(runtime, person, "paused")
    fresh = await person.qr(client)
    refused = await client.post("/v1/verify", json={"qr": fresh}, headers=hospital)
    assert refused.json()["code"] == "not_enrolled"
    rows = [r for r in await _rows(runtime) if r.action.endswith("/v1/verify")]
    assert [r.outcome for r in rows] == ["qr_replayed", "not_enrolled"]
    for row in rows:
        assert row.action == "POST /v1/verify"
        assert row.actor_kind == "institution"
        assert row.person_id == person.person_id
        assert row.request_id
        assert person.id_number not in repr(row.detail)


async def test_finding_12_every_row_is_chained(client: Client, runtime: Runtime) -> None:
    person = await holder(client, runtime)
    hospital = await institution(client, runtime)
    for _ in range(2):
        await client.post("/v1/verify", json={"qr": await person.qr(client)}, headers=hospital)
    rows = await _rows(runtime)
    assert len(rows) >= 4
    assert all(row.chain is not None and 1 <= row.chain <= auditchain.CHAINS for row in rows)
    for chain in {row.chain for row in rows}:
        on_chain = [row for row in rows if row.chain == chain]
        assert on_chain[0].prev_hash == auditchain.GENESIS
        for before, after in itertools.pairwise(on_chain):
            assert after.prev_hash == before.row_hash
    async with runtime.sessions() as session:
        assert await auditchain.verify(session, auditchain.audit_key(runtime)) is None


async def test_every_chain_has_a_head_and_the_last_one_takes_rows(runtime: Runtime) -> None:
    """Migration 0017 added heads 17..64 (and a wiped table is seeded with as many), and a row
    appended on the last chain moves its head (the trigger survives SQLite's table rebuild)."""
    async with runtime.sessions.begin() as session:
        # Tests wipe the heads between them; the first append seeds them again (auditchain).
        session.add(AuditEvent(actor="c", actor_kind="agency", action="a", outcome="ok"))
    async with runtime.sessions() as session:
        found = await session.execute(text("SELECT id, last_hash FROM audit_chain_head"))
        heads: dict[int, str] = {int(row[0]): str(row[1]) for row in found}
    assert sorted(heads) == list(range(1, auditchain.CHAINS + 1))
    async with runtime.sessions.begin() as session:
        # As a hot path whose first statement locked this head (free_head_cte) does.
        await auditchain.take_link(session, auditchain.CHAINS, heads[auditchain.CHAINS])
        row = AuditEvent(actor="c", actor_kind="agency", action="a", outcome="ok")
        session.add(row)
    async with runtime.sessions() as session:
        moved = (
            await session.execute(
                text("SELECT last_id FROM audit_chain_head WHERE id = :c"), {"c": auditchain.CHAINS}
            )
        ).scalar_one()
        assert (row.chain, moved) == (auditchain.CHAINS, row.id)
        assert await auditchain.verify(session, auditchain.audit_key(runtime)) is None


@pytest.mark.postgres  # SQLite has no roles or triggers here: audit verify detects changes there
async def test_finding_12_audit_rows_cannot_be_changed_on_postgresql(
    client: Client, runtime: Runtime
) -> None:
    await holder(client, runtime)
    first = (await _rows(runtime))[0]
    for statement in (
        update(AuditEvent).where(AuditEvent.id == first.id).values(outcome="forged"),
        delete(AuditEvent).where(AuditEvent.id == first.id),
        delete(AuditEvent),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with runtime.sessions.begin() as session:
                await session.execute(statement)
    assert (await _rows(runtime))[0].outcome == first.outcome


async def _tamper(settings: Settings, how: str) -> int:
    """Add a few audited requests' worth of rows, then tamper as the owner; the row to name."""
    runtime = build_runtime(settings)
    try:
        async with runtime.sessions.begin() as session:
            for n in range(5):
                session.add(
                    AuditEvent(actor=f"c{n}", actor_kind="agency", action="a", outcome="ok")
                )
        rows = await _rows(runtime)
        victim = rows[2].id
        async with runtime.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # The owner (here a superuser) can switch the append-only trigger off.
                await connection.execute(text("SET LOCAL session_replication_role = replica"))
            if how == "change":
                await connection.execute(
                    update(AuditEvent).where(AuditEvent.id == victim).values(outcome="forged")
                )
                return victim
            if how == "cut":  # the newest row: only the head still knows it
                await connection.execute(delete(AuditEvent).where(AuditEvent.id == rows[-1].id))
                return rows[-1].id
            await connection.execute(delete(AuditEvent).where(AuditEvent.id == victim))
            return rows[3].id
    finally:
        await runtime.store.close()
        await runtime.engine.dispose()


async def _cleanup(settings: Settings) -> None:
    runtime = build_runtime(settings)
    try:
        await clean(runtime, settings.redis_url)
    finally:
        await runtime.store.close()
        await runtime.engine.dispose()


@pytest.mark.parametrize("how", ["change", "delete", "cut"])
def test_finding_12_audit_verify_names_the_first_broken_row(
    backend: Backend, how: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = backend.settings
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        intact = CliRunner().invoke(main, ["audit", "verify"])
        assert intact.exit_code == 0, intact.output
        broken = asyncio.run(_tamper(settings, how))
        result = CliRunner().invoke(main, ["audit", "verify"])
        assert result.exit_code == 1, result.output
        assert f"row {broken}" in result.output
    finally:
        get_settings.cache_clear()
        asyncio.run(_cleanup(settings))
    assert os.environ.get("ECERT_DATABASE_URL") == settings.effective_database_url


async def test_finding_12_failed_person_assertions_leave_audit_rows(
    client: Client, runtime: Runtime
) -> None:
    channel_id, secret = await add_client(runtime, "channel")
    person, id_number = await add_person(runtime, name="钱多多")
    wrong_name = person_assertion(
        channel_id, secret, id_number, "钱少少", audience=runtime.settings.issuer_url
    )
    response = await client.post(
        "/oauth/token",
        data={"grant_type": JWT_BEARER, "assertion": wrong_name},
        auth=(channel_id, secret or ""),
    )
    assert response.status_code >= 400
    rows = await _rows(runtime)
    assert [(r.actor, r.action, r.outcome) for r in rows] == [
        (channel_id, "POST /oauth/token", response.json()["code"])
    ]
    assert rows[0].person_id == person.id
    assert id_number not in repr(rows[0].detail)


async def test_finding_12_concurrent_appends_do_not_fork_the_chain(runtime: Runtime) -> None:
    async def append(n: int) -> None:
        async with runtime.sessions.begin() as session:
            session.add(AuditEvent(actor=f"c{n}", actor_kind="agency", action="a", outcome="ok"))

    await asyncio.gather(*(append(n) for n in range(20)))
    rows = await _rows(runtime)
    assert len(rows) == 20
    # No two rows claim the same predecessor on their chain (each chain starts at GENESIS once).
    assert len({(r.chain, r.prev_hash) for r in rows}) == 20
    async with runtime.sessions() as session:
        assert await auditchain.verify(session, auditchain.audit_key(runtime)) is None


@pytest.mark.postgres  # SQLite has one writer: its appends all go on chain 1
async def test_concurrent_appends_spread_over_chains(runtime: Runtime) -> None:
    # The heads, as migration 0005 leaves them (the test database was wiped: the first append
    # seeds them).
    await _add_audit_rows(runtime, None, 1)

    async def append(n: int) -> None:
        async with runtime.sessions.begin() as session:
            session.add(AuditEvent(actor=f"c{n}", actor_kind="agency", action="a", outcome="ok"))
            await session.flush()  # the chain is locked from here to the commit
            await asyncio.sleep(0.05)  # held while the others take theirs

    await asyncio.gather(*(append(n) for n in range(20)))
    rows = (await _rows(runtime))[1:]
    assert len(rows) == 20
    assert len({row.chain for row in rows}) > 1
    assert len({(r.chain, r.prev_hash) for r in await _rows(runtime)}) == 21  # no fork
    assert await _verify(runtime) is None


async def test_a_row_moved_to_another_chain_is_detected(runtime: Runtime) -> None:
    await _add_audit_rows(runtime, None, 3)
    rows = await _rows(runtime)
    assert len({row.chain for row in rows}) == 1  # one transaction: one chain
    moved = rows[1]
    assert moved.chain is not None
    other = moved.chain % auditchain.CHAINS + 1
    async with runtime.engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # the owner switching the triggers off
            await connection.execute(text("SET LOCAL session_replication_role = replica"))
        await connection.execute(
            update(AuditEvent).where(AuditEvent.id == moved.id).values(chain=other)
        )
    broken = await _verify(runtime)
    assert broken is not None
    assert broken.row_id == moved.id
    # Its MAC covers the chain: even re-linked on the other chain's start it does not check out.
    async with runtime.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SET LOCAL session_replication_role = replica"))
        await connection.execute(
            update(AuditEvent).where(AuditEvent.id == moved.id).values(prev_hash=auditchain.GENESIS)
        )
    broken = await _verify(runtime)
    assert broken is not None
    assert broken.row_id == moved.id
    assert "MAC" in broken.reason


async def _add_audit_rows(runtime: Runtime, at: dt.datetime | None, n: int) -> None:
    async with runtime.sessions.begin() as session:
        for i in range(n):
            session.add(
                AuditEvent(actor=f"c{i}", actor_kind="agency", action="a", outcome="ok", at=at)
            )


async def _verify(runtime: Runtime) -> auditchain.Break | None:
    async with runtime.sessions() as session:
        return await auditchain.verify(session, auditchain.audit_key(runtime))


async def test_ops_audit_purge_leaves_an_anchor_the_chain_verifies_from(runtime: Runtime) -> None:
    now = utcnow()
    await _add_audit_rows(runtime, now - dt.timedelta(days=100), 6)
    await _add_audit_rows(runtime, None, 3)
    kept = [row.id for row in (await _rows(runtime))[6:]]
    key = auditchain.audit_key(runtime)
    cutoff = now - dt.timedelta(days=30)
    async with runtime.sessions() as session:
        assert await auditpurge.count_purgeable(session, cutoff) == 6
    assert await auditpurge.purge_audit(runtime.sessions, key, cutoff, batch=4) == 6
    assert [row.id for row in await _rows(runtime)] == kept
    assert await _verify(runtime) is None
    async with runtime.sessions() as session:
        written = await auditchain.anchors(session)
    # The six old rows were one transaction, so one chain: one anchor per batch, on that chain.
    assert [a.rows for a in written] == [4, 2]
    assert len({a.chain for a in written}) == 1
    assert written[0].chain is not None
    # Twice is once: nothing older than the cutoff is left, and no anchor is added.
    assert await auditpurge.purge_audit(runtime.sessions, key, cutoff) == 0
    async with runtime.sessions() as session:
        assert len(await auditchain.anchors(session)) == 2
    await _add_audit_rows(runtime, None, 1)  # appends go on after a purge
    assert await _verify(runtime) is None


async def test_ops_audit_rows_deleted_past_the_anchor_or_a_dropped_anchor_still_break(
    runtime: Runtime,
) -> None:
    now = utcnow()
    await _add_audit_rows(runtime, now - dt.timedelta(days=100), 2)
    await _add_audit_rows(runtime, None, 3)
    key = auditchain.audit_key(runtime)
    await auditpurge.purge_audit(runtime.sessions, key, now - dt.timedelta(days=30))
    first_kept = (await _rows(runtime))[0].id
    async with runtime.engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # the owner switching the triggers off
            await connection.execute(text("SET LOCAL session_replication_role = replica"))
        await connection.execute(delete(AuditEvent).where(AuditEvent.id == first_kept))
    broken = await _verify(runtime)
    assert broken is not None
    assert broken.row_id == first_kept + 1
    async with runtime.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SET LOCAL session_replication_role = replica"))
        await connection.execute(delete(AuditAnchor))
    assert await _verify(runtime) is not None


async def test_ops_audit_purge_command_and_anchors_are_append_only(
    runtime: Runtime, settings: Settings
) -> None:
    await _add_audit_rows(
        runtime, utcnow() - dt.timedelta(days=settings.retention_audit_days + 1), 2
    )
    await _add_audit_rows(runtime, None, 1)
    dry = json.loads(await run_cli(settings, "audit", "purge", "--dry-run"))
    assert dry == {"dry_run": True, "rows": 2}
    assert json.loads(await run_cli(settings, "audit", "purge"))["rows"] == 2
    assert json.loads(await run_cli(settings, "audit", "purge"))["rows"] == 0
    await run_cli(settings, "audit", "verify")
    if runtime.settings.is_sqlite:
        return
    with pytest.raises(DBAPIError, match="append-only"):
        async with runtime.sessions.begin() as session:
            await session.execute(delete(AuditAnchor))


@pytest.mark.postgres  # SQLite has one writer: its appends all go on chain 1
async def test_ops_audit_purge_anchors_every_chain_it_cuts(runtime: Runtime) -> None:
    old = utcnow() - dt.timedelta(days=100)
    await _add_audit_rows(runtime, old, 1)  # also seeds the wiped heads
    async with runtime.sessions.begin() as one, runtime.sessions.begin() as two:
        for session in (one, two):  # both hold a chain at once: two chains
            session.add(
                AuditEvent(actor="c", actor_kind="agency", action="a", outcome="ok", at=old)
            )
            await session.flush()
    await _add_audit_rows(runtime, None, 2)
    rows = await _rows(runtime)
    assert rows[1].chain != rows[2].chain
    key = auditchain.audit_key(runtime)
    assert await auditpurge.purge_audit(runtime.sessions, key, old + dt.timedelta(days=1)) == 3
    async with runtime.sessions() as session:
        written = await auditchain.anchors(session)
    assert {a.chain for a in written} == {row.chain for row in rows[:3]}
    assert sum(a.rows for a in written) == 3
    assert [a.through_id for a in written] == sorted(a.through_id for a in written)
    assert await _verify(runtime) is None
    await _add_audit_rows(runtime, None, 1)  # appends go on, on any chain
    assert await _verify(runtime) is None


async def test_a_transaction_keeps_its_chain_across_flushes(runtime: Runtime) -> None:
    async with runtime.sessions.begin() as session:
        for n in range(3):
            session.add(AuditEvent(actor=f"c{n}", actor_kind="agency", action="a", outcome="ok"))
            await session.flush()  # each flush chains on the chain the first one took
    rows = await _rows(runtime)
    assert len({row.chain for row in rows}) == 1
    for before, after in itertools.pairwise(rows):
        assert after.prev_hash == before.row_hash
    assert await _verify(runtime) is None
