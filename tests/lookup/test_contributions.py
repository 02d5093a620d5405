"""GET /v1/me/contributions: months in range, newest first, paginated, totals per year."""

from __future__ import annotations

import json

from ecert.imports.readers import rows
from ecert.imports.services import run_import
from ecert.server.runtime import Runtime
from tests.factories import holder
from tests.helpers import Client


async def test_contributions_by_month_and_year(client: Client, runtime: Runtime) -> None:
    person = await holder(client, runtime, name="郑十")
    months = [
        ("202511", "paid"),
        ("202512", "arrears"),
        ("202601", "paid"),
        ("202602", "back_paid"),
    ]
    text = "\n".join(
        json.dumps(
            {
                "id_number": person.id_number,
                "month": m,
                "base": 900000,
                "employer_amount": 72000,
                "employee_amount": 18000,
                "account_credit": 18000,
                "status": s,
            }
        )
        for m, s in months
    )
    await run_import(
        runtime, "contributions", rows(text.splitlines(), "jsonl"), on_reject=lambda r: None
    )
    page = (await client.get("/v1/me/contributions?limit=2", headers=person.headers)).json()
    assert [(c["month"], c["credited"]) for c in page["items"]] == [
        ("202602", True),
        ("202601", True),
    ]
    assert page["total"] == 4
    assert page["totals_by_year"] == [
        {
            "year": 2026,
            "employer_amount": 144000,
            "employee_amount": 36000,
            "account_credit": 36000,
            "months_paid": 2,
            "months_in_arrears": 0,
        },
        {
            "year": 2025,
            "employer_amount": 144000,
            "employee_amount": 36000,
            "account_credit": 18000,
            "months_paid": 1,
            "months_in_arrears": 1,
        },
    ]
    ranged = (
        await client.get("/v1/me/contributions?from=202512&to=202601", headers=person.headers)
    ).json()
    assert [(c["month"], c["status"], c["credited"]) for c in ranged["items"]] == [
        ("202601", "paid", True),
        ("202512", "arrears", False),  # arrears credit nothing until back-paid
    ]
    assert (await client.get("/v1/me/account", headers=person.headers)).json()["balance"] == 54000
    bad = await client.get("/v1/me/contributions?from=2025-12", headers=person.headers)
    assert bad.status_code == 400
