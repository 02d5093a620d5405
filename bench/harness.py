"""What the benchmarks share: throwaway servers, seeding, sign-in, the ledger check, RSS.

Everything runs on loopback against real PostgreSQL and Redis started for the run
(``tests/servers.py``) and is thrown away afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.progress import Progress
from sqlalchemy import func, select

from ecert import ledger
from ecert.clock import business_date
from ecert.config import settings_from_env
from ecert.data import illustrative_policies
from ecert.db.models import Account, Enrolment, IdempotencyRecord, LedgerEntry, Settlement
from ecert.demo import demo_person
from ecert.oauth.services import register_client
from ecert.persons import upsert_person
from ecert.server.runtime import build_runtime
from tests import servers
from tests.fixtures.auth import person_assertion

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
INITIAL_BALANCE = 300_000


def bench_env(db_url: str, redis_url: str, data: str) -> dict[str, str]:
    """The environment of a benchmark's ecert: throwaway keys, limits out of the way."""
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return {
        **os.environ,
        "ECERT_DATABASE_URL": db_url,
        "ECERT_REDIS_URL": redis_url,
        "ECERT_DATA_DIR": data,
        "ECERT_PII_KEYS": f"b1:{key}",
        "ECERT_HASH_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "ECERT_QR_TTL_S": "120",  # the spec's upper bound, now enforced
        "ECERT_RATE_LIMIT_PER_MINUTE": "1000000000",
        "ECERT_CLIENT_RATE_LIMIT_PER_MINUTE": "1000000000",
        "ECERT_PEER_RATE_LIMIT_PER_MINUTE": "1000000000",
        "ECERT_LOG_LEVEL": "WARNING",
        "ECERT_ISSUER_URL": "http://bench.local",
        "ECERT_ISSUER_AREA": "370102",
        # Sized to the heaviest figure: settle keeps 32 transactions in flight a worker, each on its
        # own connection to its COMMIT (docs/operations.md, pool sizing).
        "ECERT_DB_POOL_SIZE": "32",
        # The bills' ec_tokens are made before the figures run; they must outlive them.
        "ECERT_EC_TOKEN_TTL_S": "3600",
    }


@contextlib.contextmanager
def serve(command: list[str], port: int, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server command in its own process group until the block ends."""
    process = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        servers._wait_port(port, 30)
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)


def ecert_serve(port: int, workers: int) -> list[str]:
    """``ecert serve``, the command operators run (it must work with several workers)."""
    ecert = str(Path(sys.executable).with_name("ecert"))
    return [ecert, "serve", "--port", str(port), "--workers", str(workers), "--no-migrate"]


def uvicorn_serve(target: str, port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--factory",
        "--workers",
        str(workers),
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


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


@dataclass(frozen=True)
class Seeded:
    """Credentials of the seeded channel and hospital, and each person's (ID number, name)."""

    channel: tuple[str, str]
    hospital: tuple[str, str]
    persons: list[tuple[str, str]]


async def seed(env: dict[str, str], people: int) -> Seeded:
    """Policies, a channel, a hospital and ``people`` enrolled persons with funded accounts."""
    runtime = build_runtime(settings_from_env(env))
    try:
        async with runtime.sessions.begin() as session:
            await ledger.upsert_policies(session, illustrative_policies(business_date().year))
            channel, channel_secret = await register_client(
                session, cipher=runtime.cipher, kind="channel", name="bench"
            )
            hospital, hospital_secret = await register_client(
                session,
                cipher=runtime.cipher,
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
                await ledger.credit(session, person.id, INITIAL_BALANCE, "bench")
                persons.append((data["id_number"], data["name"]))
        assert channel_secret is not None  # secret-authenticated clients, not private_key_jwt
        assert hospital_secret is not None
        return Seeded(
            (channel.client_id, channel_secret), (hospital.client_id, hospital_secret), persons
        )
    finally:
        await runtime.engine.dispose()
        await runtime.store.close()


async def ledger_check(env: dict[str, str], settled_ok: int, in_flight: int) -> dict[str, bool]:
    """The settlement invariants after a run. ``settled_ok`` is the count of 201 answers the
    load generator saw; up to ``in_flight`` more may have committed when it stopped mid-request."""
    runtime = build_runtime(settings_from_env(env))
    try:
        async with runtime.sessions() as session:
            balances = (await session.scalars(select(Account.balance))).all()
            count = await session.scalar(select(func.count()).select_from(Settlement))
            paid = await session.scalar(select(func.coalesce(func.sum(Settlement.account_paid), 0)))
            ledger = await session.scalar(select(func.sum(LedgerEntry.amount)))
            done = await session.scalar(
                select(func.count())
                .select_from(IdempotencyRecord)
                .where(IdempotencyRecord.status == "done")
            )
        return {
            "balances ≥ 0": min(balances) >= 0,
            "money conserved": sum(balances) == len(balances) * INITIAL_BALANCE - int(paid or 0)
            and ledger == sum(balances),
            "each idempotency key once": count == done
            and settled_ok <= (count or 0) <= settled_ok + in_flight,
        }
    finally:
        await runtime.engine.dispose()
        await runtime.store.close()


async def sign_in(
    http: httpx.AsyncClient, seeded: Seeded, env: dict[str, str]
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The hospital's headers, and each seeded person's (e-cert activated on a device)."""
    channel_id, channel_secret = seeded.channel
    hospital_id, hospital_secret = seeded.hospital
    token = (
        await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(hospital_id, hospital_secret),
        )
    ).json()["access_token"]
    people: list[dict[str, str]] = []
    with Progress(transient=True) as progress:
        task = progress.add_task("person tokens", total=len(seeded.persons))
        for id_number, name in seeded.persons:
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
