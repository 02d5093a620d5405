"""Test fixtures: every database test runs twice, on the embedded set-up and on real servers.

``embedded``: SQLite file + in-process store. ``real``: throwaway PostgreSQL 15 and Redis on
loopback, started here. A test about PostgreSQL itself is marked ``postgres`` and is not
collected for the embedded backend (deselected, never skipped). With ``CI=true`` any skip is a
failure: a missing server or browser fails the run. ``ECERT_TEST_BACKENDS=embedded`` (or
``real``) narrows a local run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, cast

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from litestar import Litestar
from sqlalchemy import text

from ecert.config import Settings, settings_from_env
from ecert.db.migrate import upgrade
from ecert.db.models import Base
from ecert.server.app import create_app
from ecert.server.runtime import Runtime
from tests import servers

BACKENDS = [b for b in os.environ.get("ECERT_TEST_BACKENDS", "embedded,real").split(",") if b]


@dataclass
class Backend:
    name: str
    settings: Settings
    redis_process: subprocess.Popen[bytes] | None = None


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """A migrated database (and store) for one backend, for the whole session."""
    stack = contextlib.ExitStack()
    data_dir = tmp_path_factory.mktemp(f"ecert-{request.param}")
    common = {
        "data_dir": str(data_dir),
        "pii_keys": f"t1:{_key()}",
        "hash_key": _key(),
        "log_json": False,
        "log_level": "WARNING",
    }
    process = None
    with stack:
        if request.param == "embedded":
            settings = settings_from_env({}, **common)
        else:
            try:
                database_url = stack.enter_context(servers.postgres())
                redis_url, process = stack.enter_context(servers.redis())
            except servers.ServerMissing as exc:
                if _in_ci():
                    pytest.fail(f"real backend needed in CI: {exc}")
                pytest.skip(f"real backend unavailable ({exc}); CI=true makes this a failure")
            # A PostgreSQL URL means production mode: the issuer must be explicit too.
            settings = settings_from_env(
                {},
                database_url=database_url,
                redis_url=redis_url,
                issuer_url="http://localhost:8000",
                issuer_area="370102",
                **common,
            )
        upgrade(settings.effective_database_url)
        yield Backend(request.param, settings, process)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked ``postgres`` is about PostgreSQL itself: it is not collected for the
    embedded backend at all (deselected, not skipped), so a skip always means something missing."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_embedded = callspec is not None and callspec.params.get("backend") == "embedded"
        (drop if on_embedded and item.get_closest_marker("postgres") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """In CI a skipped test is a failed one: every test must run there (servers, browser)."""
    report: pytest.TestReport = yield
    if _in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {report.longrepr}"
    return report


async def _clean(runtime: Runtime, redis_url: str) -> None:
    async with runtime.engine.begin() as connection:
        tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
        if connection.dialect.name == "postgresql":
            await connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                await connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608
    if redis_url:
        client = aioredis.Redis.from_url(redis_url)
        await client.flushdb()
        await client.aclose()


@pytest.fixture
def settings(backend: Backend) -> Settings:
    return backend.settings


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Litestar]:
    application = create_app(settings)
    yield application
    await _clean(application.state.runtime, settings.redis_url)


AppFactory = Callable[..., Litestar]


@pytest.fixture
async def make_app(settings: Settings) -> AsyncIterator[AppFactory]:
    """Build apps with changed settings (``make_app(rate_limit_per_minute=3)``); cleaned after."""
    made: list[Litestar] = []

    def factory(**overrides: Any) -> Litestar:
        made.append(create_app(msgspec.structs.replace(settings, **overrides)))
        return made[-1]

    yield factory
    if made:
        await _clean(made[0].state.runtime, settings.redis_url)


@pytest.fixture
def runtime(app: Litestar) -> Runtime:
    return app.state.runtime  # type: ignore[no-any-return]


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app, in the test's own event loop.

    Litestar's AsyncTestClient runs the app in a portal thread with another loop; asyncpg
    connections are bound to one loop, so tests that also use ``runtime.sessions`` need this.
    """
    async with open_client(app) as http:
        yield http


@contextlib.asynccontextmanager
async def open_client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """Start the app's lifespan and give an HTTP client on it."""
    transport = httpx.ASGITransport(app=cast("Any", app))  # Litestar's ASGI types are narrower
    async with (
        running(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        yield http


@contextlib.asynccontextmanager
async def running(app: Litestar) -> AsyncIterator[None]:
    """Run the app's lifespan in one task of its own (anyio scopes must exit where entered)."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def serve() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(serve())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # start-up failed: raise its error
    try:
        yield
    finally:
        stop.set()
        await task
