"""Per-principal rate limits in the shared store, with a local fallback when it is down.

Keyed by the authenticated client (and person) — never by ``X-Forwarded-For``, which a caller can
set to anything — or, for unauthenticated routes, by the peer address.
"""

from __future__ import annotations

import time

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from ecert.errors import RateLimited
from ecert.runtime import Runtime
from ecert.security.tokens import Principal
from ecert.store import MemoryStore, StoreUnavailable

WINDOW_S = 60
#: Probes from load balancers and scrapers are not counted.
UNLIMITED = frozenset({"/healthz", "/readyz", "/metrics"})


class RateLimiter:
    """Fixed one-minute windows; the fallback counts per process while the store is down."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._fallback = MemoryStore()

    async def hit(self, key: str) -> None:
        limit = self._runtime.settings.rate_limit_per_minute
        window = int(time.time()) // WINDOW_S
        full = f"rl:{key}:{window}"
        try:
            count = await self._runtime.store.incr_window(full, WINDOW_S)
        except StoreUnavailable:
            count = await self._fallback.incr_window(full, WINDOW_S)
        if count > limit:
            retry = WINDOW_S - int(time.time()) % WINDOW_S
            raise RateLimited(f"more than {limit} requests a minute", retry_after=retry)


def principal_key(scope: Scope) -> str:
    user = scope.get("user")
    if isinstance(user, Principal):
        person = f":{user.person_id}" if user.person_id else ""
        return f"c:{user.client_id}{person}"
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"


def rate_limit_middleware(app: ASGIApp) -> ASGIApp:
    """Count each HTTP request against its principal; 429 problem+json past the limit."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope["path"] not in UNLIMITED:
            limiter: RateLimiter = scope["litestar_app"].state.rate_limiter
            await limiter.hit(principal_key(scope))
        await app(scope, receive, send)

    return middleware
