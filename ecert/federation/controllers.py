"""``GET /v1/clearing`` for the agency; ``PUT /v1/federation/institutions/{code}`` for the other
provinces' ecerts (before they route a hospital's first call here)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, put
from litestar.params import FromPath, JSONBody, Parameter

from ecert.deps import AnyRequest, DbSession
from ecert.errors import Forbidden
from ecert.federation import clearing, repositories, schemas
from ecert.federation.routing import Federation
from ecert.security.auth import agency_guard, principal_of, require
from ecert.security.province import INSTITUTION_CODE, province_scope

province_guard = require("province")


class ClearingController(Controller):
    path = "/v1/clearing"
    tags = ["Provinces"]
    guards = [agency_guard]

    @get("/", summary="What each province owes the other this month (to the fen)")
    async def month(
        self,
        request: AnyRequest,
        db_session: DbSession,
        month: Annotated[str, Parameter(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")],
    ) -> schemas.ClearingReport:
        federation: Federation | None = request.app.state.get("federation")
        peers = list(federation.peers) if federation is not None else []
        own = request.app.state.runtime.settings.issuer_area
        return await clearing.report(db_session, own, peers, month)


class RoutedInstitutionController(Controller):
    path = "/v1/federation/institutions"
    tags = ["Provinces"]
    guards = [province_guard]

    @put("/{code:str}", summary="Register (or update) a hospital of the calling province")
    async def put_institution(
        self,
        request: AnyRequest,
        code: FromPath[str],
        data: JSONBody[schemas.RoutedInstitution],
        db_session: DbSession,
    ) -> schemas.RoutedInstitution:
        scopes = principal_of(request).scopes
        if not INSTITUTION_CODE.match(code) or province_scope(code[1:7]) not in scopes:
            raise Forbidden("a province registers only its own province's institutions")
        if province_scope(data.area) not in scopes:
            raise Forbidden("the institution's area is not in the calling province")
        values = {"code": code, "name": data.name, "kind": data.kind, "level": data.level}
        await repositories.put_institution(
            db_session, {**values, "area": data.area, "designated": data.designated}
        )
        return data
