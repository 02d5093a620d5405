"""The served OpenAPI schema tells the truth about errors: problem+json with each route's codes.

Litestar documents errors in its own ``{status_code, detail, extra}`` shape; clients get RFC 9457
problem+json (:mod:`ecert.server.problems`). When the schema is first served, every 4xx/5xx
response of every operation is replaced by ``application/problem+json`` responses, one per status,
whose ``code`` enum lists what that route can answer: the codes its handler and guards raise (read
from the code, :mod:`ecert.apischema.raises`), plus those of the layers around every route
(authentication, rate limit, validation, the database). An error status the route declares
itself with ``responses=`` is left as declared.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from litestar import Litestar, Request
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    ScalarRenderPlugin,
    SwaggerRenderPlugin,
)
from litestar.routes import HTTPRoute

from ecert.apischema.raises import codes_raised
from ecert.errorcodes import CODES
from ecert.errors import OWN_ERROR_FORMAT
from ecert.server.auth import ADMIT
from ecert.server.ratelimit import UNLIMITED

PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

#: RFC 9457 members ecert sends (``detail`` is left out when it would repeat ``title``), plus
#: ``request_id`` and, for ``validation_failed``, ``errors``. Other members may follow.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details; `code` is stable (docs/errors.md).",
    "required": ["type", "title", "status", "code", "instance"],
    "properties": {
        "type": {"type": "string", "description": "urn:ecert:problem:<code>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "instance": {"type": "string", "description": "The request path"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "key": {"type": "string"},
                    "message": {"type": "string"},
                    "source": {"type": "string"},
                },
            },
        },
    },
}

RETRY_AFTER = {
    "description": "Seconds to wait before retrying (with the same Idempotency-Key)",
    "schema": {"type": "integer"},
}

#: Refusals the walk cannot see: raised behind an object's method (key ring, store, trust list).
EXTRA_CODES: dict[str, tuple[str, ...]] = {
    "VerifyController.verify": (
        "qr_malformed",
        "qr_signature_invalid",
        "qr_unknown_key",
        "qr_expired",
        "qr_not_yet_valid",
        "qr_wrong_issuer",
        "qr_replayed",
    ),
    # The person's lookups run through ``lookup.services.audited`` (replica or primary), which
    # the code reading cannot follow: what they can answer, named here.
    "LookupController.enrolment": ("not_found",),
    "LookupController.contributions": ("not_found",),
    "LookupController.account": ("not_found",),
    "LookupController.transactions": ("not_found",),
    "LookupController.settlements": ("not_found",),
    "LookupController.benefits": ("not_found", "not_enrolled", "no_policy"),
    "LookupController.estimate": ("not_found", "not_enrolled", "no_policy", "invalid_bill"),
}

#: Every route can meet these: an unexpected failure, a database or store that is down.
_ALWAYS = ("internal_error", "unavailable")


def route_codes(
    handler: HTTPRouteHandler, path: str, *, public: bool, has_input: bool, has_body: bool
) -> set[str]:
    """Every code the route can answer with."""
    codes = set(codes_raised(handler.fn))
    guards = [*handler.resolve_guards(), *filter(None, [handler.opt.get(ADMIT)])]
    for guard in guards:
        codes |= codes_raised(guard)
    codes |= set(EXTRA_CODES.get(handler.fn.__qualname__, ()))
    codes |= set(_ALWAYS)
    if path not in UNLIMITED:
        codes.add("rate_limited")
    if not public:
        codes.add("unauthorized")
    if guards:
        codes.add("forbidden")
    if has_input:
        codes.add("validation_failed")
    if has_body:
        codes.add("payload_too_large")
    if "{" in path:
        codes.add("not_found")  # a path parameter of the wrong form matches no route
    return codes


def problem_responses(codes: Iterable[str]) -> dict[str, Any]:
    by_status: dict[int, list[str]] = defaultdict(list)
    for code in sorted(codes):
        by_status[CODES[code].status].append(code)
    responses: dict[str, Any] = {}
    for status, listed in sorted(by_status.items()):
        described = "; ".join(f"`{c}`: {CODES[c].title}" for c in listed)
        schema = {
            "allOf": [PROBLEM_REF],
            "properties": {"status": {"enum": [status]}, "code": {"enum": listed}},
        }
        responses[str(status)] = {
            "description": described,
            "content": {PROBLEM_JSON: {"schema": schema}},
        }
        if status in (429, 503):
            responses[str(status)]["headers"] = {"Retry-After": RETRY_AFTER}
    return responses


def document(app: Litestar, schema: dict[str, Any], public_paths: Iterable[str]) -> None:
    """Rewrite the errors of every operation in ``schema`` (in place, once)."""
    if "Problem" in schema.setdefault("components", {}).setdefault("schemas", {}):
        return
    public = [re.compile(p) for p in public_paths]
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        path = route.path_format or "/"
        item = schema.get("paths", {}).get(path)
        if item is None:
            continue
        for method, (handler, _) in route.route_handler_map.items():
            operation = item.get(method.lower())
            if not isinstance(operation, dict):
                continue
            is_public = any(p.search(path) for p in public) or bool(
                handler.opt.get("exclude_from_auth")
            )
            responses = operation.setdefault("responses", {})
            if "204" in responses:
                responses["204"].pop("content", None)  # a 204 has no content (RFC 9110)
            has_input = "400" in responses or "requestBody" in operation
            # An error response the route declares itself (``responses=``) stays: a face with
            # its own error format (FHIR's OperationOutcome) says so there.
            declared = {str(status) for status in handler.responses or {}}
            for status in [s for s in responses if s[0] in "45" and s not in declared]:
                del responses[status]
            codes = route_codes(
                handler,
                path,
                public=is_public,
                has_input=has_input,
                has_body="requestBody" in operation,
            )
            if handler.opt.get(OWN_ERROR_FORMAT):
                continue  # a face with its own error format documents all its errors itself
            documented = problem_responses(codes)
            responses.update({s: r for s, r in documented.items() if s not in declared})
            if is_public:
                operation["security"] = []
    schema["components"]["schemas"]["Problem"] = PROBLEM_SCHEMA


class _Documented(OpenAPIRenderPlugin):
    """Every rendering (JSON, Scalar, Swagger) starts from the rewritten schema."""

    public_paths: tuple[str, ...] = ()

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        document(request.app, openapi_schema, self.public_paths)
        # The concrete plugin (JSON, Scalar, Swagger) follows this class in the MRO.
        return super().render(request, openapi_schema)  # type: ignore[safe-super]


def render_plugins(public_paths: Iterable[str]) -> list[OpenAPIRenderPlugin]:
    """``/schema`` (Scalar), ``/schema/swagger`` and ``/schema/openapi.json``."""
    paths = tuple(public_paths)

    class Json(_Documented, JsonRenderPlugin):
        public_paths = paths

    class Scalar(_Documented, ScalarRenderPlugin):
        public_paths = paths

    class Swagger(_Documented, SwaggerRenderPlugin):
        public_paths = paths

    return [Scalar(), Swagger(path="/swagger"), Json()]
