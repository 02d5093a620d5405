"""The person-token grant in autocommit (issue 15): PostgreSQL's unique key still decides single
use, also between concurrent requests; a jti refused after it was spent stays spent; the grant's
audit row is committed (and chained) before the answer."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from ecert.db.models import AuditEvent, UsedJti
from ecert.security import auditchain
from ecert.server.runtime import Runtime
from tests.factories import add_client, add_person
from tests.fixtures.auth import JWT_BEARER, person_assertion
from tests.helpers import Client


async def _grant(client: Client, channel: tuple[str, str | None], assertion: str) -> int:
    channel_id, secret = channel
    response = await client.post(
        "/oauth/token",
        data={"grant_type": JWT_BEARER, "assertion": assertion},
        auth=(channel_id, secret or ""),
    )
    return response.status_code


async def test_concurrent_uses_of_one_assertion_get_one_token(
    client: Client, runtime: Runtime
) -> None:
    channel = await add_client(runtime, "channel")
    _, id_number = await add_person(runtime, name="李四")
    assertion = person_assertion(
        channel[0], channel[1], id_number, "李四", audience=runtime.settings.issuer_url
    )
    statuses = await asyncio.gather(*(_grant(client, channel, assertion) for _ in range(6)))
    assert sorted(statuses) == [200, 400, 400, 400, 400, 400]
    async with runtime.sessions() as session:
        issued = await session.scalar(
            select(func.count()).where(AuditEvent.action == "person_token.issue")
        )
        assert issued == 1
        assert await auditchain.verify(session, auditchain.audit_key(runtime)) is None


async def test_a_refused_identity_leaves_its_jti_spent(client: Client, runtime: Runtime) -> None:
    channel = await add_client(runtime, "channel")
    _, id_number = await add_person(runtime, name="李四")
    wrong = person_assertion(
        channel[0], channel[1], id_number, "王五", audience=runtime.settings.issuer_url
    )
    assert await _grant(client, channel, wrong) == 400
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(UsedJti)) == 1
    replay = await client.post(
        "/oauth/token",
        data={"grant_type": JWT_BEARER, "assertion": wrong},
        auth=(channel[0], channel[1] or ""),
    )
    assert (replay.status_code, replay.json()["rule"]) == (400, "replayed_jti")
