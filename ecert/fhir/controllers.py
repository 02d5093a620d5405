"""FHIR R4B routes (``application/fhir+json`` in and out; refusals as OperationOutcome)."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, TypeVar

from fhir.resources.R4B.claim import Claim
from fhir.resources.R4B.coverageeligibilityrequest import CoverageEligibilityRequest
from fhir.resources.R4B.resource import Resource
from litestar import Controller, Response, get, post
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from pydantic import ValidationError

from ecert.errors import OWN_ERROR_FORMAT, EcertError, ValidationFailed
from ecert.fhir import eligibility, outcome, services
from ecert.fhir.capability import capability_statement
from ecert.fhir.codes import FHIR_JSON
from ecert.server import problems
from ecert.server.auth import admits, institution_guard, principal_of
from ecert.server.deps import AnyRequest, DbSession, RuntimeDep
from ecert.settlement.controllers import IdempotencyKey

R = TypeVar("R", bound=Resource)
_ACCEPTED = ("application/fhir+json", "application/json")


@functools.cache
def _published() -> dt.datetime:
    """The CapabilityStatement's date: when this worker first described itself."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


async def institution_or_person(connection: ASGIConnection, handler: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    """Institutions (by ec_token) and channels acting for one person (by person number)."""
    principal = principal_of(connection)
    if principal.kind == "channel" and principal.person_id is not None:
        return
    await institution_guard(connection, handler)


def fhir(
    resource: Resource, status: int = 200, headers: dict[str, str] | None = None
) -> Response[bytes]:
    return Response(
        resource.model_dump_json().encode(),
        status_code=status,
        media_type=FHIR_JSON,
        headers=headers,
    )


async def _read(request: AnyRequest, kind: type[R]) -> tuple[R, bytes]:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in _ACCEPTED:
        raise UnsupportedMedia(f"send {FHIR_JSON}")
    raw = await request.body()
    resource = kind.model_validate_json(raw)  # ValidationError → OperationOutcome (outcome.py)
    if resource.get_resource_type() != kind.get_resource_type():
        raise ValidationFailed(f"expected a {kind.get_resource_type()}")
    return resource, raw


class UnsupportedMedia(EcertError):
    """Raised when a FHIR route is sent anything but (FHIR) JSON."""

    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class FhirController(Controller):
    path = "/fhir"
    tags = ["FHIR R4B"]
    # Every kind the app maps (a handler here for Exception alone would lose to the app's more
    # specific ones), and fhir.resources' validation errors.
    exception_handlers: Any = {
        kind: outcome.handle for kind in [*problems.exception_handlers, ValidationError]
    }

    @get(
        "/metadata",
        exclude_from_auth=True,
        summary="CapabilityStatement",
        media_type=FHIR_JSON,
        opt={OWN_ERROR_FORMAT: True},
        responses=outcome.documented(429, 500, 503, resource="CapabilityStatement"),
    )
    async def metadata(self, runtime: RuntimeDep) -> Response[bytes]:
        return fhir(capability_statement(runtime.settings.issuer_url, _published()))

    @post(
        "/CoverageEligibilityRequest/$submit",
        status_code=200,
        media_type=FHIR_JSON,
        opt={**admits(institution_or_person), OWN_ERROR_FORMAT: True},
        responses=outcome.documented(400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503),
        summary="CoverageEligibilityRequest → CoverageEligibilityResponse",
    )
    async def eligibility(self, request: AnyRequest, db_session: DbSession) -> Response[bytes]:
        resource, _ = await _read(request, CoverageEligibilityRequest)
        return fhir(await eligibility.check(db_session, principal_of(request), resource))

    @post(
        "/Claim/$submit",
        status_code=200,
        media_type=FHIR_JSON,
        opt={**admits(institution_guard), OWN_ERROR_FORMAT: True},
        responses=outcome.documented(400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503),
        summary="Claim (predetermination or claim) → ClaimResponse",
    )
    async def claim(
        self,
        request: AnyRequest,
        db_session: DbSession,
        runtime: RuntimeDep,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        resource, raw = await _read(request, Claim)
        answer, replayed = await services.submit(
            db_session, runtime, principal_of(request), resource, raw, idempotency_key
        )
        return fhir(answer, headers={"Idempotent-Replayed": "true"} if replayed else None)
