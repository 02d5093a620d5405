"""Group commit of read audit rows (ecert.security.auditbatch): reads waiting together share one
transaction, each returns only once its row is committed, and the chain stays whole."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from ecert.db.models import AuditChainHead, AuditEvent
from ecert.security import auditchain
from ecert.security.auditbatch import AuditBatches
from ecert.server.runtime import Runtime


def _row(n: int) -> dict[str, Any]:
    return {
        "actor": f"batch-test-{n}",
        "actor_kind": "test",
        "person_id": None,
        "action": "lookup.t",
        "outcome": "ok",
    }


async def test_reads_waiting_together_share_one_commit(runtime: Runtime) -> None:
    commits = 0

    def counted(*_: Any) -> None:
        nonlocal commits
        commits += 1

    event.listen(runtime.engine.sync_engine, "commit", counted)
    try:
        await asyncio.gather(*(runtime.audit_batches.append(_row(n)) for n in range(20)))
    finally:
        event.remove(runtime.engine.sync_engine, "commit", counted)
    assert commits <= 2  # the first row alone at most, then everyone who queued meanwhile
    async with runtime.sessions() as session:
        written = await session.scalar(
            select(func.count()).where(AuditEvent.actor.like("batch-test-%"))
        )
        assert written == 20
        assert await auditchain.verify(session, auditchain.audit_key(runtime)) is None


async def test_a_failed_write_fails_the_reads_it_carried(runtime: Runtime) -> None:
    # Sessions without the audit key refuse to write audit rows: the batch fails.
    keyless = async_sessionmaker(runtime.engine, expire_on_commit=False)
    batches = AuditBatches(keyless)
    with pytest.raises(RuntimeError, match="audit key"):
        await asyncio.gather(*(batches.append(_row(n)) for n in range(3)))
    async with runtime.sessions() as session:
        assert not await session.scalar(
            select(func.count()).where(AuditEvent.actor.like("batch-test-%"))
        )


async def _chains(runtime: Runtime) -> list[int | None]:
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(AuditEvent.chain)
            .where(AuditEvent.actor.like("batch-test-%"))
            .order_by(AuditEvent.id)
        )
        return list(rows)


def _count_locked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the batches that take the lock path (``auditchain.append``)."""
    calls: list[int] = []
    locked = auditchain.append

    async def counted(session: Any, rows: list[dict[str, Any]]) -> auditchain.Hint:
        calls.append(len(rows))
        return await locked(session, rows)

    monkeypatch.setattr(auditchain, "append", counted)
    return calls


@pytest.mark.postgres  # the one-statement append is PostgreSQL's; SQLite always takes the lock
async def test_a_writer_appends_where_it_left_off_in_one_statement(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = _count_locked(monkeypatch)
    batches = AuditBatches(runtime.sessions, runtime.group_connection())
    for n in range(3):
        await batches.append(_row(n))
    assert locked == [1]  # only the first batch: it had no hint yet
    first, *rest = await _chains(runtime)
    assert rest == [first, first]
    async with runtime.sessions() as session:
        assert await auditchain.verify(session, auditchain.audit_key(runtime)) is None


@pytest.mark.postgres
async def test_a_moved_head_sends_the_writer_back_to_the_lock(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer appends to the chain this one wrote last: the one-statement append finds
    the link changed, writes nothing, and the batch takes the lock; the chain stays whole."""
    locked = _count_locked(monkeypatch)
    batches = AuditBatches(runtime.sessions, runtime.group_connection())
    await batches.append(_row(0))
    [chain] = await _chains(runtime)
    assert chain is not None
    async with runtime.sessions.begin() as session:
        head = (
            await session.execute(
                select(AuditChainHead.last_hash).where(AuditChainHead.id == chain)
            )
        ).scalar_one()
        await auditchain.take_link(session, chain, head)  # as a settlement holding this chain
        session.add(AuditEvent(actor="batch-test-x", actor_kind="test", action="a", outcome="ok"))
    await batches.append(_row(1))
    await batches.append(_row(2))
    assert locked == [1, 1]  # the first batch, and the one after the head moved
    assert (await _chains(runtime))[:2] == [chain, chain]
    async with runtime.sessions() as session:
        assert await auditchain.verify(session, auditchain.audit_key(runtime)) is None
