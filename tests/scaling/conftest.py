"""The scaled-out topology, started only by the tests that ask for it (once a session).

A 3-master Redis Cluster, and a PostgreSQL primary with one streaming replica, on loopback.
Every test here also takes the ``postgres`` mark: it runs on the real backend only, beside that
backend's own PostgreSQL. A missing server skips locally and fails in CI.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from litestar import Litestar

from ecert.db.migrate import upgrade
from tests import servers
from tests.fixtures.app import AppFactory
from tests.fixtures.database import Backend, in_ci

T = TypeVar("T")


@contextlib.contextmanager
def required(start: Callable[[], contextlib.AbstractContextManager[T]]) -> Iterator[T]:
    with contextlib.ExitStack() as stack:
        try:
            value = stack.enter_context(start())
        except servers.ServerMissing as exc:
            if in_ci():
                pytest.fail(f"needed in CI: {exc}")
            pytest.skip(f"{exc}; CI=true makes this a failure")
        yield value


@pytest.fixture(scope="session")
def redis_cluster(backend: Backend) -> Iterator[servers.RedisCluster]:
    """Follows the backend parameter, so that the ``postgres`` mark keeps it to the real one."""
    assert backend.name == "real"
    with required(servers.redis_cluster) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def replicated() -> Iterator[tuple[servers.PgServer, servers.PgServer]]:
    """A migrated primary and its streaming replica."""
    with required(servers.postgres_with_replica) as (primary, replica):
        upgrade(primary.url)
        yield primary, replica


@pytest.fixture
def replica_app(
    make_app: AppFactory, replicated: tuple[servers.PgServer, servers.PgServer]
) -> Litestar:
    """An app on the replicated primary whose lookups may read the replica (tight bounds)."""
    primary, replica = replicated
    return make_app(
        database_url=primary.url,
        database_read_url=replica.url,
        database_read_max_lag_s=0.5,
        database_read_check_s=0.1,
    )
