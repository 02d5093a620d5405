"""``POST /v1/verify`` for hospitals and pharmacies."""

from __future__ import annotations

from litestar import Controller, post
from litestar.params import JSONBody

from ecert.errors import EcertError
from ecert.metrics import VERIFICATIONS
from ecert.server.auth import admits, institution_guard, principal_of
from ecert.server.deps import AnyRequest, DbSession, RuntimeDep
from ecert.server.ratelimit import CHARGE
from ecert.verify import schemas, services


class VerifyController(Controller):
    path = "/v1/verify"
    tags = ["Verify and settle"]
    opt = admits(institution_guard)

    @post(
        "/",
        status_code=200,
        summary="Verify a scanned code and get a settlement token",
        description="The signed QR text or the 28-digit numeric code; each code works once.",
    )
    async def verify(
        self,
        request: AnyRequest,
        data: JSONBody[schemas.VerifyRequest],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.VerifyResponse:
        try:
            result = await services.verify(
                db_session,
                runtime,
                principal_of(request),
                data.qr,
                data.business_type,
                request.scope.get("state", {}).get(CHARGE),
            )
        except EcertError as exc:
            VERIFICATIONS.labels(exc.code).inc()
            raise
        VERIFICATIONS.labels("ok").inc()
        return result
