"""RFC 9457 problem+json for every error, with a stable ``code`` and the request id.

Litestar ships a ProblemDetails plugin, but it only maps its own exception type; ecert needs one
shape for its errors, Litestar's built-in HTTP errors and unexpected crashes alike.
"""

from __future__ import annotations

from typing import Any

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import Receive, Scope, Send
from sqlalchemy.exc import DBAPIError

from ecert.errors import EcertError
from ecert.metrics import PROBLEMS
from ecert.security.audit import refusal_audit
from ecert.server.observability import ensure_request_id

PROBLEM_JSON = "application/problem+json"
_log = structlog.get_logger("ecert.errors")

_CODES_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    503: "unavailable",
}


def problem(
    request: Request[Any, Any, Any],
    *,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    """The problem response; a refusal (4xx) of a known caller is audited after it is sent."""
    body: dict[str, Any] = {
        "type": f"urn:ecert:problem:{code}",
        "title": title,
        "status": status,
        "code": code,
        "instance": request.url.path,
    }
    if detail:
        body["detail"] = detail
    # Errors raised before routing (404, 405) never reach the request-id middleware.
    fresh = "request_id" not in request.scope.get("state", {})
    body["request_id"] = ensure_request_id(request.scope)
    if extra:
        body.update(extra)
    if fresh:
        headers = {**(headers or {}), "X-Request-ID": body["request_id"]}
    PROBLEMS.labels(str(status), code).inc()
    return Response(
        body,
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
        background=refusal_audit(request, status, code),
    )


def handle_ecert_error(request: Request[Any, Any, Any], exc: EcertError) -> Response[Any]:
    retry = exc.extra.get("retry_after")
    return problem(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        extra=exc.extra,
        headers={"Retry-After": str(retry)} if retry is not None else None,
    )


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    extra: dict[str, Any] = {}
    code = _CODES_BY_STATUS.get(status, "error")
    if isinstance(exc, ValidationException):
        code = "validation_failed"
        # Litestar lists field keys and messages; msgspec messages name the path, not the value.
        if isinstance(exc.extra, list):
            extra["errors"] = [
                {k: v for k, v in e.items() if k in ("key", "message", "source")}
                for e in exc.extra
                if isinstance(e, dict)
            ]
    headers = dict(exc.headers or {})
    return problem(
        request,
        status=status,
        code=code,
        title=_title(status),
        detail=exc.detail or None,
        extra=extra,
        headers=headers or None,
    )


def handle_too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    # msgspec refuses absurdly nested JSON with RecursionError; that is the client's error.
    return problem(
        request,
        status=400,
        code="validation_failed",
        title="Bad request",
        detail="the request body is nested too deeply",
    )


def handle_database_gone(request: Request[Any, Any, Any], exc: DBAPIError) -> Response[Any]:
    """A dropped database connection (restart, failover) or a PostgreSQL timeout is a retryable
    503, not a crash.

    Connections are not pinged before use (see ``Settings.db_pre_ping``): the request that meets a
    dead one fails here, and SQLAlchemy has already discarded the pool's other old connections.
    """
    sqlstate = getattr(exc.orig, "sqlstate", None)
    timed_out = sqlstate in _TIMEOUT_SQLSTATES
    # 25006: a read-only transaction, i.e. the old primary after a failover (or a standby):
    # nothing was written, and a retry reaches the new primary once connections move over.
    read_only = sqlstate == "25006"
    if not (exc.connection_invalidated or timed_out or read_only):
        return handle_crash(request, exc)
    _log.warning(
        "database_read_only"
        if read_only
        else "database_timeout"
        if timed_out
        else "database_connection_lost",
        error_type=type(exc.orig).__name__,
    )
    return problem(
        request,
        status=503,
        code="unavailable",
        title="Service temporarily unavailable",
        detail="The database connection was lost or timed out; retry (with the same "
        "Idempotency-Key).",
        headers={"Retry-After": "1"},
    )


#: PostgreSQL's statement timeout (57014, also a cancel), lock timeout (55P03) and idle-in-
#: transaction timeout (25P03): the ECERT_DB_*_TIMEOUT_MS limits; the transaction rolled back.
_TIMEOUT_SQLSTATES = frozenset({"57014", "55P03", "25P03"})


def handle_no_answer(request: Request[Any, Any, Any], exc: TimeoutError) -> Response[Any]:
    """asyncpg's ``command_timeout`` (ECERT_DB_COMMAND_TIMEOUT_S): the database did not answer."""
    _log.warning("database_no_answer", error_type=type(exc).__name__)
    return problem(
        request,
        status=503,
        code="unavailable",
        title="Service temporarily unavailable",
        detail="The database did not answer in time; retry (with the same Idempotency-Key).",
        headers={"Retry-After": "1"},
    )


def handle_crash(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    _log.exception("unhandled_error", error_type=type(exc).__name__)
    return problem(
        request,
        status=HTTP_500_INTERNAL_SERVER_ERROR,
        code="internal_error",
        title="Internal error",
        detail="The request failed; quote the request id to support.",
    )


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


exception_handlers: dict[type[Exception] | int, Any] = {
    EcertError: handle_ecert_error,
    HTTPException: handle_http_exception,
    RecursionError: handle_too_deep,
    DBAPIError: handle_database_gone,
    TimeoutError: handle_no_answer,
    Exception: handle_crash,
}


def _handler(exc: Exception) -> Any:
    for kind in type(exc).__mro__:
        if kind in exception_handlers:
            return exception_handlers[kind]
    return handle_crash


async def render_middleware_error(
    scope: Scope, receive: Receive, send: Send, exc: Exception
) -> None:
    """Send the problem response of an error a middleware raised (401 from authentication, 429
    from the rate limit); ``ecert.server.edge`` calls it inside the request log and the metrics.

    Litestar renders such errors outside every middleware, where the request log, the metrics
    and the ``X-Request-ID`` header never see the response. Errors of route handlers are already
    rendered inside the route.
    """
    app = scope["litestar_app"]
    request: Request[Any, Any, Any] = app.request_class(scope, receive)
    response = _handler(exc)(request, exc)
    # A face that speaks another language (FHIR) reshapes the refusal under its prefix.
    for prefix, reshape in app.state.get("problem_shapes", {}).items():
        if scope["path"].startswith(prefix):
            response = reshape(response)
    await response.to_asgi_response(app=None, request=request)(scope, receive, send)


__all__ = ["PROBLEM_JSON", "MediaType", "exception_handlers", "problem", "render_middleware_error"]
