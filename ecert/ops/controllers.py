"""``/healthz`` (process alive) and ``/readyz`` (may the balancer send requests here)."""

from __future__ import annotations

import asyncio

import msgspec
from litestar import Controller, Request, Response, get

from ecert.cards.workdays import calendar
from ecert.clock import business_date
from ecert.ops import repositories
from ecert.ops.readiness import Drain, SchemaCheck, SchemaState, StoreState
from ecert.server.deps import RuntimeDep


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    #: ``ready``, ``degraded`` (ready, the store is down: callers fall back to the database),
    #: ``not_ready`` (database down or schema behind) or ``draining`` (shutting down).
    status: str
    database: str
    store: str
    schema: str = SchemaState.UNKNOWN.value
    #: Things an operator should act on that do not make the node unready.
    warnings: list[str] = msgspec.field(default_factory=list)


class HealthController(Controller):
    tags = ["Operations"]

    @get("/healthz", exclude_from_auth=True, summary="Liveness")
    async def healthz(self) -> Health:
        return Health(status="ok")

    @get(
        "/readyz",
        exclude_from_auth=True,
        summary="Readiness: database reachable with a current schema; a store outage only degrades",
    )
    async def readyz(self, runtime: RuntimeDep, request: Request) -> Response[Readiness]:  # type: ignore[type-arg]
        state = request.app.state
        drain: Drain = state.drain
        schema_check: SchemaCheck = state.schema_check
        database = "ok"
        try:
            async with asyncio.timeout(2), runtime.engine.connect() as connection:
                await repositories.ping(connection)
        except Exception:  # any failure means not ready; the reason is in the logs
            database = "down"
        schema = await schema_check.state() if database == "ok" else SchemaState.UNKNOWN
        store = StoreState.OK if await runtime.store.ping() else StoreState.DEGRADED
        if drain.draining:
            status = "draining"
        elif database != "ok" or schema not in (SchemaState.CURRENT, SchemaState.AHEAD):
            status = "not_ready"
        else:
            status = "ready" if store == StoreState.OK else "degraded"
        warnings = calendar(runtime.settings.workday_file).warnings(business_date())
        body = Readiness(
            status=status,
            database=database,
            store=store.value,
            schema=schema.value,
            warnings=warnings,
        )
        return Response(body, status_code=200 if status in ("ready", "degraded") else 503)
