"""The HTTP benchmark driven by wrk (a C load generator), so the generator is not the bottleneck.

    python -m bench.wrk_load [--seconds 10] [--people 200]

Same set-up as ``bench.load`` (PostgreSQL + Redis, ecert and the reference app with 2 workers on
loopback). Single-use codes and settlement tokens are prepared beforehand and each request takes
the next one, so every verify is a first use. wrk runs 2 threads (the machine has 2 cores, shared
with the servers); its own latency percentiles are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from bench.load import INITIAL_BALANCE, ledger_check, seed, serve, sign_in
from ecert.db.migrate import upgrade
from tests import servers

LUA = Path(__file__).parent / "lua" / "post.lua"


def wrk(url: str, seconds: float, connections: int, *args: str) -> dict[str, float]:
    """Run wrk with the POST script; returns requests/s, p50 and p99 (ms) and non-2xx count."""
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{int(seconds)}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            url,
            "--",
            *args,
            "2",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    requests, errors, micros, p50, p99 = line.split()[1:]
    return {
        "rps": int(requests) / (int(micros) / 1e6),
        "p50": float(p50),
        "p99": float(p99),
        "errors": int(errors),
    }


async def prepare(
    base: str, env: dict[str, str], people: int, folder: Path, codes_wanted: int
) -> dict[str, Path]:
    seeded = await seed(env, people)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        hosp, persons = await sign_in(http, seeded, env)
        files = {
            "hospital": folder / "hospital.txt",
            "persons": folder / "persons.txt",
            "codes": folder / "codes.jsonl",
            "bills": folder / "bills.jsonl",
        }
        files["hospital"].write_text(hosp["Authorization"].split()[1] + "\n")
        files["persons"].write_text(
            "\n".join(h["Authorization"].split()[1] for h in persons) + "\n"
        )
        codes = []
        sem = asyncio.Semaphore(32)

        async def mint(i: int) -> None:
            async with sem:
                reply = await http.post("/v1/me/ecert/qr", headers=persons[i % len(persons)])
                codes.append(reply.json()["qr"])

        await asyncio.gather(*(mint(i) for i in range(codes_wanted)))
        files["codes"].write_text("\n".join(json.dumps({"qr": c}) for c in codes) + "\n")
        tokens = []
        for code in codes[: len(persons) * 2]:  # a few ec_tokens per person, used by the bills
            reply = await http.post("/v1/verify", json={"qr": code}, headers=hosp)
            tokens.append(reply.json()["ec_token"])
        bill = {
            "med_type": "11",
            "use_account": True,
            "items": [{"code": "A1", "name": "检查", "item_class": "A", "amount": 2000}],
        }
        files["bills"].write_text(
            "\n".join(json.dumps({**bill, "ec_token": t}) for t in tokens) + "\n"
        )
        # The codes used for ec_tokens are spent: verify takes the rest.
        files["codes"].write_text(
            "\n".join(json.dumps({"qr": c}) for c in codes[len(persons) * 2 :]) + "\n"
        )
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--codes", type=int, default=20000)
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
            "ECERT_RATE_LIMIT_PER_MINUTE": "1000000000",
            "ECERT_LOG_LEVEL": "WARNING",
            "ECERT_ISSUER_URL": "http://bench.local",
            "ECERT_DB_POOL_SIZE": "20",
        }
        upgrade(db_url)
        port, ref_port = servers.free_port(), servers.free_port()
        base, ref = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ref_port}"
        with (
            serve(["ecert.app:create_app"], port, env),
            serve(["bench.reference:create_app"], ref_port, env),
        ):
            folder = Path(data)
            with console.status("minting codes and settlement tokens"):
                files = asyncio.run(prepare(base, env, args.people, folder, args.codes))
            started = time.time()
            s = args.seconds
            rows = [
                ("reference: bare ES256 sign", wrk(f"{ref}/sign", s, 32, "", "")),
                ("QR mint", wrk(f"{base}/v1/me/ecert/qr", s, 32, "", str(files["persons"]))),
                ("reference: bare ES256 verify", wrk(f"{ref}/verify", s, 32, "", "")),
                (
                    "online verify",
                    wrk(f"{base}/v1/verify", s, 32, str(files["codes"]), str(files["hospital"])),
                ),
                (
                    "settle (64 connections)",
                    wrk(
                        f"{base}/v1/settlements", s, 64, str(files["bills"]), str(files["hospital"])
                    ),
                ),
            ]
            console.print(f"(ran {time.time() - started:.0f} s)")
        checks = asyncio.run(ledger_check(env, -1))
    table = Table(title=f"wrk, 2 threads, {s:.0f} s a figure; ecert and reference with 2 workers")
    for column in ("figure", "req/s", "p50 ms", "p99 ms", "non-2xx/errors", "ratio"):
        table.add_column(column)
    by = dict(rows)
    refs = {
        "QR mint": "reference: bare ES256 sign",
        "online verify": "reference: bare ES256 verify",
    }
    for name, r in rows:
        ratio = f"{r['rps'] / by[refs[name]]['rps']:.2f}" if name in refs else ""
        table.add_row(
            name, f"{r['rps']:,.0f}", f"{r['p50']:.1f}", f"{r['p99']:.1f}", str(r["errors"]), ratio
        )
    console.print(table)
    console.print(
        f"balances ≥ 0: {checks['balances ≥ 0']}; money conserved: "
        f"{checks['money conserved']} (initial balance {INITIAL_BALANCE} each)"
    )


if __name__ == "__main__":
    main()
