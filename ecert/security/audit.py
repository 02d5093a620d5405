"""Audit events: who read or changed which person's data. Never the plaintext ID number.

Successes are recorded in the request's transaction (committed with it). Refusals are recorded by
the problem handler in a transaction of their own, after the request's has rolled back, so no
domain has to do anything for its refusals to be audited: the actor is the authenticated
principal (or the client a service noted with :func:`acting`), the action the route, the outcome
the problem's ``code``, and the person whoever :func:`concerning` or the token names.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

import structlog
from litestar import Request
from litestar.background_tasks import BackgroundTask
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import AuditEvent
from ecert.security import staff
from ecert.security.auditchain import defer
from ecert.security.tokens import Principal

_log = structlog.get_logger("ecert.audit")


@dataclass(frozen=True)
class _Noted:
    request_id: str | None
    actor: str | None = None
    actor_kind: str | None = None
    person_id: uuid.UUID | None = None
    reason: str | None = None


#: What this request's services learnt about whom it concerns (tagged with the request id: the
#: test client runs requests one after another in a single context).
_noted: ContextVar[_Noted | None] = ContextVar("ecert_audit_noted", default=None)


def _request_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


def _note(**changes: Any) -> None:
    current = _noted.get()
    request_id = _request_id()
    if current is None or current.request_id != request_id:
        current = _Noted(request_id)
    _noted.set(replace(current, **changes))


def concerning(person_id: uuid.UUID) -> None:
    """Say which person this request concerns, so that a refusal's audit row names them."""
    _note(person_id=person_id)


def refusal_reason(reason: str) -> None:
    """Say why, for the audit only, where the caller gets a deliberately vaguer answer."""
    _note(reason=reason)


def acting(client_id: str, kind: str) -> None:
    """Say which client is acting where no access token names it (the token endpoint)."""
    _note(actor=client_id, actor_kind=kind)


async def record_audit(
    session: AsyncSession,
    principal: Principal,
    person_id: uuid.UUID | None,
    action: str,
    outcome: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an audit row to the request's transaction: it is written at the commit, last, and
    only if the transaction commits (``ecert.security.auditchain``)."""
    defer(
        session.sync_session,
        AuditEvent(**audit_values(principal, person_id, action, outcome, detail)),
    )


def audit_values(
    principal: Principal,
    person_id: uuid.UUID | None,
    action: str,
    outcome: str,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An audit row's values (also for the paths that write it themselves: ``auditchain.link``,
    ``auditbatch``). A staff member's rows name the operator (``opter``/``opter_name``)."""
    if principal.staff_role is not None:
        detail = {**(detail or {}), **staff.opter(principal.client_id, principal.staff_name)}
    return {
        "actor": principal.client_id,
        "actor_kind": principal.kind,
        "person_id": person_id,
        "action": action,
        "outcome": outcome,
        "request_id": _request_id(),
        "detail": detail,
    }


def refusal_audit(request: Request[Any, Any, Any], status: int, code: str) -> BackgroundTask | None:
    """A task that records this refusal once the response is sent (the request's transaction has
    rolled back by then). ``None`` for what is not a refusal of a known caller: 5xx, 429 (a flood
    must not become database writes), and callers no token or service identified."""
    if not 400 <= status < 500 or status == 429:
        return None
    request_id = request.scope.get("state", {}).get("request_id")
    noted = _noted.get()
    if noted is not None and noted.request_id != request_id:
        noted = None
    user = request.scope.get("user")
    extra: dict[str, Any] = {}
    if isinstance(user, Principal):
        actor, kind, person_id = user.client_id, user.kind, user.person_id
        if user.staff_role is not None:
            extra = staff.opter(user.client_id, user.staff_name)
    elif noted is not None and noted.actor is not None:
        actor, kind, person_id = noted.actor, noted.actor_kind or "client", None
    else:
        return None
    if noted is not None and noted.person_id is not None:
        person_id = noted.person_id
    route = request.scope.get("path_template") or request.scope.get("path", "")
    row = {
        "actor": actor[:64],
        "actor_kind": kind[:16],
        "person_id": person_id,
        "action": f"{request.method} {route}"[:64],
        "outcome": code[:32],
        "request_id": request_id,
        "detail": {"status": status, **extra}
        if noted is None or noted.reason is None
        else {"status": status, "reason": noted.reason, **extra},
    }
    return BackgroundTask(_write, request.app.state.runtime, row)


async def _write(runtime: Any, row: dict[str, Any]) -> None:
    try:
        async with runtime.sessions.begin() as session:
            session.add(AuditEvent(**row))
    except Exception:  # the answer is sent; a lost refusal row must not become a crash
        _log.warning("refusal_audit_failed", action=row["action"], exc_info=True)
