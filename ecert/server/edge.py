"""The outermost middleware: request id, request log, HTTP metrics and middleware refusals.

One ASGI layer instead of three (the request-id, Prometheus and problems middleware each wrapped
``send`` and built their own objects on every request). What each request sees is unchanged:

- a sane ``X-Request-ID`` is kept, any other replaced; it is echoed, bound to the log context and
  put in problems;
- one ``request`` log line with the true status (path only: query strings are never logged);
- ``ecert_requests_total``, ``ecert_request_duration_seconds``, ``ecert_requests_in_progress`` and
  ``ecert_requests_error_total`` by method, route template, status and app name, as Litestar's
  Prometheus middleware counted them (docs/observability.md);
- an error raised by a later middleware (401 from authentication, 429 from the rate limit) is
  rendered here as problem+json, inside the log and the metrics, which therefore see its status.
  Litestar would render it outside every middleware, where they recorded a 500 and a 200;
- a route's 2xx is sent only once its transaction committed (``server/commit.py``): a failed
  COMMIT is rendered here like a refusal (a dropped connection: 503), never followed by the 2xx.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram

from ecert.server.commit import commit_before_2xx
from ecert.server.observability import ensure_request_id
from ecert.server.problems import render_middleware_error

_log = structlog.get_logger("ecert.http")

APP_NAME = "ecert"
_LABELS = ("method", "path", "status_code", "app_name")
REQUESTS = Counter("ecert_requests_total", "Total requests", _LABELS)
REQUEST_TIME = Histogram("ecert_request_duration_seconds", "Request duration, in seconds", _LABELS)
IN_PROGRESS = Gauge(
    "ecert_requests_in_progress",
    "Total requests currently in progress",
    _LABELS,
    multiprocess_mode="livesum",
)
ERRORS = Counter("ecert_requests_error_total", "Total errors in requests", _LABELS)

# Label children by (method, route template[, status]): both sets are closed (the routes, the
# statuses sent), so the lookups prometheus_client does on every ``labels()`` happen once.
_progress: dict[tuple[str, str], Any] = {}
_finished: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}


def _in_progress(method: str, path: str) -> Any:
    key = (method, path)
    child = _progress.get(key)
    if child is None:
        # The status is 200 while in progress, as Litestar's middleware labelled it.
        child = _progress[key] = IN_PROGRESS.labels(method, path, "200", APP_NAME)
    return child


def _observe(method: str, path: str, status: int, seconds: float) -> None:
    key = (method, path, status)
    children = _finished.get(key)
    if children is None:
        values = (method, path, str(status), APP_NAME)
        error = ERRORS.labels(*values) if status >= 500 else None
        children = _finished[key] = (REQUESTS.labels(*values), REQUEST_TIME.labels(*values), error)
    count, duration, error = children
    if error is not None:
        error.inc()
    count.inc()
    duration.observe(seconds)


def edge_middleware(app: ASGIApp) -> ASGIApp:
    """Request id, request log, HTTP metrics and middleware refusals in one layer."""
    # Bound once, with the configuration ``create_app`` has just set: the module's lazy proxy
    # builds a new logger on every call (``cache_logger_on_first_use`` is off for the tests).
    log = _log.bind()

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        request_id = ensure_request_id(scope)
        echoed = (b"x-request-id", request_id.encode())
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        method: str = scope["method"]
        path: str = scope["path_template"]
        progress = _in_progress(method, path)
        progress.inc()
        started = time.perf_counter()
        ended = 0.0
        status = 500
        sent_start = False
        failed_commit: Exception | None = None

        async def edge_send(message: Message) -> None:
            nonlocal status, sent_start, ended, failed_commit
            if message["type"] == "http.response.start":
                try:
                    await commit_before_2xx(message, scope)
                except Exception as exc:
                    failed_commit = exc  # Litestar's route layer wraps it; render this one
                    raise
                sent_start = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), echoed]
            elif message["type"] == "http.response.body":
                ended = time.perf_counter()
            await send(message)

        try:
            try:
                await app(scope, receive, edge_send)
            except Exception as exc:
                if sent_start:
                    raise
                await render_middleware_error(scope, receive, edge_send, failed_commit or exc)
        finally:
            progress.dec()
            finished = time.perf_counter()
            _observe(method, path, status, (ended or finished) - started)
            user = scope.get("user")
            log.info(
                "request",
                method=method,
                path=scope["path"],
                status=status,
                request_id=request_id,
                ms=round((finished - started) * 1000, 2),
                client=getattr(user, "client_id", None),
            )
            structlog.contextvars.reset_contextvars(**tokens)

    return middleware
