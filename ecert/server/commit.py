"""Commit a request's transaction before its 2xx goes out, and let a failed COMMIT fail it.

advanced-alchemy's ``autocommit`` before-send handler commits too, but swallows a failed COMMIT
(it logs it at debug level) and sends the 2xx anyway: a dropped connection at COMMIT answered
"201" for nothing written. ``ecert.server.edge`` calls :func:`commit_before_2xx` when the route
starts a 2xx response, before passing it on; if the COMMIT raises, the 2xx is not sent and the
error becomes its problem+json there (``server/problems.py``: a dropped connection is a
retryable 503). :func:`finish_request_session` then rolls back what another status left open and
closes the session. Hand-written: the plugin has no option to propagate the failure.

advanced-alchemy's own ``autocommit`` before-send handler is not used: it calls ``commit()`` and
``close()`` on every request's session, also on one that never began a transaction (online
verify's on PostgreSQL sends nothing through it): two greenlet switches and SQLAlchemy's
autobegin of an empty transaction, ~60 µs of a request's CPU measured in process (302 → 245 µs
for an authenticated POST that does no database work; docs/performance.md, "Eighth round").
"""

from __future__ import annotations

import contextlib

from litestar.constants import HTTP_RESPONSE_START
from litestar.types import Message, Scope
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.security import auditchain

#: ``scope["state"]`` key of the request's session, set when a handler asks for one.
REQUEST_SESSION = "ecert.request_session"


def remember(scope: Scope, session: AsyncSession) -> AsyncSession:
    scope.setdefault("state", {})[REQUEST_SESSION] = session
    return session


async def commit_before_2xx(message: Message, scope: Scope) -> None:
    """Commit the request's session if ``message`` starts a 2xx (raises what the COMMIT did)."""
    if message["type"] != HTTP_RESPONSE_START or not 200 <= message["status"] < 300:
        return
    session: AsyncSession | None = scope.get("state", {}).get(REQUEST_SESSION)
    if session is None or not _unfinished(session):
        return
    try:
        await session.commit()
    except Exception:
        with contextlib.suppress(Exception):
            await session.rollback()
        raise


def _unfinished(session: AsyncSession) -> bool:
    """Whether a commit would write anything: a transaction is open, objects were added,
    changed or deleted without a flush, or audit rows wait for the commit (``auditchain.defer``)."""
    return (
        session.in_transaction()
        or bool(session.new or session.dirty or session.deleted)
        or auditchain.deferred(session.sync_session)
    )


async def finish_request_session(message: Message, scope: Scope) -> None:
    """Litestar ``before_send``: when the response starts, roll back and close the request's
    session if a transaction is still open on it (an error status; a 2xx was committed by
    :func:`commit_before_2xx`). A session with no transaction holds no connection and has
    nothing to close."""
    if message["type"] != HTTP_RESPONSE_START:
        return
    session: AsyncSession | None = scope.get("state", {}).pop(REQUEST_SESSION, None)
    if session is None or not session.in_transaction():
        return
    # The answer is decided: a connection that fails now must not turn it into another. The
    # pool discards a connection whose rollback failed.
    with contextlib.suppress(Exception):
        await session.rollback()
    with contextlib.suppress(Exception):
        await session.close()
