"""Settlement routes for institutions, and the agency's policy upload."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import FromPath, HeaderParameter, JSONBody

from ecert import ledger
from ecert.benefits import Policy
from ecert.security import staff
from ecert.server.auth import admits, agency_guard, institution_guard, principal_of
from ecert.server.deps import AnyRequest, DbSession, RuntimeDep
from ecert.settlement import replies, reversal, schemas, services

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(name="Idempotency-Key", description="Unique per intended operation"),
]


def replayable(status: int, body: dict[str, Any], replayed: bool) -> Response[dict[str, Any]]:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(body, status_code=status, headers=headers)


class SettlementController(Controller):
    tags = ["Verify and settle"]
    opt = admits(institution_guard)

    @post("/v1/settlements/preview", status_code=200, summary="Price a bill; nothing is written")
    async def preview(
        self, request: AnyRequest, data: JSONBody[schemas.SettlementRequest], db_session: DbSession
    ) -> schemas.SettlementResult:
        return await services.preview(db_session, principal_of(request), data)

    @post(
        "/v1/settlements",
        status_code=201,
        summary="Settle a bill (send an Idempotency-Key)",
        responses=replies.SETTLED,
    )
    async def settle(
        self,
        request: AnyRequest,
        data: JSONBody[schemas.SettlementRequest],
        db_session: DbSession,
        runtime: RuntimeDep,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[dict[str, Any]]:
        status, body, replayed = await services.settle(
            db_session, runtime, principal_of(request), data, idempotency_key
        )
        return replayable(status, body, replayed)

    @get("/v1/settlements/{settlement_id:uuid}", summary="One settlement of this institution")
    async def show(
        self, request: AnyRequest, settlement_id: FromPath[uuid.UUID], db_session: DbSession
    ) -> ledger.SettlementView:
        return ledger.settlement_view(
            await services.owned(db_session, principal_of(request), settlement_id)
        )

    @post(
        "/v1/settlements/{settlement_id:uuid}/reversal",
        status_code=201,
        summary="Reverse all or part (send an Idempotency-Key)",
        responses=replies.REVERSED,
    )
    async def reverse(
        self,
        request: AnyRequest,
        settlement_id: FromPath[uuid.UUID],
        data: JSONBody[schemas.ReversalRequest],
        db_session: DbSession,
        runtime: RuntimeDep,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[dict[str, Any]]:
        status, body, replayed = await reversal.reverse(
            db_session, runtime, principal_of(request), settlement_id, data, idempotency_key
        )
        return replayable(status, body, replayed)


class AgencyPolicyController(Controller):
    path = "/v1/agency/policies"
    tags = ["Agency"]
    #: Among staff, imports are the key and import operators' work, not the counter's.
    opt = {**admits(agency_guard), **staff.roles_opt(staff.OPERATOR)}

    @post("/", status_code=200, summary="Upsert benefit policies (format: docs/import.md)")
    async def upsert(
        self, data: JSONBody[list[Policy]], db_session: DbSession
    ) -> schemas.PolicyUpsertResult:
        policies = [msgspec.to_builtins(policy) for policy in data]
        return schemas.PolicyUpsertResult(
            upserted=await ledger.upsert_policies(db_session, policies)
        )
