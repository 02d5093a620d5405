"""What the SDK raises: a refusal from ecert (problem+json) as a typed exception."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec


class EcertClientError(Exception):
    """Base of the SDK's exceptions."""


class ProblemError(EcertClientError):
    """ecert refused the request: RFC 9457 problem details with a stable ``code``
    (``docs/errors.md``)."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        request_id: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code} ({status}): {detail or title}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.request_id = request_id
        #: Every member of the problem, e.g. ``errors`` of ``validation_failed``.
        self.body = body or {}

    @classmethod
    def from_response(cls, response: httpx.Response) -> ProblemError:
        try:
            body = msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            body = None
        if not isinstance(body, dict):
            # Not ecert's problem (a proxy's error page): keep the status, say what it was.
            return cls(response.status_code, "error", response.reason_phrase, response.text[:200])
        return cls(
            status=int(body.get("status", response.status_code)),
            code=str(body.get("code", "error")),
            title=str(body.get("title", response.reason_phrase)),
            detail=body.get("detail"),
            request_id=body.get("request_id") or response.headers.get("X-Request-ID"),
            body=body,
        )
