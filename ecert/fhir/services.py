"""Claims over the §7 services: the visit the ec_token opened (or opens now), its fee lines,
then pre-settlement (``predetermination``) or settlement (``claim``). Nothing is priced or
stored here: the visit services price and book, exactly as for the native API."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import msgspec
from fhir.resources.R4B.claim import Claim
from fhir.resources.R4B.claimresponse import ClaimResponse
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import Visit
from ecert.errors import Forbidden, ValidationFailed
from ecert.fhir import claims, repositories
from ecert.fhir.adjudication import claim_response
from ecert.fhir.codes import EC_TOKEN
from ecert.fhir.patients import identifier_of
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime
from ecert.settlement import idempotency
from ecert.settlement.visits import fees, pricing, services


async def _visit(
    session: AsyncSession, runtime: Runtime, principal: Principal, request: claims.ClaimRequest
) -> Visit:
    """The visit this ec_token opened here, or a new one (which spends the token)."""
    assert principal.institution_code is not None  # institution_guard
    assert request.visit.ec_token is not None
    visit = await repositories.visit_of_token(
        session, principal.institution_code, request.visit.ec_token
    )
    if visit is None:
        # The work of POST /v1/visits without its own key: the claim's one key (see submit)
        # covers open, fees and settle, and a claim that fails later leaves no visit behind.
        opened = await services._open(session, runtime, principal, request.visit)
        return await services.owned(session, principal, uuid.UUID(opened["visit_id"]))
    if visit.med_type != request.visit.med_type:
        raise ValidationFailed(f"this ec_token's visit has med_type {visit.med_type}")
    return visit


async def _price(
    session: AsyncSession, runtime: Runtime, principal: Principal, request: claims.ClaimRequest
) -> dict[str, Any]:
    visit = await _visit(session, runtime, principal, request)
    await fees.add(session, principal, visit.id, request.fees)
    if request.use == "predetermination":
        preview = await pricing.preview(session, principal, visit.id, request.settle)
        body: dict[str, Any] = msgspec.to_builtins(preview)
        return body
    # The settle work without its own key, for the same reason as the open above.
    return await pricing._settle(session, principal, visit.id, request.settle)


async def submit(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    claim: Claim,
    raw: bytes,
    key: str | None,
) -> tuple[ClaimResponse, bool]:
    """(ClaimResponse, replayed). A ``claim`` runs once per Idempotency-Key (or, without one,
    per Claim.identifier); a retry answers the stored ClaimResponse."""
    system, value = identifier_of(claim.patient)
    if system != EC_TOKEN:
        raise Forbidden(f"a claim names the patient by {EC_TOKEN}")
    request = claims.read(claim, value)
    if request.use == "predetermination":
        # Re-sending it is safe without a key: the same token finds the same visit, and fee
        # lines already held are no-ops.
        result = await _price(session, runtime, principal, request)
        return claim_response(claim, result, request.sequences), False
    key = key or request.claim_id
    scope = f"{principal.client_id}:fhir"
    digest = hashlib.sha256(b"/fhir/Claim/$submit\n" + raw).hexdigest()

    async def work() -> dict[str, Any]:
        result = await _price(session, runtime, principal, request)
        response = claim_response(claim, result, request.sequences)
        answer: dict[str, Any] = json.loads(response.model_dump_json())
        return answer

    _, body, replayed = await idempotency.run_once(
        session, runtime, scope, key, digest, work, status=200
    )
    return ClaimResponse.model_validate(body), replayed
