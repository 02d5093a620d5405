"""A COMMIT that fails after the handler answers 503 and leaves nothing written (server/commit.py).

The failure is injected at the session's COMMIT, the one place it can happen after a handler
returned; the database itself is real (both backends).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import ECert
from ecert.server.runtime import Runtime
from tests.factories import holder
from tests.helpers import Client


async def test_a_failed_commit_is_not_answered_2xx(
    client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    person = await holder(client, runtime)
    real = AsyncSession.commit
    failed: list[bool] = []

    async def dropped_at_commit(self: AsyncSession) -> Any:
        if not failed and self.in_transaction():
            failed.append(True)
            dropped = ConnectionResetError("reset by peer")
            raise OperationalError("COMMIT", {}, dropped, connection_invalidated=True)
        return await real(self)

    monkeypatch.setattr(AsyncSession, "commit", dropped_at_commit)
    response = await client.post("/v1/me/ecert/suspend", json={}, headers=person.headers)
    monkeypatch.setattr(AsyncSession, "commit", real)
    assert failed
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "unavailable"
    async with runtime.sessions() as session:
        status = await session.scalar(
            select(ECert.status).where(ECert.person_id == person.person_id)
        )
    assert status == "active"  # the suspension was rolled back with its failed COMMIT


async def test_a_refused_request_gives_its_connection_back(
    client: Client, runtime: Runtime
) -> None:
    """The session of a request answered 4xx after it read is rolled back and closed before
    the answer goes out (``finish_request_session``): no connection stays checked out."""
    person = await holder(client, runtime)
    pool: Any = runtime.engine.pool
    idle = pool.checkedout()
    # No policy is loaded: the lookup reads the person's and refuses.
    refused = await client.get("/v1/me/benefits", headers=person.headers)
    assert 400 <= refused.status_code < 500, refused.text
    assert pool.checkedout() == idle
