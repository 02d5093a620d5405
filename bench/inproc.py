"""CPU per request of a hot path, in process: the figure to iterate on while changing a path.

    python -m bench.inproc [--paths verify,mint,lookup,settle,grant] [-n 400] [--profile FILE]
                           [--concurrency N]

Real PostgreSQL and Redis on loopback, the app built by ``create_app`` and called through
Litestar's test client one request at a time, so that ``process CPU ÷ requests`` is this
process's work per request (the servers' own CPU is not in it). ``--profile`` writes a cProfile
of the measured loops (``python -m pstats FILE``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import pstats
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import httpx
import redis.asyncio as aioredis
from rich.console import Console
from rich.table import Table
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench.__main__ import BILL, add_contributions
from bench.harness import JWT_BEARER, bench_env, seed, sign_in
from ecert.app import create_app
from ecert.clock import business_date
from ecert.config import settings_from_env
from ecert.db.migrate import upgrade
from tests import servers
from tests.fixtures.auth import person_assertion


@contextlib.contextmanager
def _tracing() -> Iterator[list[str]]:
    """Every database statement (BEGIN and COMMIT included) and Redis command sent meanwhile."""
    seen: list[str] = []

    def statement(conn: Any, cursor: Any, sql: str, *_: Any) -> None:
        seen.append("sql: " + " ".join(sql.split())[:150])

    # Transactions at the driver: only those that reach the server (an autocommit session's
    # "begin" sends nothing), and those of ecert.db.native, which SQLAlchemy never sees.
    transaction = asyncpg.transaction.Transaction
    # (asyncpg's private commit and rollback: its context manager calls them, not the public.)
    said = {
        "start": "BEGIN",
        "_Transaction__commit": "COMMIT",
        "_Transaction__rollback": "ROLLBACK",
    }
    originals = {name: getattr(transaction, name) for name in said}

    def sent(name: str) -> Callable[..., Any]:
        async def run(self: Any) -> Any:
            seen.append(f"sql: {said[name]}")
            return await originals[name](self)

        return run

    fetch, executemany = asyncpg.Connection.fetch, asyncpg.Connection.executemany

    async def native_fetch(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        seen.append("sql (native): " + " ".join(query.split())[:140])
        return await fetch(self, query, *args, **kwargs)

    async def native_many(self: Any, query: str, args: Any, **kwargs: Any) -> Any:
        seen.append(f"sql (native, {len(args)} pipelined): " + " ".join(query.split())[:120])
        return await executemany(self, query, args, **kwargs)

    original = aioredis.Redis.execute_command
    original_pipe = aioredis.client.Pipeline.execute

    async def command(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append("redis: " + " ".join(str(a) for a in args[:2])[:100])
        return await original(self, *args, **kwargs)  # type: ignore[no-untyped-call]

    async def pipe(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(f"redis: pipeline of {len(self.command_stack)}")
        return await original_pipe(self, *args, **kwargs)

    hooks: list[tuple[str, Callable[..., Any]]] = [("before_cursor_execute", statement)]
    for name, fn in hooks:
        event.listen(Engine, name, fn)
    for name in originals:
        setattr(transaction, name, sent(name))
    asyncpg.Connection.fetch = native_fetch
    asyncpg.Connection.executemany = native_many
    aioredis.Redis.execute_command = command  # type: ignore[method-assign]
    aioredis.client.Pipeline.execute = pipe  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        for name, fn in hooks:
            event.remove(Engine, name, fn)
        aioredis.Redis.execute_command = original  # type: ignore[method-assign]
        aioredis.client.Pipeline.execute = original_pipe  # type: ignore[method-assign]
        for name, fn in originals.items():
            setattr(transaction, name, fn)
        asyncpg.Connection.fetch = fetch
        asyncpg.Connection.executemany = executemany


def run(
    paths: list[str], n: int, profile: str, trace: bool, concurrency: int = 1
) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory() as data,
        servers.postgres() as db_url,
        servers.redis() as (redis_url, _),
    ):
        env = bench_env(db_url, redis_url, data)
        upgrade(db_url)  # alembic runs its own event loop
        return asyncio.run(_measure(env, paths, n, profile, trace, concurrency))


async def _measure(
    env: dict[str, str], paths: list[str], n: int, profile: str, trace: bool, concurrency: int
) -> dict[str, float]:
    if True:
        seeded = await seed(env, 20)
        await add_contributions(env)
        app = create_app(settings_from_env(env))
        # The app runs in this thread and loop (Litestar's test client would run it in another
        # thread, out of reach of the profiler).
        transport = httpx.ASGITransport(app=cast(Any, app), client=("127.0.0.1", 1))
        async with (
            app.lifespan(),
            httpx.AsyncClient(transport=transport, base_url="http://bench.local") as http,
        ):
            hospital, persons = await sign_in(http, seeded, env)

            async def code(i: int) -> str:
                reply = await http.post("/v1/me/ecert/qr", headers=persons[i % len(persons)])
                return str(reply.json()["qr"])

            async def ec_token(i: int) -> str:
                reply = await http.post("/v1/verify", json={"qr": await code(i)}, headers=hospital)
                return str(reply.json()["ec_token"])

            tokens = [await ec_token(i) for i in range(n)] if "settle" in paths else []
            # Minted last, just before verify runs first: codes live two minutes at most.
            codes = [await code(i) for i in range(n)]
            year = business_date().year
            channel_id, channel_secret = seeded.channel
            person_id, person_name = seeded.persons[0]

            async def verify(i: int) -> int:
                reply = await http.post("/v1/verify", json={"qr": codes[i]}, headers=hospital)
                return reply.status_code

            async def mint(i: int) -> int:
                reply = await http.post("/v1/me/ecert/qr", headers=persons[i % len(persons)])
                return reply.status_code

            async def lookup(i: int) -> int:
                reply = await http.get(
                    f"/v1/me/contributions?from={year}01&to={year}12",
                    headers=persons[i % len(persons)],
                )
                return reply.status_code

            async def settle(i: int) -> int:
                reply = await http.post(
                    "/v1/settlements",
                    content=json.dumps({**BILL, "ec_token": tokens[i]}),
                    headers={
                        **hospital,
                        "Idempotency-Key": f"s-{i}",
                        "Content-Type": "application/json",
                    },
                )
                return reply.status_code

            async def grant(i: int) -> int:
                assertion = person_assertion(
                    channel_id,
                    channel_secret,
                    person_id,
                    person_name,
                    audience=env["ECERT_ISSUER_URL"],
                )
                reply = await http.post(
                    "/oauth/token",
                    auth=(channel_id, channel_secret),
                    data={"grant_type": JWT_BEARER, "assertion": assertion},
                )
                return reply.status_code

            table: dict[str, Callable[[int], Awaitable[int]]] = {
                "verify": verify,
                "mint": mint,
                "lookup": lookup,
                "settle": settle,
                "grant": grant,
            }
            results: dict[str, float] = {}
            if trace:
                for name in paths:
                    with _tracing() as seen:
                        await table[name](1)
                    print(f"--- {name}: {len(seen)} round trips")
                    for line in seen:
                        print("   ", line)
            for name in paths:
                # CPU time, not wall time: on a busy machine waiting would swamp the profile.
                profiler = cProfile.Profile(time.process_time) if profile else None
                work = table[name]
                await work(n - 1)  # warm: the last code or token is not measured
                statuses: dict[int, int] = {}
                start = time.process_time()
                if profiler:
                    profiler.enable()
                # In waves of ``concurrency`` requests in flight (1: one at a time), so that what
                # requests share (the audit group commit) shows in the CPU per request.
                for wave in range(0, n - 1, concurrency):
                    ids = range(wave, min(wave + concurrency, n - 1))
                    for status in await asyncio.gather(*(work(i) for i in ids)):
                        statuses[status] = statuses.get(status, 0) + 1
                if profiler:
                    profiler.disable()
                cpu = time.process_time() - start
                results[name] = cpu / sum(statuses.values()) * 1000
                results[f"{name} statuses"] = statuses  # type: ignore[assignment]
                if profiler:
                    profiler.dump_stats(f"{profile}.{name}")
                    calls = pstats.Stats(profiler).total_calls  # type: ignore[attr-defined]
                    # Deterministic, unlike time on a shared machine: a proxy for CPU to compare.
                    results[f"{name} calls"] = calls / sum(statuses.values())
            return results


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(
        prog="python -m bench.inproc", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--paths", default="verify,mint,lookup,settle,grant")
    parser.add_argument("-n", type=int, default=400)
    parser.add_argument("--profile", default="")
    parser.add_argument("--trace", action="store_true", help="print one request's round trips")
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight at once")
    args = parser.parse_args()
    results = run(args.paths.split(","), args.n, args.profile, args.trace, args.concurrency)
    at_once = "one request at a time" if args.concurrency == 1 else f"{args.concurrency} at once"
    table = Table(title=f"CPU of this process per request (ms), {at_once}")
    table.add_column("path")
    table.add_column("ms CPU")
    table.add_column("Python calls")
    table.add_column("statuses")
    for name in args.paths.split(","):
        calls = results.get(f"{name} calls")
        table.add_row(
            name,
            f"{results[name]:.2f}",
            f"{calls:,.0f}" if calls else "",
            str(results[f"{name} statuses"]),
        )
    Console().print(table)


if __name__ == "__main__":
    main()
