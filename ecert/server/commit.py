"""Commit a request's transaction before its 2xx goes out, and let a failed COMMIT fail it.

advanced-alchemy's ``autocommit`` before-send handler commits too, but swallows a failed COMMIT
(it logs it at debug level) and sends the 2xx anyway: a dropped connection at COMMIT answered
"201" for nothing written. ``ecert.server.edge`` calls :func:`commit_before_2xx` when the route
starts a 2xx response, before passing it on; if the COMMIT raises, the 2xx is not sent and the
error becomes its problem+json there (``server/problems.py``: a dropped connection is a
retryable 503). advanced-alchemy's handler then finds nothing to commit, and still rolls back on
other statuses and closes the session. Hand-written: the plugin has no option to propagate the
failure.
"""

from __future__ import annotations

import contextlib

from litestar.constants import HTTP_RESPONSE_START
from litestar.types import Message, Scope
from sqlalchemy.ext.asyncio import AsyncSession

#: ``scope["state"]`` key of the request's session, set when a handler asks for one.
REQUEST_SESSION = "ecert.request_session"


def remember(scope: Scope, session: AsyncSession) -> AsyncSession:
    scope.setdefault("state", {})[REQUEST_SESSION] = session
    return session


async def commit_before_2xx(message: Message, scope: Scope) -> None:
    """Commit the request's session if ``message`` starts a 2xx (raises what the COMMIT did)."""
    if message["type"] != HTTP_RESPONSE_START or not 200 <= message["status"] < 300:
        return
    session: AsyncSession | None = scope.get("state", {}).pop(REQUEST_SESSION, None)
    if session is None or not session.in_transaction():
        return
    try:
        await session.commit()
    except Exception:
        with contextlib.suppress(Exception):
            await session.rollback()
        raise
