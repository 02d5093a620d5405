"""Idempotency claims: a stale claim taken over fences out its first holder; database timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, select, text, update
from sqlalchemy.orm import Session

from ecert.db.models import (
    Account,
    IdempotencyRecord,
    LedgerEntry,
    Settlement,
    Visit,
    utcnow,
)
from ecert.server.runtime import Runtime
from ecert.settlement import idempotency, repositories
from ecert.settlement.exceptions import IdempotencyInProgress
from tests.factories import credit, ec_token, holder, institution, load_policies
from tests.fixtures.app import AppFactory, open_client
from tests.helpers import Client
from tests.settlement.visit_steps import line, open_visit, settle, setup, visit_body

HASH = "0" * 64


async def _age(runtime: Runtime, key: str) -> None:
    """Make the key's claim look older than the takeover age."""
    async with runtime.sessions.begin() as session:
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == key)
            .values(started_at=utcnow() - idempotency.STALE_AFTER - dt.timedelta(seconds=1))
        )


async def test_finding_08_taken_over_claim_can_neither_complete_nor_release(
    runtime: Runtime,
) -> None:
    """Once a stale claim is taken over, its first holder's complete fails and its release is a
    no-op; the new holder completes and its answer is the one replayed."""
    first = await idempotency.claim(runtime, "client-a", "k-1", HASH)
    await _age(runtime, "k-1")
    second = await idempotency.claim(runtime, "client-a", "k-1", HASH)  # takeover
    assert second.replay is None
    async with runtime.sessions() as session:
        with pytest.raises(IdempotencyInProgress):
            await idempotency.complete(session, first, 201, {"by": "first"})
        await session.rollback()
    await idempotency.release(runtime, first)  # must not free the key the second holder runs on
    with pytest.raises(IdempotencyInProgress):
        await idempotency.claim(runtime, "client-a", "k-1", HASH)
    async with runtime.sessions.begin() as session:
        await idempotency.complete(session, second, 201, {"by": "second"})
    replay = await idempotency.claim(runtime, "client-a", "k-1", HASH)
    assert replay.replay == (201, {"by": "second"})


async def test_finding_08_stale_claim_taken_over_while_running_settles_once(
    client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first request stalls past the takeover age after claiming its key; a retry takes the
    key over and settles. The first must then not settle too: one settlement, one debit."""
    await load_policies(runtime)
    person = await holder(client, runtime)
    await credit(runtime, person.person_id, 50_000)
    hospital = await institution(client, runtime)
    body = {
        "ec_token": await ec_token(client, runtime, person, hospital),
        "med_type": "11",
        "items": [{"code": "A001", "name": "阿莫西林", "item_class": "A", "amount": 3_000}],
        "use_account": True,
    }
    headers = {**hospital, "Idempotency-Key": "slow-1"}
    real_claim = idempotency.claim
    retried: list[Any] = []

    async def claim_then_stall(*args: Any) -> idempotency.Claim:
        claimed = await real_claim(*args)
        if not retried:  # the first request, still "running": its claim goes stale meanwhile
            retried.append(None)
            await _age(runtime, "slow-1")
            retried[0] = await client.post("/v1/settlements", json=body, headers=headers)
        return claimed

    monkeypatch.setattr(idempotency, "claim", claim_then_stall)
    first = await client.post("/v1/settlements", json=body, headers=headers)
    retry = retried[0]
    assert retry.status_code == 201, retry.text
    assert first.status_code != 201, first.text  # its answer would contradict the stored one
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Settlement)) == 1
        debits = await session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "debit")
        )
        assert debits == 1
    again = await client.post("/v1/settlements", json=body, headers=headers)
    assert again.json() == retry.json()
    assert again.headers["idempotent-replayed"] == "true"


@pytest.mark.postgres  # PostgreSQL session settings; SQLite serialises writers instead
async def test_finding_08_statement_and_lock_timeouts_below_the_takeover_age(
    runtime: Runtime,
) -> None:
    """Every PostgreSQL connection of the engine runs with statement, lock and idle-in-transaction
    timeouts shorter than the age at which a claim is taken over."""
    names = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
    async with runtime.sessions() as session:
        assert await session.scalar(text("SHOW statement_timeout")) not in (None, "0")
        rows = await session.execute(
            text("SELECT name, setting, unit FROM pg_settings WHERE name = ANY(:names)"),
            {"names": list(names)},
        )
        found = {name: (int(setting), unit) for name, setting, unit in rows}
    limit_ms = idempotency.STALE_AFTER.total_seconds() * 1000
    assert set(found) == set(names)
    for name in names:
        ms, unit = found[name]
        assert unit == "ms"
        assert 0 < ms < limit_ms, name
    assert found["statement_timeout"][0] == runtime.settings.db_statement_timeout_ms
    assert found["lock_timeout"][0] == runtime.settings.db_lock_timeout_ms


@pytest.mark.postgres  # PostgreSQL lock_timeout; SQLite serialises writers instead
async def test_finding_08_a_lock_wait_past_lock_timeout_is_a_retryable_503(
    make_app: AppFactory,
) -> None:
    """A settlement that waits on a row lock longer than the lock timeout fails as a retryable
    503 (not a 500), writes nothing and gives its key back, so the retry settles."""
    app = make_app(db_lock_timeout_ms=300)
    runtime: Runtime = app.state.runtime
    async with open_client(app) as client:
        await load_policies(runtime)
        person = await holder(client, runtime)
        await credit(runtime, person.person_id, 50_000)
        hospital = await institution(client, runtime)
        body = {
            "ec_token": await ec_token(client, runtime, person, hospital),
            "med_type": "11",
            "items": [{"code": "A001", "name": "阿莫西林", "item_class": "A", "amount": 3_000}],
            "use_account": True,
        }
        headers = {**hospital, "Idempotency-Key": "locked-1"}
        async with runtime.sessions.begin() as other:  # another transaction holds the account
            await other.execute(select(Account.id).with_for_update())
            stuck = await client.post("/v1/settlements", json=body, headers=headers)
        assert (stuck.status_code, stuck.json()["code"]) == (503, "unavailable"), stuck.text
        retry = await client.post("/v1/settlements", json=body, headers=headers)
        assert retry.status_code == 201, retry.text
        assert "idempotent-replayed" not in retry.headers


@pytest.mark.postgres  # SQLite's single writer lock keeps the takeover out until the first commits
async def test_finding_08_first_holder_that_already_wrote_cannot_complete(
    client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL, truly concurrent: the first request has locked the person's rows and stalls
    before its write, which also stores its answer (fenced on its claim's token, as
    ``idempotency.complete``); a retry takes the stale key over and waits on the person's locks.
    The first one's write fails on the answer and all of it rolls back; the retry then settles:
    one settlement."""
    await load_policies(runtime)
    person = await holder(client, runtime)
    await credit(runtime, person.person_id, 50_000)
    hospital = await institution(client, runtime)
    body = {
        "ec_token": await ec_token(client, runtime, person, hospital),
        "med_type": "11",
        "items": [{"code": "A001", "name": "阿莫西林", "item_class": "A", "amount": 3_000}],
        "use_account": True,
    }
    headers = {**hospital, "Idempotency-Key": "slow-2"}
    real_write = repositories.write
    retries: list[asyncio.Task[Any]] = []
    lost: list[BaseException] = []

    async def stall_then_write(*args: Any) -> Any:
        if not retries:  # the first request, its money written but not committed
            await _age(runtime, "slow-2")
            retries.append(
                asyncio.create_task(client.post("/v1/settlements", json=body, headers=headers))
            )
            await _taken_over(runtime, "slow-2")
            try:
                return await real_write(*args)
            except IdempotencyInProgress as exc:
                lost.append(exc)
                raise
        return await real_write(*args)

    monkeypatch.setattr(repositories, "write", stall_then_write)
    first = await client.post("/v1/settlements", json=body, headers=headers)
    retry = await retries[0]
    assert lost, "the first holder's write must fail on its answer"
    assert (first.status_code, first.json()["code"]) == (409, "idempotency_in_progress")
    assert retry.status_code == 201, retry.text
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Settlement)) == 1
        assert await session.scalar(select(Account.balance)) == 47_000


async def _taken_over(runtime: Runtime, key: str) -> None:
    """Wait until a retry has taken the key's stale claim over (its claim is fresh again)."""
    for _ in range(200):
        async with runtime.sessions() as session:
            started = await session.scalar(
                select(IdempotencyRecord.started_at).where(IdempotencyRecord.key == key)
            )
        if started is not None and started > utcnow() - idempotency.STALE_AFTER:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the retry never took the claim over")


@contextlib.contextmanager
def _connection_lost_at_commit() -> Iterator[list[bool]]:
    """The next COMMIT of a session meets its connection dropped (its backend terminated)."""
    fired: list[bool] = []

    def drop(session: Session) -> None:
        if not fired:
            fired.append(True)
            session.connection().exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")

    event.listen(Session, "before_commit", drop)
    try:
        yield fired
    finally:
        event.remove(Session, "before_commit", drop)


@pytest.mark.postgres  # a dropped connection is a PostgreSQL server's doing
async def test_a_connection_lost_at_commit_gives_the_key_back(
    client: Client, runtime: Runtime
) -> None:
    """Every idempotent write commits before its key is done with: a COMMIT that fails answers
    a retryable 503 and releases the key, and the retry with the same key does the work once.
    (Visits and reversals committed after the handler: their key stayed "in progress" for 60 s.)
    """
    person, hospital = await setup(client, runtime)
    token = await ec_token(client, runtime, person, hospital)
    body = visit_body(token)
    with _connection_lost_at_commit() as fired:
        lost = await open_visit(client, hospital, body, "visit-lost-at-commit")
    assert fired
    assert (lost.status_code, lost.json()["code"]) == (503, "unavailable"), lost.text
    again = await open_visit(client, hospital, body, "visit-lost-at-commit")
    assert again.status_code == 201, again.text
    visit_id = again.json()["visit_id"]
    upload = await client.post(
        f"/v1/visits/{visit_id}/fees",
        json={"lines": [line("1", "X001", "1", 1_000, item_class="A")]},
        headers=hospital,
    )
    assert upload.status_code == 200, upload.text
    settled = await settle(client, hospital, visit_id, {"use_account": True})
    assert settled.status_code == 201, settled.text
    settlement_id = settled.json()["settlement_id"]
    reversal = f"/v1/settlements/{settlement_id}/reversal"
    keyed = {**hospital, "Idempotency-Key": "reversal-lost-at-commit"}
    with _connection_lost_at_commit() as fired:
        lost = await client.post(reversal, json={"reason": "退费"}, headers=keyed)
    assert fired
    assert (lost.status_code, lost.json()["code"]) == (503, "unavailable"), lost.text
    reversed_ = await client.post(reversal, json={"reason": "退费"}, headers=keyed)
    assert reversed_.status_code in (200, 201), reversed_.text
    async with runtime.sessions() as session:
        visits = await session.scalar(select(func.count()).select_from(Visit))
        account = await session.scalar(select(Account.balance))
        ledger = await session.scalar(select(func.sum(LedgerEntry.amount)))
    assert visits == 1
    assert account == ledger == 50_000  # paid, then given back in full
