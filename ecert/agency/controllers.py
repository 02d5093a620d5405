"""The agency console's routes: staff sign-in, the person's file, audit trail, keys, the day."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from litestar import Controller, Response, delete, get, post
from litestar.datastructures import Cookie
from litestar.params import FromPath, JSONBody, QueryParameter

from ecert.agency import schemas, services, staff
from ecert.clock import utcnow
from ecert.errors import Conflict
from ecert.security import staff as marks
from ecert.security.audit import record_audit
from ecert.server.auth import admits, agency_guard, principal_of
from ecert.server.deps import AnyRequest, DbSession, RuntimeDep
from ecert.settlement.reconciliation import schemas as day_schemas
from ecert.settlement.reconciliation import services as day_services

Institution = Annotated[
    str, QueryParameter(pattern=r"^[A-Z]\d{11}$", description="e.g. H37010200001")
]
EVERYONE = marks.roles_opt(marks.COUNTER | marks.OPERATOR)


def _cookie(request: AnyRequest, value: str, max_age: int) -> Cookie:
    return Cookie(
        key=marks.COOKIE,
        value=value,
        path=marks.COOKIE_PATH,
        httponly=True,
        samesite="strict",
        # Behind TLS (as in production) the cookie never travels in clear.
        secure=request.url.scheme == "https",
        max_age=max_age,
    )


class StaffSessionController(Controller):
    path = "/v1/agency/session"
    tags = ["Agency console"]

    @post("/", status_code=200, exclude_from_auth=True, summary="Staff sign-in (sets the cookie)")
    async def sign_in(
        self,
        request: AnyRequest,
        data: JSONBody[schemas.SignIn],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> Response[schemas.StaffView]:
        member, token = await staff.sign_in(
            db_session, runtime, data.login, data.password, data.totp
        )
        until = utcnow() + dt.timedelta(seconds=staff.SESSION_S)
        body = schemas.StaffView(member.login, member.name, member.role, until)
        return Response(body, cookies=[_cookie(request, token, staff.SESSION_S)])

    @get("/", opt={**admits(agency_guard), **EVERYONE}, summary="Who is signed in")
    async def me(self, request: AnyRequest) -> schemas.StaffView:
        who = principal_of(request)
        login = who.client_id.removeprefix(marks.PREFIX)
        return schemas.StaffView(login, who.staff_name or login, who.staff_role or "agency")

    @delete("/", opt={**admits(agency_guard), **EVERYONE}, summary="Sign out (clears the cookie)")
    async def sign_out(self, request: AnyRequest, db_session: DbSession) -> Response[None]:
        await record_audit(db_session, principal_of(request), None, "staff.sign_out", "ok")
        return Response(None, status_code=204, cookies=[_cookie(request, "", 0)])


class AgencyPersonController(Controller):
    path = "/v1/agency/persons"
    tags = ["Agency console"]
    opt = admits(agency_guard)

    @post("/search", status_code=200, summary="Find a person by ID number (in the body)")
    async def search(
        self,
        request: AnyRequest,
        data: JSONBody[schemas.PersonSearch],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.PersonSummary:
        return await services.search(db_session, runtime, principal_of(request), data.id_number)

    @get("/{person_no:str}", summary="The person's file: e-certs, suspensions, family links")
    async def file(
        self,
        request: AnyRequest,
        person_no: FromPath[str],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.PersonFile:
        return await services.file(db_session, runtime, principal_of(request), person_no)

    @get("/{person_no:str}/audit", summary="The person's audit trail, each row checked")
    async def audit(
        self,
        request: AnyRequest,
        person_no: FromPath[str],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.AuditTrail:
        return await services.trail(db_session, runtime, principal_of(request), person_no)


class AgencyKeysController(Controller):
    path = "/v1/agency/keys"
    tags = ["Agency console"]
    opt = {**admits(agency_guard), **marks.roles_opt(marks.OPERATOR)}

    @post("/rotate", status_code=200, summary="Rotate a signing key family (operators only)")
    async def rotate(
        self,
        request: AnyRequest,
        data: JSONBody[schemas.KeyRotation],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.KeyRotated:
        kid = await services.rotate_keys(runtime, data.purpose)
        if kid is None:
            raise Conflict("another process rotated at the same time; try again")
        await record_audit(
            db_session, principal_of(request), None, "keys.rotate", "ok", {"purpose": data.purpose}
        )
        return schemas.KeyRotated(purpose=data.purpose, active=kid)


class AgencyReconciliationController(Controller):
    path = "/v1/agency/reconciliation"
    tags = ["Agency console"]
    opt = admits(agency_guard)

    @get("/", summary="An institution's business day, as the institution sees it")
    async def day(
        self,
        db_session: DbSession,
        institution: Institution,
        date: Annotated[dt.date, QueryParameter(description="YYYY-MM-DD, Asia/Shanghai")],
    ) -> day_schemas.Reconciliation:
        return await day_services.reconcile(db_session, institution, date)
