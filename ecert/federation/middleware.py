"""The ASGI middleware that sends our hospitals' requests about other provinces' insured there.

It runs inside authentication (it needs the caller) and before routing, so verify, visits and
settlements stay unaware of provinces: a request that is ours passes through untouched.
"""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPRequestEvent,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from ecert.federation.routing import BY_BODY, Federation, route
from ecert.security.province import ROUTED_SCOPE
from ecert.security.tokens import Principal
from ecert.server.auth import raw_header
from ecert.server.runtime import Runtime

_PREFIXES = ("/v1/visits/", "/v1/settlements/")


def _candidate(scope: Scope) -> Principal | None:
    """The hospital whose request may be routed (a routed call is never routed again)."""
    path = scope["path"]
    if path not in BY_BODY and not path.startswith(_PREFIXES):
        return None
    user = scope.get("user")
    if not isinstance(user, Principal) or user.kind != "institution":
        return None
    return None if ROUTED_SCOPE in user.scopes else user


def federation_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        federation: Federation | None = None
        if scope["type"] == ScopeType.HTTP:
            federation = scope["litestar_app"].state.get("federation")
        principal = _candidate(scope) if federation is not None else None
        if federation is None or principal is None:
            await app(scope, receive, send)
            return
        runtime: Runtime = scope["litestar_app"].state.runtime
        chunks: list[bytes] = []
        size, more = 0, True
        while more and size <= runtime.settings.max_body_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        replayed = False

        async def replay() -> ReceiveMessage:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            message: HTTPRequestEvent = {"type": "http.request", "body": body, "more_body": more}
            return message

        reply = None
        if not more:  # an oversized body goes on to the app, which refuses it (413)
            reply = await route(
                runtime,
                federation,
                principal,
                str(scope.get("method", "")),
                scope["path"],
                scope["query_string"].decode("latin-1"),
                body,
                raw_header(scope, b"idempotency-key"),
            )
        if reply is None:
            await app(scope, replay, send)
            return
        headers = [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
        headers.append((b"content-length", str(len(reply.body)).encode()))
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": reply.status,
            "headers": headers,
        }
        await send(start)
        payload: HTTPResponseBodyEvent = {
            "type": "http.response.body",
            "body": reply.body,
            "more_body": False,
        }
        await send(payload)

    return middleware
