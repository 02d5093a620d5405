"""The national interface's one URL (spec §8); every transaction is in the envelope."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, post

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
    )
    async def call_service(
        self, request: AnyRequest, db_session: DbSession, runtime: RuntimeDep
    ) -> Response[Any]:
        return await respond(request, db_session, runtime)
