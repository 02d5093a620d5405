"""Engine construction for both engines: SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from ecert.config import Settings


def prepare_sqlite_path(url: str) -> None:
    """Create the folder of a SQLite file URL (the embedded default's first run)."""
    if url.startswith("sqlite") and ":memory:" not in url and "///" in url:
        Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)


#: Connections of a worker's group writers' pool (``make_engine(group=True)``): the audit rows'
#: and online verify's writers each keep one (``ecert.db.held``), and each takes one more, one
#: at a time, when the head of the chain it left has moved (``auditchain.append_alone``); the
#: fourth on overflow, 4 at most (docs/operations.md counts them).
GROUP_POOL = 3


def make_engine(
    settings: Settings, url: str = "", connect_timeout_s: float | None = None, group: bool = False
) -> AsyncEngine:
    """The primary's engine, or with ``url`` another server's (a read replica) on its settings;
    ``connect_timeout_s`` bounds a connection attempt (asyncpg waits 60 s by default).

    ``group``: the small pool of a worker's group writers (``ecert.security.auditbatch``,
    ``ecert.verify.batches``), whose prepared statements always run on their generic plan. A
    group statement takes arrays whose length changes with every batch; on a custom plan (the
    default for it, as a plan for 4 rows looks cheaper than one for an unknown number)
    PostgreSQL planned online verify's batch anew each time, 0.50 ms against 0.40 ms to run it
    (pg_stat_statements with ``track_planning``; docs/performance.md, "Sixth round"). Only these
    connections: a report's range query keeps its custom plan."""
    url = url or settings.effective_database_url
    if settings.is_sqlite:
        prepare_sqlite_path(url)
        engine = create_async_engine(
            url,
            echo=settings.db_echo,
            hide_parameters=True,
            connect_args={"timeout": 30},
            pool_size=5,
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # WAL lets readers run beside the single writer; foreign keys are off by default.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_async_engine(
        url,
        echo=settings.db_echo,
        # Bound values (pseudonyms, device ids, bill items) stay out of error messages and logs.
        hide_parameters=True,
        pool_size=GROUP_POOL if group else settings.db_pool_size,
        max_overflow=1 if group else settings.db_pool_size,
        pool_pre_ping=settings.db_pre_ping,
        pool_recycle=settings.db_pool_recycle_s,
        pool_timeout=10,
        connect_args=_connect_args(settings, group)
        | ({"timeout": connect_timeout_s} if connect_timeout_s else {}),
    )


def _connect_args(settings: Settings, group: bool = False) -> dict[str, Any]:
    args: dict[str, Any] = {"command_timeout": settings.db_command_timeout_s or None}
    if settings.db_pgbouncer:
        # A transaction-mode pooler hands the server connection to another client between
        # transactions: asyncpg's per-connection statement caches would name statements that
        # connection never prepared, and start-up parameters are not passed through.
        args["statement_cache_size"] = 0
        args["prepared_statement_cache_size"] = 0
        args["prepared_statement_name_func"] = lambda: f"__asyncpg_{uuid.uuid4()}__"
    else:
        args["server_settings"] = _timeouts(settings)
        if group:
            args["server_settings"]["plan_cache_mode"] = "force_generic_plan"
    return args


def _timeouts(settings: Settings) -> dict[str, str]:
    """Session settings sent when asyncpg connects (no round trip per request)."""
    return {
        "statement_timeout": str(settings.db_statement_timeout_ms),
        "lock_timeout": str(settings.db_lock_timeout_ms),
        "idle_in_transaction_session_timeout": str(settings.db_idle_in_transaction_timeout_ms),
    }


async def reads_only(session: AsyncSession) -> None:
    """Run this request's statements in autocommit: no BEGIN and COMMIT around a lone read.

    For handlers that only read one consistent thing (minting a code reads one e-cert): it saves
    two of their three database round trips. Call it before the session's first statement.
    """
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
