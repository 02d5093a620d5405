"""Load benchmark on real parts: ecert with 2 workers on PostgreSQL + Redis, on loopback.

    python -m bench.load [--seconds 10] [--people 200] [--concurrency 32]

Starts throwaway PostgreSQL and Redis, migrates and seeds them, starts ``ecert serve`` and the
reference app (``bench/reference.py``) with the same worker count, drives both with an asyncio
load generator (bounded by time and request count), prints requests/s, p50/p99 and the ratios
measured side by side, then checks the ledger invariants after the settlement run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import func, select

from ecert.clock import business_date
from ecert.config import settings_from_env
from ecert.data import illustrative_policies
from ecert.db.migrate import upgrade
from ecert.db.models import Account, Enrolment, LedgerEntry, Settlement
from ecert.demo import demo_person
from ecert.oauth.services import register_client
from ecert.persons import upsert_person
from ecert.runtime import build_runtime
from ecert.settlement import accounts
from tests import servers
from tests.helpers import person_assertion

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
INITIAL_BALANCE = 300_000


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def drive(
    name: str,
    call: Callable[[int], Awaitable[httpx.Response]],
    *,
    concurrency: int,
    seconds: float,
    limit: int,
    ok: tuple[int, ...] = (200, 201),
) -> Result:
    """Run ``call(i)`` from ``concurrency`` tasks until ``seconds`` pass or ``limit`` calls."""
    result = Result(name)
    counter = iter(range(limit))
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        for i in counter:
            if time.perf_counter() > deadline:
                return
            started = time.perf_counter()
            response = await call(i)
            if response.status_code in ok:
                result.latencies.append(time.perf_counter() - started)
            else:
                result.errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


@contextlib.contextmanager
def serve(target: list[str], port: int, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            *target,
            "--factory",
            "--workers",
            "2",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
        start_new_session=True,
    )
    try:
        servers._wait_port(port, 30)
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)


def worker_peak_rss_mb(master: subprocess.Popen[bytes]) -> float:
    peaks = []
    for child in Path("/proc").glob("[0-9]*"):
        try:
            status = (child / "status").read_text()
        except OSError:
            continue
        if f"PPid:\t{master.pid}\n" in status:
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
    return max(peaks, default=float("nan"))


async def seed(env: dict[str, str], people: int) -> dict[str, object]:
    runtime = build_runtime(settings_from_env(env))
    try:
        async with runtime.sessions.begin() as session:
            await accounts.upsert_policies(session, illustrative_policies(business_date().year))
            channel, channel_secret = await register_client(session, kind="channel", name="bench")
            hospital, hospital_secret = await register_client(
                session,
                kind="institution",
                name="bench hospital",
                code="H37010299999",
                level="2",
                area="370102",
            )
            persons = []
            for index in range(people):
                data = demo_person(10_000 + index)
                person = await upsert_person(
                    session,
                    runtime.cipher,
                    id_number=data["id_number"],
                    name=data["name"],
                    area="370102",
                    category="employee",
                )
                session.add(
                    Enrolment(
                        person_id=person.id,
                        insurance_type="310",
                        area="370102",
                        status="active",
                        start_date=business_date(),
                    )
                )
                await accounts.credit(session, person.id, INITIAL_BALANCE, "bench")
                persons.append((data["id_number"], data["name"]))
        return {
            "channel": (channel.client_id, channel_secret),
            "hospital": (hospital.client_id, hospital_secret),
            "persons": persons,
        }
    finally:
        await runtime.engine.dispose()
        await runtime.store.close()


async def ledger_check(env: dict[str, str], settled: int) -> dict[str, object]:
    runtime = build_runtime(settings_from_env(env))
    try:
        async with runtime.sessions() as session:
            balances = (await session.scalars(select(Account.balance))).all()
            count = await session.scalar(select(func.count()).select_from(Settlement))
            paid = await session.scalar(select(func.coalesce(func.sum(Settlement.account_paid), 0)))
            ledger = await session.scalar(select(func.sum(LedgerEntry.amount)))
        return {
            "balances ≥ 0": min(balances) >= 0,
            "money conserved": sum(balances) == len(balances) * INITIAL_BALANCE - int(paid or 0)
            and ledger == sum(balances),
            "each idempotency key once": count == settled,
        }
    finally:
        await runtime.engine.dispose()
        await runtime.store.close()


async def sign_in(
    http: httpx.AsyncClient, seeded: dict[str, object], env: dict[str, str]
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The hospital's headers, and each seeded person's (e-cert activated on a device)."""
    channel_id, channel_secret = seeded["channel"]  # type: ignore[misc]
    hospital_id, hospital_secret = seeded["hospital"]  # type: ignore[misc]
    token = (
        await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(hospital_id, hospital_secret),
        )
    ).json()["access_token"]
    people: list[dict[str, str]] = []
    with Progress(transient=True) as progress:
        task = progress.add_task("person tokens", total=len(seeded["persons"]))  # type: ignore[arg-type]
        for id_number, name in seeded["persons"]:  # type: ignore[attr-defined]
            assertion = person_assertion(
                channel_id, channel_secret, id_number, name, audience=env["ECERT_ISSUER_URL"]
            )
            reply = await http.post(
                "/oauth/token",
                auth=(channel_id, channel_secret),
                data={"grant_type": JWT_BEARER, "assertion": assertion},
            )
            headers = {"Authorization": f"Bearer {reply.json()['access_token']}"}
            await http.post(
                "/v1/me/ecert", json={"device_id": "b", "device_name": "b"}, headers=headers
            )
            people.append(headers)
            progress.advance(task)
    return {"Authorization": f"Bearer {token}"}, people


async def run(args: argparse.Namespace, env: dict[str, str], console: Console) -> None:
    port, ref_port = servers.free_port(), servers.free_port()
    with console.status("seeding"):
        seeded = await seed(env, args.people)
    with (
        serve(["ecert.app:create_app"], port, env) as ecert_server,
        serve(["bench.reference:create_app"], ref_port, env),
    ):
        limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
        async with (
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
            ) as http,
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{ref_port}", limits=limits, timeout=30
            ) as ref,
        ):
            hosp, people = await sign_in(http, seeded, env)
            n, c, s = len(people), args.concurrency, args.seconds
            results: list[Result] = []
            codes: list[str] = []

            async def mint(i: int) -> httpx.Response:
                response = await http.post("/v1/me/ecert/qr", headers=people[i % n])
                if response.status_code == 200:
                    codes.append(response.json()["qr"])
                return response

            results.append(
                await drive(
                    "reference: bare ES256 sign",
                    lambda i: ref.post("/sign"),
                    concurrency=c,
                    seconds=s,
                    limit=10**6,
                )
            )
            results.append(await drive("QR mint", mint, concurrency=c, seconds=s, limit=10**6))
            results.append(
                await drive(
                    "reference: bare ES256 verify",
                    lambda i: ref.post("/verify"),
                    concurrency=c,
                    seconds=s,
                    limit=10**6,
                )
            )
            ec_tokens: list[str] = []

            async def verify(i: int) -> httpx.Response:
                response = await http.post("/v1/verify", json={"qr": codes[i]}, headers=hosp)
                if response.status_code == 200:
                    ec_tokens.append(response.json()["ec_token"])
                return response

            results.append(
                await drive("online verify", verify, concurrency=c, seconds=s, limit=len(codes))
            )
            results.append(
                await drive(
                    "QR PNG",
                    lambda i: http.get("/v1/me/ecert/qr.png", headers=people[i % n]),
                    concurrency=c,
                    seconds=s,
                    limit=10**6,
                )
            )
            results.append(
                await drive(
                    "QR SVG",
                    lambda i: http.get("/v1/me/ecert/qr.svg", headers=people[i % n]),
                    concurrency=c,
                    seconds=s,
                    limit=10**6,
                )
            )

            def bill(i: int) -> dict[str, object]:
                return {
                    "ec_token": ec_tokens[i % len(ec_tokens)],
                    "med_type": "11",
                    "use_account": True,
                    "items": [
                        {
                            "code": "A1",
                            "name": "检查",
                            "item_class": "A",
                            "amount": 2_000 + i % 500,
                        },
                        {"code": "B1", "name": "药", "item_class": "B", "amount": 1_000},
                    ],
                }

            results.append(
                await drive(
                    "settlement preview",
                    lambda i: http.post("/v1/settlements/preview", json=bill(i), headers=hosp),
                    concurrency=c,
                    seconds=s,
                    limit=10**6,
                )
            )
            settle = await drive(
                "settle (64 clients)",
                lambda i: http.post(
                    "/v1/settlements",
                    json=bill(i),
                    headers={**hosp, "Idempotency-Key": uuid.uuid4().hex},
                ),
                concurrency=64,
                seconds=s,
                limit=10**6,
            )
            results.append(settle)
            rss = worker_peak_rss_mb(ecert_server)
    checks = await ledger_check(env, len(settle.latencies))
    report(console, results, rss, checks, args)


def report(
    console: Console,
    results: list[Result],
    rss: float,
    checks: dict[str, object],
    args: argparse.Namespace,
) -> None:
    by = {r.name: r for r in results}
    table = Table(
        title=f"ecert on PostgreSQL + Redis, 2 workers, loopback, {args.seconds:.0f} s "
        f"a figure, {args.concurrency} clients (settle: 64)"
    )
    for column in ("figure", "req/s", "p50 ms", "p99 ms", "errors", "ratio"):
        table.add_column(column)
    ratios = {
        "QR mint": "reference: bare ES256 sign",
        "online verify": "reference: bare ES256 verify",
    }
    for r in results:
        ratio = ""
        if r.name in ratios and by[ratios[r.name]].rps:
            ratio = f"{r.rps / by[ratios[r.name]].rps:.2f} × reference"
        table.add_row(
            r.name, f"{r.rps:,.0f}", f"{r.pct(0.5):.1f}", f"{r.pct(0.99):.1f}", str(r.errors), ratio
        )
    console.print(table)
    console.print(f"peak RSS of an ecert worker: {rss:.0f} MB")
    for name, ok in checks.items():
        console.print(f"invariant {name}: {'OK' if ok else 'FAILED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per figure")
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    console = Console()
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    with (
        tempfile.TemporaryDirectory() as data,
        servers.postgres() as db_url,
        servers.redis() as (redis_url, _),
    ):
        env = {
            **os.environ,
            "ECERT_DATABASE_URL": db_url,
            "ECERT_REDIS_URL": redis_url,
            "ECERT_DATA_DIR": data,
            "ECERT_PII_KEYS": f"b1:{key}",
            "ECERT_HASH_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "ECERT_QR_TTL_S": "120",
            "ECERT_RATE_LIMIT_PER_MINUTE": "100000000",
            "ECERT_LOG_LEVEL": "WARNING",
            "ECERT_ISSUER_URL": "http://bench.local",
            "ECERT_DB_POOL_SIZE": "20",
        }
        upgrade(db_url)
        asyncio.run(run(args, env, console))


if __name__ == "__main__":
    main()
