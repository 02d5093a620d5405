"""The national interface's one URL (spec §8); every transaction is in the envelope."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, post
from litestar.openapi.datastructures import ResponseSpec

from ecert.errors import OWN_ERROR_FORMAT
from ecert.gateway.envelope import ReplyEnvelope
from ecert.gateway.replies import respond
from ecert.server.deps import AnyRequest, DbSession, RuntimeDep

PATH = "/fsi/api/rsfComIfsService/callService"


class GatewayController(Controller):
    path = PATH
    tags = ["National interface"]

    @post(
        "/",
        status_code=200,
        summary="National interface (国家医保接口): one envelope, transaction by infno",
        description=(
            "Body: the national request envelope as JSON (text/plain accepted). Auth: an "
            "institution Bearer token or the provincial gateways' _api_* signed headers. "
            "Refusals answer infcode -1 with err_msg and err_code at HTTP 200. "
            "See docs/national-interface.md."
        ),
        # Even the refusals that keep an HTTP status answer with a −1 envelope, not problem+json.
        opt={OWN_ERROR_FORMAT: True},
        responses={
            status: ResponseSpec(
                ReplyEnvelope, description=f"infcode −1: {why}", media_type="application/json"
            )
            for status, why in (
                (401, "no or bad credentials (unauthorized, signature_*)"),
                (403, "not an institution, or fixmedins_mismatch"),
                (429, "over the client's quota (rate_limited)"),
                (500, "an unexpected failure (internal_error)"),
                (503, "database or store down (unavailable)"),
            )
        },
    )
    async def call_service(
        self, request: AnyRequest, db_session: DbSession, runtime: RuntimeDep
    ) -> Response[Any]:
        return await respond(request, db_session, runtime)
