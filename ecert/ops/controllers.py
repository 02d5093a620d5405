"""``/healthz`` (process alive) and ``/readyz`` (database and store reachable)."""

from __future__ import annotations

import asyncio

import msgspec
from litestar import Controller, Response, get
from sqlalchemy import text

from ecert.deps import RuntimeDep


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    database: str
    store: str


class HealthController(Controller):
    tags = ["Operations"]

    @get("/healthz", exclude_from_auth=True, summary="Liveness")
    async def healthz(self) -> Health:
        return Health(status="ok")

    @get("/readyz", exclude_from_auth=True, summary="Readiness: database and store reachable")
    async def readyz(self, runtime: RuntimeDep) -> Response[Readiness]:
        database = "ok"
        try:
            async with asyncio.timeout(2), runtime.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:  # any failure means not ready; the reason is in the logs
            database = "down"
        store = "ok" if await runtime.store.ping() else "down"
        ready = database == "ok" and store == "ok"
        body = Readiness(status="ready" if ready else "not_ready", database=database, store=store)
        return Response(body, status_code=200 if ready else 503)
