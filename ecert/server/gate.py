"""The gate every request passes before its route: key ring, caller, rate limit, in one layer.

In this order, as when they were three middleware:

1. the key ring is reloaded when a key changed elsewhere (not for probes: they use no key);
2. ``Authorization: Bearer`` (or a staff cookie) becomes ``scope["user"]``, except on public
   paths, on routes with ``exclude_from_auth`` and for ``OPTIONS``;
3. the request is counted in its rate-limit bucket (not probes, metrics, the key set or the feed;
   online verify's handler takes its charge itself, with its replay mark: ``ratelimit.Charge``).

A refusal (401, 429) propagates to ``ecert.server.edge``, which renders it as problem+json.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from ecert.server.auth import NO_KEYS, bearer_principal
from ecert.server.ratelimit import CHARGE, DEFERRED, UNLIMITED, Charge, RateLimiter
from ecert.server.runtime import Runtime


def _path(scope: Scope) -> str:
    # A mounted app (the static pages) sees its own sub-path in ``path``; match the full one.
    handler = scope.get("route_handler")
    return scope["raw_path"].decode() if getattr(handler, "is_mount", False) else scope["path"]


def gate_middleware(public: Sequence[str]) -> Callable[[ASGIApp], ASGIApp]:
    """The gate, with ``public`` the path patterns that need no caller (compiled once)."""
    unauthenticated = re.compile("|".join(public))

    def needs_caller(scope: Scope) -> bool:
        handler = scope.get("route_handler")
        if handler is not None and handler.opt.get("exclude_from_auth"):
            return False
        if scope.get("method") == "OPTIONS":
            return False
        return unauthenticated.search(_path(scope)) is None

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            state = scope["litestar_app"].state
            path = scope["path"]
            if path not in NO_KEYS:
                # A store read at most every keys.VERSION_CHECK_S a worker (docs/security.md, 5).
                runtime: Runtime = state.runtime
                await runtime.current_keys()
            if needs_caller(scope):
                scope["user"] = await bearer_principal(ASGIConnection(scope))
                scope["auth"] = None
            if path not in UNLIMITED:
                limiter: RateLimiter = state.rate_limiter
                key, limit = limiter.bucket(scope)
                if path in DEFERRED:  # the handler charges, with its own store call
                    charge = Charge(limiter, key, limit)
                    scope.setdefault("state", {})[CHARGE] = charge
                    try:
                        await app(scope, receive, send)
                    finally:
                        await charge.settle()
                    return
                await limiter.hit(key, limit)
            await app(scope, receive, send)

        return middleware

    return wrap
