"""What an online verify is made of under load: the route cut after each stage, each cut timed.

    python -m bench.stages [--codes 48000] [--seconds 3]

The server is ecert's own app (``create_app``, two workers, metrics shared through files as
``ecert serve`` does) with one more route, ``POST /bench/verify/{stage}``, registered here and
nowhere else. It runs online verify's own functions up to ``stage`` and answers:

0. the request: the gate (caller, rate limit), the JSON body, the session dependency;
1. and the code's claims: unpacked, the ES256 signature and the times checked;
2. and the early replay mark in Redis;
3. and the group spend in PostgreSQL (the holder's checks, the use, the ``ec_token``);
4. and the audit row (the group commit);

then the real ``POST /v1/verify`` (4 and the answer: names decrypted and masked, metrics). wrk
drives each with 32 connections; the machine time of one request is ``2 cores ÷ req/s``
(PostgreSQL, Redis and wrk share the cores), and a stage costs the difference from the one
before. Stages 2 and later spend every code once (a code file each); the bare ES256 verify
reference runs first, as in ``python -m bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import tempfile
from pathlib import Path

from litestar import Controller, Litestar, post
from litestar.params import JSONBody
from rich.console import Console
from rich.table import Table

from bench.__main__ import THREADS, Figure, prepare, wrk
from bench.harness import bench_env, seed, serve, uvicorn_serve
from ecert.app import create_app as create_ecert_app
from ecert.clock import utcnow
from ecert.db.migrate import upgrade
from ecert.security.audit import audit_values
from ecert.server.auth import admits, institution_guard, principal_of
from ecert.server.deps import AnyRequest, DbSession, RuntimeDep
from ecert.verify import schemas, services
from tests import servers

STAGES = (
    "request (gate, body, session)",
    "+ claims (unpack, ES256)",
    "+ Redis replay mark",
    "+ group spend (PostgreSQL)",
    "+ audit row (group commit)",
)


class VerifyStages(Controller):
    """Online verify cut after a stage (bench only)."""

    path = "/bench/verify"
    opt = admits(institution_guard)

    @post("/{stage:int}", status_code=200)
    async def cut(
        self,
        request: AnyRequest,
        stage: int,
        data: JSONBody[schemas.VerifyRequest],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> dict[str, str]:
        principal = principal_of(request)
        if stage == 0:
            return {"stage": "0"}
        claims, kid = await services._claims(runtime, db_session, data.qr)
        if stage == 1:
            return {"stage": "1"}
        await services._mark(runtime, None, claims)
        if stage == 2:
            return {"stage": "2"}
        institution = principal.institution_code or principal.client_id
        expires = utcnow() + dt.timedelta(seconds=runtime.settings.ec_token_ttl_s)
        values = services.spend_values(principal, claims, kid, institution, None, expires)
        holder, _ = await services._spend_on_postgres(
            db_session, runtime, principal, claims, kid, values
        )
        if stage == 3:
            return {"stage": "3"}
        row = audit_values(principal, holder.row.person_id, "verify", "ok", {})
        await runtime.audit_batches.append(row, db_session)
        return {"stage": "4"}


def create_app() -> Litestar:
    """uvicorn's factory: ecert's app with the stages route."""
    app = create_ecert_app()
    app.register(VerifyStages)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stages", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--codes", type=int, default=48_000, help="codes minted (a quarter a stage)"
    )
    parser.add_argument("--seconds", type=float, default=3)
    args = parser.parse_args()
    console = Console(width=140)
    with (
        tempfile.TemporaryDirectory() as data,
        servers.postgres() as db_url,
        servers.redis() as (redis_url, _),
    ):
        env = bench_env(db_url, redis_url, data)
        metrics = Path(data, "metrics")
        metrics.mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)  # as `ecert serve` with two workers
        upgrade(db_url)
        with console.status("seeding 200 insured people"):
            seeded = asyncio.run(seed(env, 200))
        port, ref_port = servers.free_port(), servers.free_port()
        base, ref = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ref_port}"
        with (
            serve(uvicorn_serve("bench.stages:create_app", port, 2), port, env),
            serve(uvicorn_serve("bench.reference:create_app", ref_port, 2), ref_port, env),
        ):
            with console.status(f"minting {args.codes:,} codes"):
                files = asyncio.run(prepare(base, env, seeded, Path(data), args.codes, 0, 0))
            lines = files["codes"].read_text().splitlines()
            share = len(lines) // 4
            for k in range(4):
                Path(data, f"codes-{k}").write_text("\n".join(lines[k * share : (k + 1) * share]))
            hospital = str(files["hospital"])

            def stage(name: str, url: str, codes: int) -> Figure:
                once = codes >= 0  # spends codes: each once (wrk's per-thread limit)
                return Figure(
                    name,
                    url,
                    bodies=str(Path(data, f"codes-{max(codes, 0)}")),
                    tokens=hospital,
                    limit=share // THREADS if once else 0,
                )

            plan = [Figure("reference: bare ES256 verify", f"{ref}/verify")]
            plan += [stage(STAGES[n], f"{base}/bench/verify/{n}", n - 2) for n in range(5)]
            plan.append(stage("+ the answer: POST /v1/verify", f"{base}/v1/verify", 3))
            rows = []
            for figure in plan:
                with console.status(figure.name):
                    rows.append((figure, wrk(figure, args.seconds, 10**9)))
    console.print(_table(rows, os.cpu_count() or 2))


def _table(rows: list[tuple[Figure, dict[str, float]]], cores: int) -> Table:
    table = Table(
        title=f"online verify, stage by stage (machine µs a request = {cores} cores ÷ req/s)"
    )
    for column in ("stage", "req/s", "µs a request", "µs this stage adds", "failed", "capped"):
        table.add_column(column)
    before = 0.0
    for n, (figure, result) in enumerate(rows):
        cost = cores / max(result["rps"], 1) * 1e6
        added = "" if n <= 1 else f"{cost - before:+.0f}"
        table.add_row(
            figure.name,
            f"{result['rps']:,.0f}",
            f"{cost:.0f}",
            added,
            f"{result['failed']:.0f}",
            "yes" if result.get("capped") else "",
        )
        before = cost if n >= 1 else before
    return table


if __name__ == "__main__":
    main()
