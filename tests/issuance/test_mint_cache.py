"""The worker's memory of e-certs for minting (ecert.issuance.mintcache): bounded, forgotten on
this worker's changes, expired after ECERT_MINT_CACHE_S for other workers' changes, and never
the authority (a code minted from a stale entry is refused at verify)."""

from __future__ import annotations

import uuid

import pytest
from litestar import Litestar
from sqlalchemy import update

from ecert.db.models import ECert, ECertStatus
from ecert.issuance.mintcache import MintCache
from ecert.issuance.repositories import MintState
from ecert.server.runtime import Runtime
from tests.factories import holder, institution
from tests.helpers import Client

STATE = MintState(uuid.uuid4(), "pseudonym123", 1, "active", False)


def test_entries_expire_and_the_least_recently_used_go_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr("ecert.issuance.mintcache.time.monotonic", lambda: now[0])
    cache = MintCache(ttl_s=5, size=2)
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    cache.put(first, "ch", STATE)
    cache.put(second, "ch", STATE)
    assert cache.get(first, "ch") == STATE  # now the most recently used
    cache.put(third, "ch", STATE)
    assert (len(cache), cache.get(second, "ch")) == (2, None)
    assert cache.get(first, "other channel") is None
    now[0] += 5
    assert cache.get(first, "ch") is None
    cache.forget(third, "ch")
    assert cache.get(third, "ch") is None


def test_zero_seconds_remembers_nothing() -> None:
    cache = MintCache(ttl_s=0)
    cache.put(uuid.uuid4(), "ch", STATE)
    assert len(cache) == 0


async def test_this_workers_changes_reach_minting_at_once(client: Client, runtime: Runtime) -> None:
    person = await holder(client, runtime)
    await person.qr(client)  # remembered now
    assert (await client.post("/v1/me/ecert/suspend", json={}, headers=person.headers)).is_success
    refused = await client.post("/v1/me/ecert/qr", headers=person.headers)
    assert (refused.status_code, refused.json()["code"]) == (409, "ecert_suspended")
    assert (await client.post("/v1/me/ecert/resume", headers=person.headers)).is_success
    hospital = await institution(client, runtime)
    verified = await client.post(
        "/v1/verify", json={"qr": await person.qr(client)}, headers=hospital
    )
    assert verified.status_code == 200, verified.text
    assert (await client.delete("/v1/me/ecert", headers=person.headers)).status_code == 204
    gone = await client.post("/v1/me/ecert/qr", headers=person.headers)
    assert gone.json()["code"] == "ecert_revoked"


async def test_another_workers_change_is_refused_at_verify_meanwhile(
    client: Client, runtime: Runtime
) -> None:
    person = await holder(client, runtime)
    hospital = await institution(client, runtime)
    await person.qr(client)
    # Another worker rebinds the e-cert (a new version): this worker's memory does not hear of it.
    async with runtime.sessions.begin() as session:
        await session.execute(
            update(ECert)
            .where(ECert.person_id == person.person_id)
            .values(version=ECert.version + 1)
        )
    stale = await person.qr(client)  # from memory, within ECERT_MINT_CACHE_S
    refused = await client.post("/v1/verify", json={"qr": stale}, headers=hospital)
    assert refused.json()["code"] == "ecert_revoked"


async def test_without_memory_every_mint_reads_the_ecert(
    app: Litestar, runtime: Runtime, client: Client
) -> None:
    person = await holder(client, runtime)
    await person.qr(client)
    app.state.mint_cache = MintCache(ttl_s=0)  # as with ECERT_MINT_CACHE_S=0
    async with runtime.sessions.begin() as session:
        await session.execute(
            update(ECert)
            .where(ECert.person_id == person.person_id)
            .values(status=ECertStatus.REVOKED, version=ECert.version + 1)
        )
    refused = await client.post("/v1/me/ecert/qr", headers=person.headers)
    assert refused.json()["code"] == "ecert_revoked"
