"""What ``/readyz`` decides on: the database and its schema, the store, draining, the calendar.

Only the database (reachable, schema at the packaged heads) and draining make a node unready.
The store is a cache: when it is down the node is ``degraded``, still ready, because every caller
falls back to PostgreSQL; taking every node out of the balancer for a cache outage would turn it
into a full outage.
"""

from __future__ import annotations

import asyncio
import enum
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from ecert.db.migrate import database_heads, schema_state, script_heads, script_revisions

_log = structlog.get_logger("ecert.ops")


class StoreState(enum.StrEnum):
    OK = "ok"
    DEGRADED = "degraded"


class SchemaState(enum.StrEnum):
    CURRENT = "current"
    #: A newer release migrated the database first; this node keeps serving (rolling deploys).
    AHEAD = "ahead"
    BEHIND = "behind"
    UNKNOWN = "unknown"


class SchemaCheck:
    """Compares the database's revisions with the packaged ones; a current result is kept
    (schemas do not go backwards), anything else is asked again next time."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._scripts: tuple[set[str], set[str]] | None = None
        self._current = False

    async def state(self) -> SchemaState:
        if self._current:
            return SchemaState.CURRENT
        if self._scripts is None:  # reads the migration files: off the loop, once
            self._scripts = await asyncio.to_thread(lambda: (script_heads(), script_revisions()))
        try:
            async with asyncio.timeout(2):
                found = await database_heads(self._engine)
        except Exception:  # any failure: the database check reports it
            return SchemaState.UNKNOWN
        state = SchemaState(schema_state(found, *self._scripts))
        self._current = state == SchemaState.CURRENT
        return state


Handler = Callable[[int, FrameType | None], Any]


class Drain:
    """Set on SIGTERM: ``/readyz`` answers 503 for ``grace_s`` while requests are still served,
    then the server's own SIGTERM handler runs (uvicorn: stop accepting, finish in-flight
    requests, run the shutdown hooks).

    uvicorn installs its handler with ``signal.signal`` before the app's start-up, in every
    worker process; this wraps it there. Without a Python-level handler (tests, or a server
    that does not handle SIGTERM) nothing is installed.
    """

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.since: float | None = None
        self._previous: Handler | None = None

    @property
    def draining(self) -> bool:
        return self.since is not None

    def begin(self) -> None:
        if self.since is None:
            self.since = time.monotonic()
            _log.warning("draining: readiness now 503", grace_s=self.grace_s)

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers belong to the main thread (a server run in a thread)
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):
            return
        self._previous = previous

        def on_sigterm(sig: int, frame: FrameType | None) -> None:
            first = not self.draining
            self.begin()
            if first:
                # A signal handler may only hand work to the loop thread-safely.
                loop.call_soon_threadsafe(loop.call_later, self.grace_s, previous, sig, None)

        signal.signal(signal.SIGTERM, on_sigterm)

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
