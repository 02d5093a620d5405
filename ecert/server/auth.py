"""Bearer-token authentication (run by ``ecert.server.gate``) and guards by client kind, scope
and person.

A route names its guard in ``opt`` (``opt = admits(person_guard)``), not in Litestar's ``guards``:
Litestar hands each guard a copy of the route handler, made on every request. ``admit``, the
app's ``before_request`` hook, runs it at the same point (before the body is read and the
dependencies resolved, inside the route's exception handlers), so every refusal is unchanged."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Scope

from ecert.errors import Forbidden, Unauthorized
from ecert.security import staff
from ecert.security.province import ON_BEHALF_HEADER, acting_for
from ecert.security.tokens import ACCESS_TOKEN_TYPE, Principal, read_kid
from ecert.server.runtime import Runtime

Guard = Callable[[ASGIConnection, BaseRouteHandler], Awaitable[None]]  # type: ignore[type-arg]


class ClientActivity(Protocol):
    """Whether a client is still enabled: ``app.state.client_status``, oauth's ``ClientStatus``
    (wired by ``ecert.app``; the plumbing imports no domain)."""

    async def is_active(self, client_id: str) -> bool: ...


#: Probes use no key: they cost no store read (``ecert.server.gate`` skips the key ring for them).
NO_KEYS = frozenset({"/healthz", "/readyz", "/metrics"})


async def bearer_principal(connection: ASGIConnection) -> Principal:  # type: ignore[type-arg]
    """The principal of ``Authorization: Bearer <jwt>``, or of a staff session's cookie (the
    agency console); also for routes that accept other credentials."""
    # From the raw headers: ``connection.headers`` would decode every header into a new object.
    header = raw_header(connection.scope, b"authorization") or ""
    scheme, _, token = header.partition(" ")
    from_cookie = not header and staff.COOKIE in connection.cookies
    if from_cookie:
        token = _cookie_token(connection)
    elif scheme.lower() != "bearer" or not token:
        raise Unauthorized("send an access token as 'Authorization: Bearer …'")
    runtime: Runtime = connection.app.state.runtime
    token = token.strip()
    # A token this worker has checked already needs neither its header read nor its key looked
    # for: it is the token sent on every request of a client's session.
    principal = runtime.access_tokens.remembered(runtime.keys, runtime.settings, token)
    if principal is None:
        kid = read_kid(token, ACCESS_TOKEN_TYPE)
        # The gate has already reloaded a ring that a revocation made stale.
        if runtime.keys.verifier("access", kid) is None and runtime.keys.may_refresh_for_unknown():
            await runtime.refresh_keys()
        principal = runtime.access_tokens.verify(runtime.keys, runtime.settings, token)
    if from_cookie and principal.staff_role is None:
        raise Unauthorized("only a staff session travels in a cookie")
    status: ClientActivity = connection.app.state.client_status
    if not await status.is_active(principal.client_id):
        raise Unauthorized("this client is disabled")
    if principal.kind == "province":
        principal = acting_for(principal, connection.headers.get(ON_BEHALF_HEADER))
    return principal


def raw_header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), read from the scope's raw list."""
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _cookie_token(connection: ASGIConnection) -> str:  # type: ignore[type-arg]
    """The staff session cookie; a state-changing request must also prove it is same-site."""
    if connection.scope.get("method") not in ("GET", "HEAD") and not connection.headers.get(
        staff.CSRF_HEADER
    ):
        raise Forbidden(f"a staff session must send the {staff.CSRF_HEADER} header")
    return connection.cookies[staff.COOKIE]


def principal_of(connection: ASGIConnection) -> Principal:  # type: ignore[type-arg]
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise Unauthorized()
    return user


def require(*kinds: str, person: bool = False, scope: str | None = None) -> Guard:
    """A guard admitting only the given client kinds (and a person-scoped token if asked)."""

    # Async on purpose: Litestar runs a plain-function guard in a worker thread on every request.
    async def guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:  # type: ignore[type-arg]
        principal = principal_of(connection)
        if principal.kind not in kinds:
            raise Forbidden(f"this route is for {' or '.join(kinds)} clients")
        if principal.staff_role is not None and principal.staff_role not in staff.admitted(
            handler.opt
        ):
            raise Forbidden(f"a {principal.staff_role} may not do this")
        if person and principal.person_id is None:
            raise Forbidden("this route needs a person-scoped token (JWT-bearer grant)")
        if not person and principal.person_id is not None:
            raise Forbidden("a person-scoped token cannot call this route")
        if scope is not None and scope not in principal.scopes:
            raise Forbidden(f"this route needs the '{scope}' scope")

    return guard


person_guard = require("channel", person=True)
institution_guard = require("institution")
agency_guard = require("agency")


#: The ``opt`` key of a route's guard.
ADMIT = "ecert_admit"


def admits(guard: Guard) -> dict[str, Any]:
    """``opt`` for a route or controller that only ``guard`` admits."""
    return {ADMIT: guard}


async def admit(request: Request[Any, Any, Any]) -> None:
    """The app's ``before_request`` hook: the route's guard, if it has one."""
    handler = request.scope["route_handler"]
    guard = handler.opt.get(ADMIT)
    if guard is not None:
        await guard(request, handler)
