"""Group commit of read audit rows (ecert.security.auditbatch): reads waiting together share one
transaction, each returns only once its row is committed, and the chain stays whole."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from ecert.db.models import AuditEvent
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
