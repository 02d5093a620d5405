"""How online verify writes (issue 15, fourth round): the answer comes only once the code's use,
the ec_token and the audit row are committed, and the route's rate limit is charged once, with
the code's early replay mark, and before the code is spent."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from ecert.db.models import AuditEvent, EcToken, QrUse
from ecert.security import auditchain
from ecert.server.runtime import Runtime
from tests.factories import add_client, holder, institution
from tests.fixtures.app import AppFactory, open_client
from tests.fixtures.auth import bearer, client_token
from tests.helpers import Client


async def test_the_answer_comes_with_its_rows_committed(client: Client, runtime: Runtime) -> None:
    person = await holder(client, runtime)
    hospital = await institution(client, runtime)
    reply = await client.post("/v1/verify", json={"qr": await person.qr(client)}, headers=hospital)
    assert reply.status_code == 200
    token = reply.json()["ec_token"]
    async with runtime.sessions() as session:  # another session: only committed rows
        assert await session.scalar(select(func.count()).select_from(QrUse)) == 1
        spent = await session.scalar(select(EcToken).where(EcToken.token == token))
        assert spent is not None
        assert spent.person_id == person.person_id
        audit = (
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "verify"))
        ).all()
        assert [(row.outcome, row.person_id) for row in audit] == [("ok", person.person_id)]
        assert audit[0].chain is not None
        assert await auditchain.verify(session, auditchain.audit_key(runtime)) is None


async def test_a_verify_is_charged_once_and_refused_past_the_limit_unspent(
    make_app: AppFactory,
) -> None:
    app = make_app(client_rate_limit_per_minute=1000)
    async with open_client(app) as http:
        runtime = app.state.runtime
        person = await holder(http, runtime)
        hospital = bearer(await client_token(http, *await add_client(runtime, "institution")))
        limited = await add_client(runtime, "institution", rate_limit=3)
        minute = int(time.time()) // 60
        small = bearer(await client_token(http, *limited))  # the token request counts: 1
        statuses = []
        for _ in range(2):  # 2 and 3: within the quota
            code = await person.qr(http)
            statuses.append(await http.post("/v1/verify", json={"qr": code}, headers=small))
        code = await person.qr(http)
        over = await http.post("/v1/verify", json={"qr": code}, headers=small)
        if int(time.time()) // 60 != minute:
            return  # the window turned meanwhile: the counts start again
        assert [r.status_code for r in statuses] == [200, 200]
        assert (over.status_code, over.json()["code"]) == (429, "rate_limited")
        # Refused before the code was spent or marked: another institution can use it.
        reply = await http.post("/v1/verify", json={"qr": code}, headers=hospital)
        assert reply.status_code == 200
