"""Online verify's group spend (ecert.verify.batches): verifies that wait together share one
statement, each checked and answered on its own rows; two scans of one code never share one."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from ecert.db.models import AuditChainHead, AuditEvent, utcnow
from ecert.qr import codec
from ecert.security import auditchain
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime
from ecert.verify import batches, repositories, services
from tests.factories import holder, institution, set_enrolment
from tests.helpers import Client

HOSPITAL = "H37010200001"


def _values(sub: str, jti: str, institution_code: str = HOSPITAL) -> dict[str, Any]:
    return {"u_iss": "370102", "u_sub": sub, "u_jti": jti, "institution": institution_code}


def test_a_batch_takes_each_code_once_in_order_and_at_most_max() -> None:
    spends = batches.SpendBatches(None)  # type: ignore[arg-type]  # no statement is sent
    grouped = spends.grouped
    loop = asyncio.new_event_loop()
    try:
        waiting = [
            _values("AAAAAAAAAAAA", "a1"),
            _values("BBBBBBBBBBBB", "b1"),
            _values("AAAAAAAAAAAA", "a1", "H37010200002"),  # the same code, elsewhere
            _values("AAAAAAAAAAAA", "a2"),
        ]
        audit = {"action": "verify"}
        items = [(values, None) for values in waiting] + [(None, audit), (None, audit)]
        for item in items:
            grouped._waiting.append((item, loop.create_future(), None))  # type: ignore[arg-type]
        first = grouped.next_batch()
        # Audit rows have no code: they never wait for another batch.
        assert [entry[0] for entry in first] == [items[0], items[1], items[3], *items[4:]]
        assert [entry[0] for entry in grouped.next_batch()] == [items[2]]
        for n in range(batches.MAX_BATCH + 5):
            item = (_values("C" * 12, f"c{n}"), None)
            grouped._waiting.append((item, loop.create_future(), None))  # type: ignore[arg-type]
        assert len(grouped.next_batch()) == batches.MAX_BATCH
        assert len(grouped.next_batch()) == 5
    finally:
        loop.close()


async def _spend_values(runtime: Runtime, text: str, institution_code: str) -> dict[str, Any]:
    jws, header = codec.open_code(text)
    key = runtime.keys.verifier("qr", header.kid)
    assert key is not None
    claims = codec.decode_jws(
        jws,
        key.public,
        now=int(time.time()),
        leeway_s=runtime.settings.leeway_s,
        issuers={runtime.settings.issuer_area},
    )
    principal = Principal("hospital", "institution", institution_code=institution_code)
    expires = utcnow() + dt.timedelta(minutes=5)
    return services.spend_values(principal, claims, header.kid, institution_code, "01101", expires)


@pytest.mark.postgres  # the group statement is PostgreSQL's; SQLite spends in the request
async def test_one_statement_answers_each_verify_from_its_own_rows(
    client: Client, runtime: Runtime
) -> None:
    people = [await holder(client, runtime, name=name) for name in ("李四", "王五", "赵六")]
    await set_enrolment(runtime, people[1], "paused")
    await institution(client, runtime)
    codes = [await people[i].qr(client) for i in (0, 1, 2)]
    given = [await _spend_values(runtime, code, HOSPITAL) for code in (*codes, codes[2])]
    spends = batches.for_runtime(runtime)
    answers = await asyncio.gather(*(spends.spend(values) for values in given))
    # The first sends its own statement at once; the two that queued meanwhile share the
    # next one, and the second scan of the third code waits for the one after.
    assert spends.grouped.sizes == [1, 2, 1]
    for person, (rows, _) in zip((*people, people[2]), answers, strict=True):
        assert {row.person_id for row in rows} == {person.person_id}
    tokens = [token for _, token in answers]
    assert tokens[0] is not None
    assert tokens[0].startswith("370102")
    assert tokens[1] is None  # not enrolled: checked on its rows, nothing spent
    assert tokens[2] is not None
    assert tokens[3] is None
    assert len({tokens[0], tokens[2]}) == 2
    # The refused verify spent nothing: its code goes through once the person is enrolled.
    await set_enrolment(runtime, people[1], "active")
    rows, token = await spends.spend(given[1])
    assert rows
    assert token is not None


def _audit_row(n: int) -> dict[str, Any]:
    return {
        "actor": f"spend-audit-{n}",
        "actor_kind": "test",
        "person_id": None,
        "action": "verify",
        "outcome": "ok",
    }


async def _audited(runtime: Runtime) -> list[int | None]:
    """The chains of the test's audit rows, in order; the whole audit chain checked."""
    async with runtime.sessions() as session:
        assert await auditchain.verify(session, auditchain.audit_key(runtime)) is None
        rows = await session.scalars(
            select(AuditEvent.chain)
            .where(AuditEvent.actor.like("spend-audit-%"))
            .order_by(AuditEvent.id)
        )
        return list(rows)


@pytest.mark.postgres
async def test_audit_rows_ride_with_the_next_verifies_spends(
    client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first audit row takes the long way (the writer has no link yet); after it, audit
    rows and spends waiting together go as one statement, chained where the writer left off."""
    long_way: list[int] = []
    append = auditchain.append

    async def counted(session: Any, rows: list[dict[str, Any]]) -> auditchain.Hint:
        ours = [row for row in rows if str(row["actor"]).startswith("spend-audit-")]
        if ours:  # not the other writers' (a mint's, a lookup's)
            long_way.append(len(ours))
        return await append(session, rows)

    monkeypatch.setattr(auditchain, "append", counted)
    people = [await holder(client, runtime, name=name) for name in ("李四", "王五", "赵六")]
    await institution(client, runtime)
    given = [await _spend_values(runtime, await p.qr(client), HOSPITAL) for p in people]
    spends = batches.for_runtime(runtime)
    await spends.audit(_audit_row(0))
    assert long_way == [1]
    # Two spends and two audit rows at once: the first alone, the other three in one statement.
    answers = await asyncio.gather(
        spends.spend(given[0]),
        spends.spend(given[1]),
        spends.audit(_audit_row(1)),
        spends.audit(_audit_row(2)),
    )
    assert spends.grouped.sizes[-2:] == [1, 3]
    assert long_way == [1]
    assert all(token is not None for _, token in answers[:2])
    first, *rest = await _audited(runtime)
    assert rest == [first, first]
    # Another writer moves this writer's head: the next rows go the long way, spends unharmed.
    async with runtime.sessions.begin() as session:
        head = (
            await session.execute(
                select(AuditChainHead.last_hash).where(AuditChainHead.id == first)
            )
        ).scalar_one()
        await auditchain.take_link(session, first, head)
        session.add(AuditEvent(actor="other-writer", actor_kind="test", action="a", outcome="ok"))
    more = [await _spend_values(runtime, await p.qr(client), HOSPITAL) for p in people[:2]]
    later = await asyncio.gather(
        spends.spend(given[2]), spends.spend(more[0]), spends.audit(_audit_row(3))
    )
    assert spends.grouped.sizes[-2:] == [1, 2]  # the second spend carried the audit row
    assert all(token is not None for _, token in later[:2])
    assert long_way == [1, 1]  # found the head moved: written the long way
    assert len(await _audited(runtime)) == 4


@pytest.mark.postgres
async def test_a_failed_spend_statement_does_not_lose_the_audit_rows_it_carried(
    client: Client, runtime: Runtime
) -> None:
    person = await holder(client, runtime, name="李四")
    await institution(client, runtime)
    spends = batches.for_runtime(runtime)
    await spends.audit(_audit_row(0))  # the writer now has a link: rows ride with spends
    bad = await _spend_values(runtime, await person.qr(client), HOSPITAL)
    bad["u_expires_at"] = None  # the use row needs its partition key: the statement fails
    found = await asyncio.gather(
        spends.spend(bad),
        spends.spend(bad | {"u_jti": "other"}),
        spends.audit(_audit_row(1)),
        return_exceptions=True,
    )
    assert isinstance(found[0], Exception)
    assert isinstance(found[1], Exception)
    assert found[2] is None  # the statement rolled back; the row went the long way
    assert len(await _audited(runtime)) == 2


@pytest.mark.postgres
async def test_a_lost_answer_retries_the_spends_and_never_writes_audit_rows_twice(
    client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection dies under the statement that carries spends and audit rows: it may have
    committed. The spends go again (the unique key decides); the rows' callers get the failure
    rather than the rows going the long way and perhaps being there twice."""
    people = [await holder(client, runtime, name=name) for name in ("李四", "王五")]
    await institution(client, runtime)
    given = [await _spend_values(runtime, await p.qr(client), HOSPITAL) for p in people]
    spends = batches.for_runtime(runtime)
    await spends.audit(_audit_row(0))

    async def dropped(*_: Any) -> Any:
        raise OperationalError("statement", {}, OSError("gone"), connection_invalidated=True)

    monkeypatch.setattr(repositories, "spend_and_append", dropped)
    found = await asyncio.gather(
        spends.spend(given[0]),
        spends.spend(given[1]),
        spends.audit(_audit_row(1)),
        return_exceptions=True,
    )
    assert spends.grouped.sizes[-2:] == [1, 2]
    assert all(isinstance(f, tuple) and f[1] is not None for f in found[:2]), found
    assert isinstance(found[2], OperationalError)
    assert len(await _audited(runtime)) == 1  # not written, and not written the long way
    await spends.audit(_audit_row(2))  # the writer forgot its link: this one goes the long way
    assert len(await _audited(runtime)) == 2
