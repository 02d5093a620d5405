"""The benchmark: one command, every figure measured beside its reference in the same run.

    python -m bench [--seconds 5] [--people 200] [--codes 12000] [--sizes 1000,100000]

Starts throwaway PostgreSQL and Redis on loopback, seeds them, runs ``ecert serve --workers 2``
and the reference app (``bench/reference.py``: endpoints that only sign or only verify an ES256
JWT) with the same worker count, and drives both with wrk (a C load generator, so the generator
is not the bottleneck), bounded by time and by request count. Reference and figure run one after
the other, so a noisy neighbour hits both. Then: the settlement invariants and an idempotent
replay, the peak RSS of the workers, the in-process figures (``bench.micro``) and the
contribution lookup as the data grows (``bench.lookup``). Results are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import text

from bench import cpu, lookup, micro
from bench.harness import (
    INITIAL_BALANCE,
    JWT_BEARER,
    Seeded,
    bench_env,
    ecert_serve,
    ledger_check,
    seed,
    serve,
    sign_in,
    uvicorn_serve,
    worker_peak_rss_mb,
)
from ecert.app import create_app
from ecert.clock import business_date
from ecert.config import settings_from_env
from ecert.db.migrate import upgrade
from ecert.server.runtime import build_runtime
from tests import servers
from tests.fixtures.auth import person_assertion

LUA = Path(__file__).parent / "lua" / "post.lua"
THREADS = 2
BILL = {
    "med_type": "11",
    "use_account": True,
    "items": [{"code": "A1", "name": "检查", "item_class": "A", "amount": 2000}],
}


@dataclass(frozen=True)
class Figure:
    name: str
    url: str
    method: str = "POST"
    bodies: str = ""
    tokens: str = ""
    connections: int = 32
    #: Requests per wrk thread at most (besides the time bound; ``--max-requests`` caps it too).
    limit: int = 0
    reference: str = ""
    #: ``≥ 0.30 ×`` (of ``reference``) or ``≥ 500 /s``.
    target: str = ""
    content_type: str = ""


def wrk(figure: Figure, seconds: float, max_requests: int) -> dict[str, float]:
    """Run wrk for one figure: requests/s, p50 and p99 (ms), failures, successes."""
    cap = max_requests // THREADS
    limit = min(figure.limit, cap) if figure.limit else cap
    out = subprocess.run(
        [
            "wrk",
            f"-t{THREADS}",
            f"-c{figure.connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            figure.url,
            "--",
            figure.bodies,
            figure.tokens,
            figure.method,
            str(limit),
            str(THREADS),
            figure.content_type,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    requests, failed, micros, p50, p99 = line.split()[1:]
    return {
        "rps": int(requests) / (int(micros) / 1e6),
        "p50": float(p50),
        "p99": float(p99),
        "failed": int(failed),
        "ok": int(requests) - int(failed),
        # wrk divides by its whole run time even when the threads stopped at the cap early.
        "capped": int(requests) >= limit * THREADS,
    }


async def add_contributions(env: dict[str, str]) -> None:
    """Twelve paid months this year for every seeded person (what the lookup figure reads)."""
    runtime = build_runtime(settings_from_env(env))
    year = business_date().year
    try:
        async with runtime.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO contributions (id, person_id, month, base, employer_amount,"
                    " employee_amount, account_credit, status, credited, created_at, updated_at)"
                    " SELECT gen_random_uuid(), p.id, :year || lpad(m::text, 2, '0'), 800000,"
                    " 64000, 16000, 16000, 'paid', true, now(), now()"
                    " FROM persons p, generate_series(1, 12) AS m"
                ),
                {"year": str(year)},
            )
    finally:
        await runtime.engine.dispose()
        await runtime.store.close()


async def prepare(
    base: str,
    env: dict[str, str],
    seeded: Seeded,
    folder: Path,
    codes_wanted: int,
    bills: int,
    grants: int,
) -> dict[str, Path]:
    """Token files, single-use codes for verify, bills carrying ec_tokens for settle, and
    person assertions (each ``jti`` works once) for the channel's person-token grant."""
    # Idle connections are dropped before uvicorn's 5 s keep-alive ends: reusing one the server
    # is closing fails the request (httpx.ReadError).
    limits = httpx.Limits(keepalive_expiry=2)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        hospital, persons = await sign_in(http, seeded, env)
        names = ("hospital", "persons", "codes", "bills", "grants", "channel")
        files = {name: folder / f"{name}.txt" for name in names}
        files["hospital"].write_text(hospital["Authorization"].split()[1] + "\n")
        files["persons"].write_text(
            "\n".join(h["Authorization"].split()[1] for h in persons) + "\n"
        )
        codes: list[str] = []
        gate = asyncio.Semaphore(32)
        with Progress(transient=True) as progress:
            task = progress.add_task("single-use codes", total=codes_wanted + bills)

            async def mint(i: int) -> None:
                async with gate:
                    reply = await http.post("/v1/me/ecert/qr", headers=persons[i % len(persons)])
                    codes.append(reply.json()["qr"])
                    progress.advance(task)

            await asyncio.gather(*(mint(i) for i in range(codes_wanted + bills)))
            # An ec_token opens one settlement and is then spent: one token a bill.
            tokens: list[str] = []
            verifying = progress.add_task("ec_tokens for the bills", total=bills)

            async def verify(code: str) -> None:
                async with gate:
                    reply = await http.post("/v1/verify", json={"qr": code}, headers=hospital)
                    tokens.append(reply.json()["ec_token"])
                    progress.advance(verifying)

            await asyncio.gather(*(verify(code) for code in codes[:bills]))
        files["bills"].write_text("\n".join(json.dumps({**BILL, "ec_token": t}) for t in tokens))
        files["codes"].write_text("\n".join(json.dumps({"qr": c}) for c in codes[bills:]))
    # Last: a person assertion lives five minutes at most.
    channel_id, channel_secret = seeded.channel
    basic = base64.b64encode(f"{channel_id}:{channel_secret}".encode()).decode()
    files["channel"].write_text(f"Basic {basic}\n")
    bodies = []
    for n in range(grants):
        id_number, name = seeded.persons[n % len(seeded.persons)]
        assertion = person_assertion(
            channel_id, channel_secret, id_number, name, audience=env["ECERT_ISSUER_URL"]
        )
        bodies.append(urlencode({"grant_type": JWT_BEARER, "assertion": assertion}))
    files["grants"].write_text("\n".join(bodies))
    return files


async def replay(base: str, files: dict[str, Path], count: int) -> str:
    """Resend the first ``count`` settle keys with their bodies: each must answer as before."""
    hospital = {"Authorization": "Bearer " + files["hospital"].read_text().strip()}
    bills = files["bills"].read_text().splitlines()
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        # From k-1: wrk calls request() once on the first thread to check the script, so that
        # thread's first number (k-0) is built but never sent.
        for n in range(1, count + 1):
            reply = await http.post(
                "/v1/settlements",
                content=bills[n % len(bills)],
                headers={
                    **hospital,
                    "Idempotency-Key": f"k-{n}",
                    "Content-Type": "application/json",
                },
            )
            if reply.status_code != 201 or reply.headers.get("Idempotent-Replayed") != "true":
                return f"FAILED at k-{n}: {reply.status_code} {reply.text[:120]}"
    return "OK"


def figures(
    base: str, ref: str, files: dict[str, Path], codes: int, bills_count: int, grants: int = 0
) -> list[Figure]:
    persons, hospital = str(files["persons"]), str(files["hospital"])
    bills = str(files["bills"])
    year = business_date().year
    return [
        Figure("reference: bare ES256 sign", f"{ref}/sign"),
        Figure(
            "QR mint",
            f"{base}/v1/me/ecert/qr",
            tokens=persons,
            reference="reference: bare ES256 sign",
            target="≥ 0.50 ×",
        ),
        Figure("reference: bare ES256 verify", f"{ref}/verify"),
        Figure(
            "online verify",
            f"{base}/v1/verify",
            bodies=str(files["codes"]),
            tokens=hospital,
            limit=codes // THREADS,  # never a code twice: every verify is a first use
            reference="reference: bare ES256 verify",
            target="≥ 0.30 ×",
        ),
        Figure(
            "person-token grant",
            f"{base}/oauth/token",
            bodies=str(files["grants"]),
            tokens=str(files["channel"]),
            content_type="application/x-www-form-urlencoded",
            limit=max(grants // THREADS, 1),  # never an assertion twice: each jti works once
            reference="reference: bare ES256 verify",
            target="≥ 0.20 ×",
        ),
        Figure("QR PNG", f"{base}/v1/me/ecert/qr.png", method="GET", tokens=persons),
        Figure("QR SVG", f"{base}/v1/me/ecert/qr.svg", method="GET", tokens=persons),
        Figure(
            "settlement preview", f"{base}/v1/settlements/preview", bodies=bills, tokens=hospital
        ),
        Figure(
            "settle (64 connections)",
            f"{base}/v1/settlements",
            bodies=bills,
            tokens=hospital,
            connections=64,
            limit=bills_count // THREADS,  # never a token twice: each settles once
            reference="reference: bare ES256 verify",
            target="≥ 0.10 ×",
        ),
        Figure(
            "contribution lookup",
            f"{base}/v1/me/contributions?from={year}01&to={year}12",
            method="GET",
            tokens=persons,
            reference="reference: bare ES256 verify",
            target="≥ 0.40 ×",
        ),
    ]


def chosen(plan: list[Figure], only: str) -> list[Figure]:
    """The figures named in ``only`` (a part of each name, comma separated) and the references
    they are rated against; every figure when ``only`` is empty."""
    if not only:
        return plan
    parts = [p.strip().lower() for p in only.split(",") if p.strip()]
    keep = {f.name for f in plan if any(p in f.name.lower() for p in parts)}
    keep |= {f.reference for f in plan if f.name in keep and f.reference}
    return [f for f in plan if f.name in keep]


def http_table(rows: list[tuple[Figure, dict[str, float]]], seconds: float) -> Table:
    table = Table(
        title=f"HTTP: wrk, {THREADS} threads, ~{seconds:.0f} s a figure; "
        f"ecert and reference with the same workers, PostgreSQL + Redis on loopback"
    )
    for column in ("figure", "req/s", "p50 ms", "p99 ms", "failed", "ratio", "target", "met"):
        table.add_column(column)
    by_name = {figure.name: result for figure, result in rows}
    for figure, r in rows:
        ratio, met = "", ""
        if r["capped"] or (figure.reference and by_name[figure.reference]["capped"]):
            met = "request cap hit: rate understated, raise --max-requests"
        elif figure.reference:
            value = r["rps"] / by_name[figure.reference]["rps"]
            ratio = f"{value:.2f}"
            met = "yes" if value >= float(figure.target.split()[1]) else "no"
        elif figure.target:
            met = "yes" if r["rps"] >= float(figure.target.split()[1].replace(",", "")) else "no"
        table.add_row(
            figure.name,
            f"{r['rps']:,.0f}",
            f"{r['p50']:.1f}",
            f"{r['p99']:.1f}",
            str(int(r["failed"])),
            ratio,
            figure.target,
            met,
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5, help="per HTTP figure")
    parser.add_argument("--people", type=int, default=200, help="insured people seeded")
    parser.add_argument("--codes", type=int, default=12000, help="single-use codes for verify")
    parser.add_argument(
        "--bills", type=int, default=8000, help="bills for settle, each with its own ec_token"
    )
    parser.add_argument(
        "--grants", type=int, default=6000, help="person assertions for the token grant figure"
    )
    parser.add_argument(
        "--max-requests", type=int, default=1_000_000, help="per HTTP figure, besides --seconds"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes of ecert and of the reference"
    )
    parser.add_argument(
        "--sizes", default="1000,100000", help="persons for the lookup-by-size table (1000000 ok)"
    )
    parser.add_argument(
        "--only",
        default="",
        help="while working on a path: only these HTTP figures (and their references), e.g. "
        "'verify,settle' (matched against the figure names), no in-process or lookup-size tables",
    )
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    console = Console()
    with (
        tempfile.TemporaryDirectory() as data,
        servers.postgres() as db_url,
        servers.redis() as (redis_url, _),
    ):
        env = bench_env(db_url, redis_url, data)
        upgrade(db_url)
        with console.status(f"seeding {args.people} insured people"):
            seeded = asyncio.run(seed(env, args.people))
            asyncio.run(add_contributions(env))
        port, ref_port = servers.free_port(), servers.free_port()
        base, ref = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ref_port}"
        with (
            serve(ecert_serve(port, args.workers), port, env) as ecert_process,
            serve(
                uvicorn_serve("bench.reference:create_app", ref_port, args.workers), ref_port, env
            ) as ref_process,
        ):
            files = asyncio.run(
                prepare(base, env, seeded, Path(data), args.codes, args.bills, args.grants)
            )
            rows: list[tuple[Figure, dict[str, float]]] = []
            spent: list[tuple[str, dict[str, float]]] = []
            plan = chosen(figures(base, ref, files, args.codes, args.bills, args.grants), args.only)
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("HTTP figures", total=len(plan))
                for figure in plan:
                    progress.update(task, description=figure.name)
                    before = cpu.snapshot(ecert_process.pid, ref_process.pid)
                    result = wrk(figure, args.seconds, args.max_requests)
                    after = cpu.snapshot(ecert_process.pid, ref_process.pid)
                    rows.append((figure, result))
                    requests = int(result["ok"] + result["failed"])
                    spent.append((figure.name, cpu.per_request(before, after, requests)))
                    progress.advance(task)
            rss = worker_peak_rss_mb(ecert_process)
            # Resending settle's keys only means something after the settle figure ran (with
            # --only, a key it never sent would settle a new bill).
            ran_settle = any(f.url.endswith("/v1/settlements") for f in plan)
            replayed = asyncio.run(replay(base, files, 20)) if ran_settle else "not run"
        settle, settled = next(
            ((f, r) for f, r in rows if f.url.endswith("/v1/settlements")),
            (None, {"ok": 0.0}),
        )
        checks = asyncio.run(
            ledger_check(env, int(settled["ok"]), settle.connections if settle else 64)
        )
        if args.only:
            console.print(http_table(rows, args.seconds))
            console.print(cpu.table(spent))
            console.print("; ".join(f"{n}: {'OK' if ok else 'FAILED'}" for n, ok in checks.items()))
            return
        with console.status("in-process figures"):
            inproc = micro.measure(rounds=5, seconds=0.5)
        settings = settings_from_env(
            env,
            rate_limit_per_minute=10**9,
            client_rate_limit_per_minute=10**9,
            redis_url="",
            env="development",  # in-process store on PostgreSQL: not production
            log_level="WARNING",
        )
        sizes = [int(s) for s in args.sizes.split(",") if s]
        by_size = asyncio.run(lookup.measure(create_app(settings), sizes, 300, console))
    console.print(http_table(rows, args.seconds))
    console.print(cpu.table(spent))
    console.print(
        f"peak RSS of an ecert worker: {rss:.0f} MB (target ≤ 250 MB); "
        f"settlement replay of 20 keys answered as before: {replayed}"
    )
    console.print(
        "after the settle run: "
        + "; ".join(f"{name}: {'OK' if ok else 'FAILED'}" for name, ok in checks.items())
        + f" (each person started with {INITIAL_BALANCE} fen)"
    )
    console.print(micro.table(inproc))
    console.print(lookup.table(by_size))


if __name__ == "__main__":
    main()
