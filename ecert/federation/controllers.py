"""The agency's clearing (``GET /v1/clearing``, ``POST /v1/clearing/sync``), and what the other
provinces' ecerts call: ``PUT /v1/federation/institutions/{code}`` before a hospital's first
routed call, ``GET /v1/federation/clearing`` for a sync."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post, put
from litestar.params import FromPath, JSONBody, Parameter

from ecert.errors import Forbidden
from ecert.federation import clearing, repositories, schemas
from ecert.federation.routing import Federation
from ecert.security.province import INSTITUTION_CODE, province_of, province_scope
from ecert.server.auth import admits, agency_guard, principal_of, require
from ecert.server.deps import AnyRequest, DbSession

province_guard = require("province")
Month = Annotated[str, Parameter(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")]


def _federation(request: AnyRequest) -> Federation | None:
    federation: Federation | None = request.app.state.get("federation")
    return federation


class ClearingController(Controller):
    path = "/v1/clearing"
    tags = ["Provinces"]
    opt = admits(agency_guard)

    @get("/", summary="What each province owes the other this month (to the fen)")
    async def month(
        self,
        request: AnyRequest,
        db_session: DbSession,
        month: Month,
    ) -> schemas.ClearingReport:
        federation = _federation(request)
        peers = list(federation.peers) if federation is not None else []
        own = request.app.state.runtime.settings.issuer_area
        return await clearing.report(db_session, own, peers, month)

    @post("/sync", status_code=200, summary="Record routed settlements whose reply was lost")
    async def sync(
        self, request: AnyRequest, db_session: DbSession, month: Month
    ) -> schemas.ClearingSync:
        federation = _federation(request)
        peers = federation.peers.values() if federation is not None else []
        return await clearing.sync(db_session, peers, month)


class FederationController(Controller):
    """What other provinces' ecerts call here (a ``province`` client, acting for no one)."""

    path = "/v1/federation"
    tags = ["Provinces"]
    opt = admits(province_guard)

    @put(
        "/institutions/{code:str}",
        summary="Register (or update) a hospital of the calling province",
    )
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

    @get("/clearing", summary="What we settled this month for the calling province's hospitals")
    async def entries(
        self, request: AnyRequest, db_session: DbSession, month: Month
    ) -> list[schemas.ClearingEntry]:
        province = province_of(principal_of(request))
        return await clearing.entries(db_session, province, month)
