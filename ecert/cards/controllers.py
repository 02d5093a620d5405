"""Card routes: the person's own, the agency's counter and hotline, and card terminals."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import JSONBody

from ecert.cards import schemas, services
from ecert.db.models import CardStatus
from ecert.security import staff
from ecert.security.audit import record_audit
from ecert.server.auth import admits, agency_guard, institution_guard, person_guard, principal_of
from ecert.server.deps import AnyRequest, DbSession, RuntimeDep


class MyCardController(Controller):
    path = "/v1/me/card"
    tags = ["Card"]
    opt = admits(person_guard)

    @get("/", summary="The physical card's status and history")
    async def show(self, request: AnyRequest, db_session: DbSession) -> schemas.CardView:
        person = await services.me(db_session, principal_of(request))
        card = await services.current(db_session, person.id)
        await record_audit(db_session, principal_of(request), person.id, "card.read", "ok")
        return await services.view(db_session, card)

    @post("/loss-reports", status_code=200, summary="Report the card lost (provisional)")
    async def report(
        self, request: AnyRequest, db_session: DbSession, runtime: RuntimeDep
    ) -> schemas.CardView:
        person = await services.me(db_session, principal_of(request))
        card = await services.report_provisional(db_session, runtime, principal_of(request), person)
        return await services.view(db_session, card)

    @post(
        "/loss-reports/cancel", status_code=200, summary="Found it: cancel the provisional report"
    )
    async def cancel(self, request: AnyRequest, db_session: DbSession) -> schemas.CardView:
        person = await services.me(db_session, principal_of(request))
        card = await services.cancel_report(db_session, principal_of(request), person)
        return await services.view(db_session, card)


class CardCheckController(Controller):
    path = "/v1/cards"
    tags = ["Card"]
    opt = admits(institution_guard)

    @post(
        "/check",
        status_code=200,
        summary="May this physical card settle? (card terminals ask before accepting it)",
    )
    async def check(
        self, request: AnyRequest, data: JSONBody[schemas.CardCheck], db_session: DbSession
    ) -> schemas.CardStatus:
        card = await services.check(db_session, principal_of(request), data.number)
        return schemas.CardStatus(status=card.status, usable=card.status == CardStatus.ACTIVE)


class AgencyCardController(Controller):
    path = "/v1/agency/cards"
    tags = ["Agency"]
    opt = admits(agency_guard)

    @post("/issue", status_code=201, summary="Issue a person's first card")
    async def issue(
        self,
        request: AnyRequest,
        data: JSONBody[schemas.AgencyCardAction],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.CardView:
        person = await services.named(db_session, runtime, data)
        card = await services.issue_first(db_session, principal_of(request), person)
        return await services.view(db_session, card)

    @post("/loss-reports", status_code=200, summary="Hotline: provisional loss report")
    async def report(
        self,
        request: AnyRequest,
        data: JSONBody[schemas.AgencyCardAction],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.CardView:
        person = await services.named(db_session, runtime, data)
        card = await services.report_provisional(db_session, runtime, principal_of(request), person)
        return await services.view(db_session, card)

    @post("/loss-reports/formal", status_code=200, summary="Formal written report: freeze")
    async def formal(
        self,
        request: AnyRequest,
        data: JSONBody[schemas.AgencyCardAction],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.CardView:
        person = await services.named(db_session, runtime, data)
        card = await services.report_formal(db_session, principal_of(request), person)
        return await services.view(db_session, card)

    @post("/loss-reports/cancel", status_code=200, summary="Un-suspend a provisional report")
    async def cancel(
        self,
        request: AnyRequest,
        data: JSONBody[schemas.AgencyCardAction],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.CardView:
        person = await services.named(db_session, runtime, data)
        card = await services.cancel_report(db_session, principal_of(request), person)
        return await services.view(db_session, card)

    @post("/replacements", status_code=201, summary="Replace a lost (frozen) or damaged card")
    async def replace(
        self,
        request: AnyRequest,
        data: JSONBody[schemas.Replacement],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.CardView:
        person = await services.named(db_session, runtime, data)
        card = await services.replace(db_session, principal_of(request), person, data.reason)
        return await services.view(db_session, card)

    @post(
        "/errata",
        status_code=200,
        summary="Correct the name or ID number",
        opt=staff.roles_opt(staff.SUPERVISOR),
    )
    async def errata(
        self,
        request: AnyRequest,
        data: JSONBody[schemas.Errata],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.CardView:
        person = await services.named(db_session, runtime, data)
        card = await services.errata(
            db_session,
            runtime,
            principal_of(request),
            person,
            name=data.name,
            id_number=data.new_id_number,
        )
        return await services.view(db_session, card)
