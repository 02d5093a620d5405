"""What offline scanners download: the QR key set and the signed revocation feed."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import jwt
import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.issuance import repositories

# Re-exported: the feed controller asks the feed module what state a cached page was signed for.
from ecert.issuance.repositories import feed_state as feed_state
from ecert.issuance.schemas import Jwks, RevocationFeed, RevocationItem
from ecert.server.runtime import Runtime

FEED_TOKEN_TYPE = "ecrev+jwt"  # noqa: S105 - a JWT type, not a password
PAGE = 1000


def jwks(runtime: Runtime) -> tuple[Jwks, str]:
    """QR keys (next, active, retiring) and feed keys, each tagged with its purpose; and an ETag."""
    keys: list[dict[str, str]] = []
    for purpose in ("qr", "feed"):
        for key in sorted(runtime.keys.published(purpose), key=lambda k: k.kid):
            keys.append({**key.jwk, "ecert_use": purpose})
    body = Jwks(keys=keys)
    etag = hashlib.sha256(msgspec.json.encode(body)).hexdigest()[:32]
    return body, f'"{etag}"'


#: How long a worker may serve a feed page from memory while nothing changed: its signed ``iat``
#: ages meanwhile, and scanners judge the feed's age by it (``feed_stale``).
CACHE_S = 30.0
#: Pages kept at most (distinct ``since`` values); past it the cache starts afresh.
CACHE_PAGES = 256


class FeedCache:
    """Signed feed pages in one worker, valid while the feed's head and the key table's version
    are what they were when the page was signed: a new entry or a key change, whichever worker
    or process made it, is a miss at once.

    A scanner fleet mostly asks for the same page (``since`` = the newest sequence number held),
    so a burst costs one index-only read of the head instead of the page's queries and an ES256
    signature, and it is not counted against anyone's budget.
    """

    def __init__(self, ttl_s: float = CACHE_S, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl_s
        self._clock = clock
        self._pages: dict[int, tuple[float, tuple[int, int], RevocationFeed]] = {}

    def get(self, since: int, state: tuple[int, int]) -> RevocationFeed | None:
        found = self._pages.get(since)
        if found is None or found[0] < self._clock() or found[1] != state:
            return None
        return found[2]

    def put(self, since: int, state: tuple[int, int], page: RevocationFeed) -> None:
        if len(self._pages) >= CACHE_PAGES:
            self._pages.clear()
        self._pages[since] = (self._clock() + self._ttl, state, page)


async def revocations(session: AsyncSession, runtime: Runtime, since: int) -> RevocationFeed:
    """Feed entries with ``seq > since`` in order, at most one page, signed with the feed key."""
    rows = await repositories.revocation_entries(session, since, PAGE + 1)
    more = len(rows) > PAGE
    entries = [
        RevocationItem(seq=r.id, sub=r.pseudonym, min_version=r.min_version, status=r.status)
        for r in rows[:PAGE]
    ]
    until = entries[-1].seq if entries else since
    # Emergency revocations are rare, so the whole list fits in every page.
    revoked_kids = await repositories.revoked_kids(session)
    payload: dict[str, Any] = {
        "iss": runtime.settings.issuer_area,
        "since": since,
        "until": until,
        "more": more,
        "entries": [msgspec.to_builtins(e) for e in entries],
        "revoked_kids": revoked_kids,
        "iat": int(time.time()),
    }
    signer = runtime.keys.signer("feed")
    token = jwt.encode(
        payload,
        signer.private,
        algorithm="ES256",
        headers={"kid": signer.kid, "typ": FEED_TOKEN_TYPE},
    )
    return RevocationFeed(
        iss=runtime.settings.issuer_area,
        since=since,
        until=until,
        more=more,
        entries=entries,
        jws=token,
        revoked_kids=revoked_kids,
    )
