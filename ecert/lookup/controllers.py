"""The person's lookup routes (person-scoped token)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from litestar import Controller, get, post
from litestar.params import JSONBody, QueryParameter

from ecert import ledger
from ecert.lookup import schemas, services
from ecert.server.auth import admits, person_guard, principal_of
from ecert.server.deps import AnyRequest, DbSession, RuntimeDep

Limit = Annotated[int, QueryParameter(ge=1, le=200, description="Page size")]
Offset = Annotated[int, QueryParameter(ge=0, le=1_000_000, description="Items to skip")]


class LookupController(Controller):
    path = "/v1/me"
    tags = ["Self-service"]
    opt = admits(person_guard)

    @get("/enrolment", summary="Insurance types, status, dates, employer, area, category")
    async def enrolment(
        self, request: AnyRequest, db_session: DbSession, runtime: RuntimeDep
    ) -> schemas.Enrolments:
        return await services.enrolment(db_session, runtime, principal_of(request))

    @get("/contributions", summary="Monthly contributions with totals per year")
    async def contributions(
        self,
        request: AnyRequest,
        db_session: DbSession,
        runtime: RuntimeDep,
        start: Annotated[str | None, QueryParameter(name="from", pattern=r"^\d{6}$")] = None,
        end: Annotated[str | None, QueryParameter(name="to", pattern=r"^\d{6}$")] = None,
        limit: Limit = 24,
        offset: Offset = 0,
    ) -> schemas.ContributionPage:
        return await services.contributions(
            db_session,
            runtime,
            principal_of(request),
            start=start,
            end=end,
            limit=limit,
            offset=offset,
        )

    @get("/account", summary="Personal account balance (fen)")
    async def account(
        self, request: AnyRequest, db_session: DbSession, runtime: RuntimeDep
    ) -> schemas.AccountView:
        return await services.account(db_session, runtime, principal_of(request))

    @get("/account/transactions", summary="Account movements, newest first")
    async def transactions(
        self,
        request: AnyRequest,
        db_session: DbSession,
        runtime: RuntimeDep,
        start: Annotated[dt.date | None, QueryParameter(name="from")] = None,
        end: Annotated[dt.date | None, QueryParameter(name="to")] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> schemas.TransactionPage:
        return await services.transactions(
            db_session,
            runtime,
            principal_of(request),
            start=start,
            end=end,
            limit=limit,
            offset=offset,
        )

    @get("/benefits", summary="This year's policy for the person and what is used so far")
    async def benefits(
        self, request: AnyRequest, db_session: DbSession, runtime: RuntimeDep
    ) -> schemas.BenefitsView:
        return await services.benefits(db_session, runtime, principal_of(request))

    @post("/benefits/estimate", status_code=200, summary="What a bill would cost the person now")
    async def estimate(
        self,
        request: AnyRequest,
        data: JSONBody[schemas.EstimateRequest],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> ledger.Costs:
        return await services.estimate(db_session, runtime, principal_of(request), data)

    @get("/settlements", summary="The person's settlements with their explanations")
    async def settlements(
        self,
        request: AnyRequest,
        db_session: DbSession,
        runtime: RuntimeDep,
        limit: Limit = 20,
        offset: Offset = 0,
    ) -> schemas.SettlementPage:
        return await services.settlements(
            db_session, runtime, principal_of(request), limit=limit, offset=offset
        )
