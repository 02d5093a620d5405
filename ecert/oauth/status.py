"""Which clients are still active, as seen by one worker, re-read every few seconds.

Access tokens are verified without the database; without this check a disabled client's tokens
would keep working until they expire (``ECERT_ACCESS_TOKEN_TTL_S``). One indexed read per client
and interval per worker keeps the database out of the hot path.
"""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ecert.oauth import repositories
from ecert.security.staff import PREFIX as STAFF_PREFIX

_MAX_ENTRIES = 10_000


class ClientStatus:
    """Per-worker TTL cache of ``clients.active``; an unknown client counts as inactive."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], refresh_s: float) -> None:
        self._sessions = sessions
        self._refresh_s = refresh_s
        self._seen: dict[str, tuple[float, bool]] = {}

    async def is_active(self, client_id: str) -> bool:
        now = time.monotonic()
        cached = self._seen.get(client_id)
        if cached is not None and now - cached[0] < self._refresh_s:
            return cached[1]
        try:
            async with self._sessions() as session:
                # A staff member disabled by `ecert staff disable` is out within seconds.
                active = await (
                    repositories.staff_active(session, client_id[len(STAFF_PREFIX) :])
                    if client_id.startswith(STAFF_PREFIX)
                    else repositories.client_active(session, client_id)
                )
        except Exception:
            if cached is not None:  # a database blip: the last answer beats failing the request
                return cached[1]
            raise
        if len(self._seen) >= _MAX_ENTRIES:
            self._seen.clear()  # bounded memory; entries are cheap to re-read
        self._seen[client_id] = (now, bool(active))
        return bool(active)
