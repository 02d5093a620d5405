"""Every answer of the gateway is a national reply envelope, refusals included.

A business refusal (any ecert error below 500, after the caller is known) is ``infcode`` −1 with
``err_msg`` and ecert's stable ``err_code`` at HTTP 200, as national clients expect; the request's
transaction is rolled back first and the refusal audited as every other. An unauthenticated
caller gets the envelope with HTTP 401 (403 for a client that is not an institution), and a
server-side failure keeps its 5xx, so neither reads as an answered transaction.
"""

from __future__ import annotations

from typing import Any

from litestar import Response
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.clock import utcnow
from ecert.errors import EcertError
from ecert.gateway import envelope, services
from ecert.gateway.auth import authenticate
from ecert.gateway.call import Call
from ecert.metrics import PROBLEMS
from ecert.security.audit import refusal_audit
from ecert.server.deps import AnyRequest
from ecert.server.observability import ensure_request_id
from ecert.server.runtime import Runtime

MEDIA_TYPE = "application/json; charset=utf-8"


async def respond(request: AnyRequest, session: AsyncSession, runtime: Runtime) -> Response[Any]:
    received = utcnow()
    area = runtime.settings.issuer_area
    request_id = ensure_request_id(request.scope)
    body = await request.body()
    try:
        principal = await authenticate(request)
    except EcertError as exc:
        return _refusal(request, area, received, exc, request_id, status=exc.status)
    request.scope["user"] = principal  # the refusal audit names the caller
    try:
        parsed = envelope.parse(body)
        output, replayed = await services.run(Call(session, runtime, principal, parsed))
    except EcertError as exc:
        await session.rollback()
        status = exc.status if exc.status >= 500 else 200
        return _refusal(request, area, received, exc, request_id, status=status)
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    content = envelope.reply(area, received, output, request_id=request_id)
    return Response(content, media_type=MEDIA_TYPE, headers=headers)


def _refusal(
    request: AnyRequest,
    area: str,
    received: Any,
    exc: EcertError,
    request_id: str,
    *,
    status: int,
) -> Response[Any]:
    PROBLEMS.labels(str(exc.status), exc.code).inc()
    retry = exc.extra.get("retry_after")
    content = envelope.reply(
        area, received, None, error=(exc.code, exc.detail), request_id=request_id
    )
    return Response(
        content,
        status_code=status,
        media_type=MEDIA_TYPE,
        headers={"Retry-After": str(retry)} if retry is not None else None,
        background=refusal_audit(request, exc.status, exc.code),
    )
