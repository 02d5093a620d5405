"""``/metrics``: every worker's counters, the scrape-time gauges, and the optional token."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import time
from typing import Any

from litestar import Controller, Request, Response, get
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from ecert.errors import Unauthorized
from ecert.metrics import AUDIT_AT, AUDIT_OK, KEY_AGE
from ecert.security.keys import PURPOSES, NoSigningKey
from ecert.server.runtime import Runtime
from ecert.store import StoreUnavailable

#: Where ``ecert audit verify`` leaves its last result for the workers' scrapes.
AUDIT_RESULT_KEY = "ops:audit-verify"
AUDIT_RESULT_TTL_S = 400 * 86_400


async def record_audit_result(runtime: Runtime, intact: bool, rows: int) -> None:
    """Leave ``ecert audit verify``'s result where every worker's scrape can read it."""
    value = json.dumps({"intact": intact, "rows": rows, "at": time.time()}).encode()
    # Store down: the metric says "not run"; the command's exit status still tells the truth.
    with contextlib.suppress(StoreUnavailable):
        await runtime.store.set(AUDIT_RESULT_KEY, value, AUDIT_RESULT_TTL_S)


async def _refresh_scrape_gauges(runtime: Runtime) -> None:
    now = time.time()
    for purpose in PURPOSES:
        try:
            activated = runtime.keys.signer(purpose).activated_at
        except NoSigningKey:
            continue
        if activated is not None:
            KEY_AGE.labels(purpose).set(max(0.0, now - activated.timestamp()))
    try:
        raw = await runtime.store.get(AUDIT_RESULT_KEY)
    except StoreUnavailable:
        raw = None
    if raw is None:
        AUDIT_OK.set(-1)
        return
    result = json.loads(raw)
    AUDIT_OK.set(1 if result.get("intact") else 0)
    AUDIT_AT.set(float(result.get("at", 0)))


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


class MetricsUnauthorized(Unauthorized):
    """``ECERT_METRICS_TOKEN`` is set and the scrape did not present it."""

    code = "metrics_token_required"
    title = "The metrics token is required"


class MetricsController(Controller):
    path = "/metrics"
    include_in_schema = False

    @get("/", exclude_from_auth=True)
    async def metrics(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        runtime: Runtime = request.app.state.runtime
        token = runtime.settings.metrics_token
        if token:
            presented = request.headers.get("authorization", "")
            if not hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
                raise MetricsUnauthorized()
        await _refresh_scrape_gauges(runtime)
        # Multi-process mode reads every worker's files: off the event loop.
        body = await asyncio.to_thread(lambda: generate_latest(_registry()))
        return Response(body, media_type=CONTENT_TYPE_LATEST, status_code=200)
