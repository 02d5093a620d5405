"""Reconciliation routes for institutions: the day report, the 3201 check, the 3202 details."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from litestar import Controller, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, QueryParameter
from litestar.response import Stream

from ecert.server.auth import admits, institution_guard, principal_of
from ecert.server.deps import AnyRequest, DbSession, RuntimeDep
from ecert.settlement.reconciliation import schemas, services

Day = Annotated[dt.date, QueryParameter(description="YYYY-MM-DD, Asia/Shanghai business day")]
Clearing = Annotated[
    schemas.ClearingType | None,
    QueryParameter(description="11 outpatient, 21 inpatient, 41 pharmacy, 99 other"),
]
Insurance = Annotated[str | None, QueryParameter(pattern=r"^\d{3}$", description="e.g. 310")]


class ReconciliationController(Controller):
    tags = ["Verify and settle"]
    opt = admits(institution_guard)

    @get("/v1/reconciliation", summary="Totals and details of the institution's business day")
    async def day(
        self,
        request: AnyRequest,
        db_session: DbSession,
        date: Day,
        clearing_type: Clearing = None,
        insurance_type: Insurance = None,
    ) -> schemas.Reconciliation:
        code = principal_of(request).institution_code or ""
        return await services.reconcile(db_session, code, date, clearing_type, insurance_type)

    @post(
        "/v1/reconciliation",
        status_code=200,
        summary="Check the institution's figures for a day (national 3201)",
    )
    async def check(
        self,
        request: AnyRequest,
        data: JSONBody[schemas.ReconciliationCheck],
        db_session: DbSession,
    ) -> schemas.ReconciliationResult:
        code = principal_of(request).institution_code or ""
        return await services.check(db_session, code, data)

    @get(
        "/v1/reconciliation/details",
        media_type="application/jsonl",
        summary="Every settlement and reversal of the day as JSON Lines (national 3202), streamed",
        responses={
            200: ResponseSpec(
                schemas.DetailLine,
                description="One DetailLine object per line",
                media_type="application/jsonl",
            )
        },
    )
    async def details(
        self,
        request: AnyRequest,
        runtime: RuntimeDep,
        date: Day,
        clearing_type: Clearing = None,
        insurance_type: Insurance = None,
    ) -> Stream:
        code = principal_of(request).institution_code or ""
        lines = services.detail_stream(runtime.sessions, code, date, clearing_type, insurance_type)
        return Stream(lines, media_type="application/jsonl")
