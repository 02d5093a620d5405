"""Request ids, structured JSON logs without personal data, and the startup line.

The request log line is written by ``ecert.server.edge``."""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from collections.abc import MutableMapping, Sequence
from typing import Any

import structlog
from litestar.types import Scope
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, StatementError

from ecert import __version__
from ecert.config import Settings, redis_cluster_nodes

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def configure_logging(settings: Settings, extra: Sequence[Any] = ()) -> None:
    """structlog → stdout, JSON lines in production. Nothing here logs bodies or query strings.

    ``extra`` processors run before rendering (tracing adds the trace id).
    """
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.log_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            withhold_database_messages,
            structlog.processors.format_exc_info,
            *extra,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )


#: Modules of database drivers: their messages quote values (asyncpg's "DETAIL: Key (x)=(v)").
_DRIVERS = ("asyncpg", "sqlite3", "aiosqlite", "psycopg")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _is_database_error(exc: BaseException) -> bool:
    return isinstance(exc, StatementError) or type(exc).__module__.split(".")[0] in _DRIVERS


def withhold_database_messages(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Log a database error's traceback and SQLSTATE, never its message.

    ``hide_parameters`` keeps bound values out of SQLAlchemy's text, but the driver's own message
    still quotes them (a unique violation's DETAIL names the key's value).
    """
    info = event.get("exc_info")
    exc = sys.exc_info()[1] if info is True else info[1] if isinstance(info, tuple) else info
    if not isinstance(exc, BaseException):
        return event
    chain = _chain(exc)
    if not any(_is_database_error(e) for e in chain):
        return event
    del event["exc_info"]
    lines: list[str] = []
    # Every message of the chain is withheld: wrappers (SQLAlchemy's adapters) repeat the driver's.
    for error in reversed(chain):
        lines.extend(traceback.format_tb(error.__traceback__))
        lines.append(f"{type(error).__module__}.{type(error).__qualname__}: (message withheld)\n")
    event["exception"] = "".join(lines)
    orig = getattr(exc, "orig", None)
    event.setdefault("sqlstate", getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None))
    return event


def ensure_request_id(scope: Scope) -> str:
    """The request's id: a sane incoming ``X-Request-ID`` or a new one, kept in scope state."""
    state = scope.setdefault("state", {})
    existing = state.get("request_id")
    if isinstance(existing, str):
        return existing
    # A walk over the raw headers (the last one wins, as in a dict): no dict built per request.
    incoming = b""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            incoming = value
    text = incoming.decode("latin-1")
    # 32 hex digits, as uuid4().hex gave, without building a UUID object.
    request_id = text if _REQUEST_ID.match(text) else os.urandom(16).hex()
    state["request_id"] = request_id
    return request_id


def _store(url: str) -> str:
    if not url:
        return "memory"
    if "+cluster://" in url:
        scheme, *_, nodes = redis_cluster_nodes(url)
        return f"{scheme}:" + ",".join(f"{host}:{port}" for host, port in nodes)
    return _host(url)


def _host(url: str) -> str:
    """Host (and port) of a URL, or the SQLite file's name: never a user name or password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "unparsable"
    if parsed.drivername.startswith("sqlite"):
        return f"sqlite:{(parsed.database or '').rsplit('/', 1)[-1]}"
    return f"{parsed.get_backend_name()}:{parsed.host}:{parsed.port or ''}".rstrip(":")


def log_startup(settings: Settings) -> None:
    """One line per worker start: what this process is and what it talks to, without secrets.

    A warning so that it survives ``ECERT_LOG_LEVEL=WARNING``, like the store breaker's lines.
    """
    structlog.get_logger("ecert.startup").warning(
        "startup",
        version=__version__,
        # The mode in force: a PostgreSQL URL makes the default "embedded" mean production.
        env="production" if settings.production else settings.env,
        production=settings.production,
        database=_host(settings.effective_database_url),
        store=_store(settings.redis_url),
        read_replica=_host(settings.database_read_url) if settings.database_read_url else None,
        issuer=settings.issuer_url,
        issuer_area=settings.issuer_area,
        metrics_token=bool(settings.metrics_token),
    )
