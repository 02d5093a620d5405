"""Visit routes for institutions (docs/settlement.md; national 2201–2207)."""

from __future__ import annotations

import uuid

from litestar import Controller, Response, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from ecert.server.auth import admits, institution_guard, principal_of
from ecert.server.deps import AnyRequest, DbSession, RuntimeDep
from ecert.settlement import replies
from ecert.settlement.controllers import IdempotencyKey, replayable
from ecert.settlement.visits import fees, pricing, schemas, services, view


class VisitController(Controller):
    path = "/v1/visits"
    tags = ["Visits"]
    opt = admits(institution_guard)

    @post(
        "/",
        status_code=201,
        summary="Open a visit (send an Idempotency-Key)",
        responses=replies.VISIT_OPENED,
    )
    async def open_visit(
        self,
        request: AnyRequest,
        data: JSONBody[schemas.VisitCreate],
        db_session: DbSession,
        runtime: RuntimeDep,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[dict[str, object]]:
        status, body, replayed = await services.open_visit(
            db_session, runtime, principal_of(request), data, idempotency_key
        )
        return replayable(status, body, replayed)

    @get("/{visit_id:uuid}", summary="The visit, its fee lines and its settlements")
    async def show(
        self,
        request: AnyRequest,
        visit_id: FromPath[uuid.UUID],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.VisitView:
        return await view.view(db_session, runtime, principal_of(request), visit_id)

    @post("/{visit_id:uuid}/cancel", status_code=200, summary="Cancel a visit nothing settled")
    async def cancel(
        self,
        request: AnyRequest,
        visit_id: FromPath[uuid.UUID],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.VisitView:
        principal = principal_of(request)
        await services.cancel(db_session, principal, visit_id)
        return await view.view(db_session, runtime, principal, visit_id)

    @post("/{visit_id:uuid}/fees", status_code=200, summary="Upload fee lines (re-sending is safe)")
    async def add_fees(
        self,
        request: AnyRequest,
        visit_id: FromPath[uuid.UUID],
        data: JSONBody[schemas.FeeUpload],
        db_session: DbSession,
    ) -> schemas.FeeUploadResult:
        return await fees.add(db_session, principal_of(request), visit_id, data)

    @delete(
        "/{visit_id:uuid}/fees/{line_no:str}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Delete a fee line of an open visit",
    )
    async def delete_fee(
        self,
        request: AnyRequest,
        visit_id: FromPath[uuid.UUID],
        line_no: FromPath[str],
        db_session: DbSession,
    ) -> None:
        await fees.remove(db_session, principal_of(request), visit_id, line_no)

    @post(
        "/{visit_id:uuid}/settlements/preview",
        status_code=200,
        summary="Price the visit; nothing is written",
    )
    async def preview(
        self,
        request: AnyRequest,
        visit_id: FromPath[uuid.UUID],
        data: JSONBody[schemas.VisitSettleRequest],
        db_session: DbSession,
    ) -> schemas.VisitSettlement:
        return await pricing.preview(db_session, principal_of(request), visit_id, data)

    @post(
        "/{visit_id:uuid}/settlements",
        status_code=201,
        summary="Settle the visit (send an Idempotency-Key)",
        responses=replies.VISIT_SETTLED,
    )
    async def settle(
        self,
        request: AnyRequest,
        visit_id: FromPath[uuid.UUID],
        data: JSONBody[schemas.VisitSettleRequest],
        db_session: DbSession,
        runtime: RuntimeDep,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[dict[str, object]]:
        status, body, replayed = await pricing.settle(
            db_session, runtime, principal_of(request), visit_id, data, idempotency_key
        )
        return replayable(status, body, replayed)
