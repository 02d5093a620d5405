"""Refusals as OperationOutcome, with ecert's stable code and the native HTTP status.

The native problem response is built first (it counts, logs and audits the refusal as for any
route); only its body and media type change.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fhir.resources.R4B.operationoutcome import OperationOutcome
from litestar import Request, Response
from litestar.openapi.datastructures import ResponseSpec
from pydantic import ValidationError

from ecert.errors import ValidationFailed
from ecert.fhir.codes import FHIR_JSON, PROBLEM
from ecert.server.problems import exception_handlers, handle_crash

#: FHIR issue type by HTTP status (http://hl7.org/fhir/issue-type).
_ISSUE_TYPES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    413: "too-long",
    415: "not-supported",
    422: "business-rule",
    429: "throttled",
    503: "transient",
}


def operation_outcome(problem: dict[str, Any]) -> OperationOutcome:
    """The OperationOutcome of a problem+json body."""
    status = int(problem.get("status", 500))
    details: dict[str, Any] = {
        "coding": [{"system": PROBLEM, "code": problem["code"], "display": problem["title"]}],
        "text": problem.get("detail") or problem["title"],
    }
    return OperationOutcome.model_validate(
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error" if status < 500 else "fatal",
                    "code": _ISSUE_TYPES.get(status, "exception"),
                    "details": details,
                    "diagnostics": f"request_id={problem.get('request_id', '')}",
                }
            ],
        }
    )


def as_outcome(response: Response[Any]) -> Response[Any]:
    """Turn a problem response into the same refusal as an OperationOutcome."""
    if isinstance(response.content, dict) and "code" in response.content:
        response.content = operation_outcome(response.content).model_dump_json().encode()
        response.media_type = FHIR_JSON
    return response


def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Exception handler of the FHIR routes: the native handler, then reshaped."""
    if isinstance(exc, ValidationError):
        exc = invalid_resource(exc)
    for kind in type(exc).__mro__:
        if kind in exception_handlers:
            return as_outcome(exception_handlers[kind](request, exc))
    return as_outcome(handle_crash(request, exc))


def invalid_resource(exc: ValidationError) -> ValidationFailed:
    """A resource fhir.resources refused: where and why, never the values sent."""
    errors = [
        {"key": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False)[:20]
    ]
    return ValidationFailed("the resource is not valid FHIR R4B", errors=errors)


class _Coding(msgspec.Struct, kw_only=True):
    system: str
    code: str


class _Details(msgspec.Struct, kw_only=True):
    coding: list[_Coding]
    text: str | None = None


class _Issue(msgspec.Struct, kw_only=True):
    severity: str
    code: str
    details: _Details | None = None
    diagnostics: str | None = None


class OperationOutcomeShape(msgspec.Struct, kw_only=True):
    """An error as the OpenAPI schema shows it: FHIR's OperationOutcome, with ecert's problem
    code in ``issue[].details.coding`` (system ``urn:ecert:problem``)."""

    resourceType: str
    issue: list[_Issue]


def documented(*statuses: int, resource: str = "") -> dict[int, ResponseSpec]:
    """The responses of a FHIR route: ``resource`` (a FHIR JSON object) at 200, and the error
    statuses as OperationOutcome, never problem+json."""
    ok = {
        200: ResponseSpec(
            dict[str, Any], description=resource or "the FHIR resource", media_type=FHIR_JSON
        )
    }
    return ok | {
        status: ResponseSpec(
            OperationOutcomeShape,
            description="OperationOutcome (ecert's code in issue.details.coding)",
            media_type=FHIR_JSON,
        )
        for status in statuses
    }
