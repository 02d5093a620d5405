"""``POST /v1/agency/imports/{kind}``: the same imports over the API, for small batches."""

from __future__ import annotations

import io
from typing import Annotated, Literal

from litestar import Controller, post
from litestar.params import FromPath, HeaderParameter

from ecert.errors import ValidationFailed
from ecert.imports.readers import rows
from ecert.imports.schemas import ImportReport, Reject
from ecert.imports.services import run_import
from ecert.security import staff
from ecert.security.audit import record_audit
from ecert.server.auth import admits, agency_guard, principal_of
from ecert.server.deps import AnyRequest, DbSession, RuntimeDep

Kind = Literal["persons", "enrolments", "contributions", "policies", "institutions", "catalogue"]
#: How many rejects the answer lists; the count covers all of them.
SHOWN_REJECTS = 100


class ImportController(Controller):
    path = "/v1/agency/imports"
    tags = ["Agency"]
    #: Among staff, imports are the key and import operators' work, not the counter's.
    opt = {**admits(agency_guard), **staff.roles_opt(staff.OPERATOR)}

    @post(
        "/{kind:str}",
        status_code=200,
        summary="Import a small batch (CSV with header, or JSON Lines)",
        description="Send `Content-Type: text/csv` or `application/jsonl`; the body size limit "
        "applies (use `ecert import` for large files). Each good line lands; each bad one is "
        "reported with its line number and reason.",
    )
    async def import_batch(
        self,
        request: AnyRequest,
        kind: FromPath[Kind],
        runtime: RuntimeDep,
        db_session: DbSession,
        content_type: Annotated[str, HeaderParameter(name="Content-Type")] = "application/jsonl",
    ) -> ImportReport:
        fmt = "csv" if "csv" in content_type else "jsonl"
        if kind == "policies" and fmt == "csv":
            raise ValidationFailed("policies are nested: send them as JSON Lines")
        try:
            text = (await request.body()).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationFailed("the body must be UTF-8") from exc
        rejects: list[Reject] = []
        accepted = await run_import(
            runtime, kind, rows(io.StringIO(text, newline=""), fmt), on_reject=rejects.append
        )
        # One audit row a batch (the rows landed in their own transactions, like the CLI's).
        await record_audit(
            db_session,
            principal_of(request),
            None,
            f"import.{kind}",
            "ok",
            {"accepted": accepted, "rejected": len(rejects)},
        )
        return ImportReport(
            kind=kind, accepted=accepted, rejected=len(rejects), rejects=rejects[:SHOWN_REJECTS]
        )
