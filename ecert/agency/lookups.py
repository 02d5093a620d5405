"""The person's own lookups, read at the counter: the same services, audited as the clerk's."""

from __future__ import annotations

from litestar import Controller, get
from litestar.params import FromPath

from ecert.agency import services
from ecert.cards import schemas as card_schemas
from ecert.cards import services as cards
from ecert.lookup import schemas
from ecert.lookup import services as lookup
from ecert.security.audit import record_audit
from ecert.server.auth import admits, agency_guard, principal_of
from ecert.server.deps import AnyRequest, DbSession, RuntimeDep


class AgencyLookupController(Controller):
    path = "/v1/agency/persons/{person_no:str}"
    tags = ["Agency console"]
    opt = admits(agency_guard)

    @get("/enrolment", summary="The person's insurance types and statuses")
    async def enrolment(
        self,
        request: AnyRequest,
        person_no: FromPath[str],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.Enrolments:
        _, acting = await services.person(db_session, principal_of(request), person_no)
        return await lookup.enrolment(db_session, runtime, acting)

    @get("/contributions", summary="The person's last 24 months of contributions")
    async def contributions(
        self,
        request: AnyRequest,
        person_no: FromPath[str],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.ContributionPage:
        _, acting = await services.person(db_session, principal_of(request), person_no)
        return await lookup.contributions(
            db_session, runtime, acting, start=None, end=None, limit=24, offset=0
        )

    @get("/account", summary="The person's account balance")
    async def account(
        self,
        request: AnyRequest,
        person_no: FromPath[str],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.AccountView:
        _, acting = await services.person(db_session, principal_of(request), person_no)
        return await lookup.account(db_session, runtime, acting)

    @get("/transactions", summary="The person's newest account movements")
    async def transactions(
        self,
        request: AnyRequest,
        person_no: FromPath[str],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.TransactionPage:
        _, acting = await services.person(db_session, principal_of(request), person_no)
        return await lookup.transactions(
            db_session, runtime, acting, start=None, end=None, limit=50, offset=0
        )

    @get("/card", summary="The person's card and its history")
    async def card(
        self, request: AnyRequest, person_no: FromPath[str], db_session: DbSession
    ) -> card_schemas.CardView:
        person, _ = await services.person(db_session, principal_of(request), person_no)
        card = await cards.current(db_session, person.id)
        await record_audit(db_session, principal_of(request), person.id, "card.read", "ok")
        return await cards.view(db_session, card)
