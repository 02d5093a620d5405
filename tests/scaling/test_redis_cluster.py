"""Every store use on a real 3-master Redis Cluster: redirections, and a master killed mid-run."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY
from redis.asyncio.cluster import RedisCluster

from ecert.security.keys import VERSION_KEY
from ecert.server.runtime import Runtime
from ecert.store import RedisStore, Window
from tests import servers
from tests.factories import holder, institution
from tests.fixtures.app import AppFactory, open_client
from tests.helpers import Client

pytestmark = pytest.mark.postgres


async def _verify(client: Client, headers: dict[str, str], text: str) -> tuple[int, str]:
    response = await client.post(
        "/v1/verify", json={"qr": text, "business_type": "01101"}, headers=headers
    )
    return response.status_code, str(response.json().get("code", "ok"))


async def test_every_store_call_on_the_cluster(redis_cluster: servers.RedisCluster) -> None:
    store = RedisStore(redis_cluster.url, timeout_s=1.0)
    try:
        # Keys of every kind ecert writes, spread over the three masters' slots.
        assert await store.set_once("qr:370102:sub:jti-1", 60)
        assert not await store.set_once("qr:370102:sub:jti-1", 60)
        assert [await store.incr_window("rl:ip:127.0.0.1:1", 60) for _ in range(3)] == [1, 2, 3]
        # Verify's two keys live in different slots: two calls there, the same answers.
        window = Window("rl:c:h1:1", 60, 2)
        assert await store.count_and_mark(window, "qr:370102:sub:jti-2", 60) == (1, True)
        assert await store.count_and_mark(window, "qr:370102:sub:jti-2", 60) == (2, False)
        assert await store.count_and_mark(window, "qr:370102:sub:jti-3", 60) == (3, False)
        assert await store.set_once("qr:370102:sub:jti-3", 60)  # over the limit: not marked
        await store.set(VERSION_KEY, b"7", 60)
        assert await store.get(VERSION_KEY) == b"7"
        await store.delete(VERSION_KEY)
        assert await store.get(VERSION_KEY) is None
        assert await store.ping()
        owners = {await _owner(redis_cluster, f"ecert:qr:k{i}") for i in range(30)}
        assert len(owners) == 3  # the keys really are on all three masters
    finally:
        await store.close()


async def _owner(cluster: servers.RedisCluster, key: str) -> int:
    client = RedisCluster(host="127.0.0.1", port=cluster.ports[0])
    try:
        await client.initialize()
        node = client.get_node_from_key(key)
        assert node is not None
        return int(node.port)
    finally:
        await client.aclose()


async def _node(port: int) -> aioredis.Redis:
    return aioredis.Redis(host="127.0.0.1", port=port)


async def test_moved_and_ask_are_followed(redis_cluster: servers.RedisCluster) -> None:
    """The store learned the slot map; a slot then migrates (ASK) and moves (MOVED)."""
    store = RedisStore(redis_cluster.url, timeout_s=1.0)
    nodes = {p: await _node(p) for p in redis_cluster.ports}
    try:
        key = "qr:370102:moving:jti"
        assert await store.set_once("qr:370102:warm-up", 60)  # the client now holds the map
        slot = int(await nodes[redis_cluster.ports[0]].cluster("KEYSLOT", "ecert:" + key))
        source = await _owner(redis_cluster, "ecert:" + key)
        target = next(p for p in redis_cluster.ports if p != source)
        ids = {p: (await n.cluster("MYID")).decode() for p, n in nodes.items()}
        # Mid-migration the source answers ASK for a key it does not hold.
        await nodes[target].cluster("SETSLOT", slot, "IMPORTING", ids[source])
        await nodes[source].cluster("SETSLOT", slot, "MIGRATING", ids[target])
        assert await store.set_once(key, 60)  # source: ASK; the target takes it after ASKING
        for port in (target, source, *nodes):
            await nodes[port].cluster("SETSLOT", slot, "NODE", ids[target])
        assert await nodes[target].exists("ecert:" + key) == 1
        assert not await store.set_once(key, 60)  # the old owner answers MOVED
    finally:
        await store.close()
        for node in nodes.values():
            await node.aclose()


async def test_single_use_across_two_workers_with_a_master_killed(make_app: AppFactory) -> None:
    """Two apps (two workers) share a cluster; one master dies halfway. Every code verifies
    exactly once: the store refuses early while it can, PostgreSQL refuses always."""
    with servers.redis_cluster() as cluster:
        # A generous timeout: on a loaded test machine a slow answer must not count as a failure.
        apps = [make_app(redis_url=cluster.url, redis_timeout_s=2.0) for _ in range(2)]
        runtime: Runtime = apps[0].state.runtime
        async with open_client(apps[0]) as first, open_client(apps[1]) as second:
            person = await holder(first, runtime)
            hospital = await institution(first, runtime)
            outcomes: list[list[tuple[int, str]]] = []
            fallbacks = _fallbacks()
            for round_ in range(16):
                if round_ == 8:
                    assert _fallbacks() == fallbacks  # so far the cluster answered every call
                    cluster.processes[1].kill()
                    cluster.processes[1].wait(10)
                text = await person.qr(first)
                clients = [first, second, first, second]
                outcomes.append(
                    list(await asyncio.gather(*(_verify(c, hospital, text) for c in clients)))
                )
            for scans in outcomes:
                assert sorted(status for status, _ in scans) == [200, 409, 409, 409], scans
                assert {code for status, code in scans if status == 409} == {"qr_replayed"}
            # Once the survivors mark the master failed, the cluster refuses every command: the
            # breaker opens on both workers and a replay is refused by PostgreSQL alone.
            cluster.wait_state("fail", [cluster.ports[0], cluster.ports[2]])
            text = await person.qr(first)
            assert (await _verify(second, hospital, text))[0] == 200
            assert await _verify(first, hospital, text) == (409, "qr_replayed")
            assert all(app.state.runtime.store.breaker.is_open for app in apps)
            assert _fallbacks() > fallbacks


def _fallbacks() -> float:
    return sum(
        REGISTRY.get_sample_value("ecert_store_fallbacks_total", {"reason": r}) or 0.0
        for r in ("error", "circuit_open")
    )
