"""Audit events: who read or changed which person's data. Never the plaintext ID number."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import AuditEvent
from ecert.security.tokens import Principal


async def record_audit(
    session: AsyncSession,
    principal: Principal,
    person_id: uuid.UUID | None,
    action: str,
    outcome: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an audit row to the request's transaction (committed with it)."""
    context = structlog.contextvars.get_contextvars()
    session.add(
        AuditEvent(
            actor=principal.client_id,
            actor_kind=principal.kind,
            person_id=person_id,
            action=action,
            outcome=outcome,
            request_id=context.get("request_id"),
            detail=detail,
        )
    )
