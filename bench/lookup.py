"""Contribution lookup latency as the data grows: 1k → 100k → 1 M persons, 12 months each.

    python -m bench.lookup [--sizes 1000,100000,1000000] [--calls 300]

Bulk data is made inside PostgreSQL with ``generate_series`` (the import path is measured by
``bench.imports``); the lookups go through the whole app in-process (auth, audit row, queries)
with person-scoped tokens for random people. Reports p50/p99 per size.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import random
import secrets
import statistics
import tempfile
import time
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from ecert.app import create_app
from ecert.config import settings_from_env
from ecert.db.migrate import upgrade
from ecert.oauth.services import register_client
from ecert.security.keys import ensure_active_keys
from ecert.security.tokens import Principal, mint_access_token
from tests import servers
from tests.fixtures.app import running

GROW = """
INSERT INTO persons (id, id_hash, id_cipher, name_cipher, id_kind, gender, birth_date, area,
                     category, person_no, created_at, updated_at)
SELECT md5('p' || i)::uuid, md5('h' || i) || md5('x' || i), '\\x00'::bytea, '\\x00'::bytea,
       'citizen', 'M', date '1980-01-01', '370102', 'employee', 'N' || i, now(), now()
FROM generate_series(:start, :stop - 1) AS i;
INSERT INTO contributions (id, person_id, month, base, employer_amount, employee_amount,
                           account_credit, status, credited, created_at, updated_at)
SELECT md5('c' || i || '-' || m)::uuid, md5('p' || i)::uuid, '2025' || lpad(m::text, 2, '0'),
       800000, 64000, 16000, 16000, 'paid', true, now(), now()
FROM generate_series(:start, :stop - 1) AS i, generate_series(1, 12) AS m;
"""


async def measure(
    app: Any, sizes: list[int], calls: int, console: Console
) -> list[tuple[int, float, float]]:
    runtime = app.state.runtime
    results = []
    async with runtime.sessions.begin() as session:
        await ensure_active_keys(session, runtime.cipher)
        # A registered channel: tokens of a client the database does not know are refused.
        channel, _ = await register_client(
            session, cipher=runtime.cipher, kind="channel", name="bench lookups"
        )
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            done = 0
            for size in sizes:
                with console.status(f"growing to {size:,} persons"):
                    async with runtime.engine.begin() as conn:
                        for statement in GROW.strip().split(";\n"):
                            await conn.execute(text(statement), {"start": done, "stop": size})
                        await conn.execute(text("ANALYZE persons"))
                        await conn.execute(text("ANALYZE contributions"))
                done = size
                latencies = []
                for _ in range(calls):
                    i = random.randrange(size)
                    async with runtime.engine.connect() as conn:
                        pid = (
                            await conn.execute(text("SELECT md5('p' || :i)::uuid"), {"i": str(i)})
                        ).scalar_one()
                    principal = Principal(channel.client_id, "channel", frozenset({"person"}), pid)
                    token = mint_access_token(runtime.keys, runtime.settings, principal, ttl_s=600)
                    started = time.perf_counter()
                    response = await client.get(
                        "/v1/me/contributions?from=202501&to=202512",
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    latencies.append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
                    assert response.json()["total"] == 12
                latencies.sort()
                results.append(
                    (
                        size,
                        statistics.median(latencies) * 1000,
                        latencies[int(0.99 * len(latencies)) - 1] * 1000,
                    )
                )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line a request would drown the table
    console = Console()
    sizes = [int(s) for s in args.sizes.split(",")]
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    with tempfile.TemporaryDirectory() as folder, servers.postgres() as db_url:
        upgrade(db_url)
        settings = settings_from_env(
            {},
            database_url=db_url,
            env="development",  # PostgreSQL without Redis
            data_dir=folder,
            pii_keys=f"b1:{key}",
            hash_key=key,
            log_level="WARNING",
            rate_limit_per_minute=10**9,
            client_rate_limit_per_minute=10**9,
        )
        results = asyncio.run(measure(create_app(settings), sizes, args.calls, console))
    console.print(table(results))


def table(results: list[tuple[int, float, float]]) -> Table:
    result = Table(
        title="GET /v1/me/contributions (12 months), one call at a time through the app, "
        "PostgreSQL; target p99 ≤ 20 ms at 1 M persons"
    )
    for column in ("persons", "contribution rows", "p50 ms", "p99 ms"):
        result.add_column(column)
    for size, p50, p99 in results:
        result.add_row(f"{size:,}", f"{size * 12:,}", f"{p50:.1f}", f"{p99:.1f}")
    return result


if __name__ == "__main__":
    main()
