"""Each account movement carries the month it belongs to: a credit its contribution month."""

from __future__ import annotations

from ecert import ledger
from ecert.clock import business_date
from ecert.server.runtime import Runtime
from tests.factories import credit, holder
from tests.helpers import Client


async def test_a_credit_belongs_to_its_contribution_month(client: Client, runtime: Runtime) -> None:
    person = await holder(client, runtime)
    async with runtime.sessions.begin() as session:
        await ledger.credit(session, person.person_id, 47336, "contribution 202411")  # type: ignore[arg-type]
    await credit(runtime, person.person_id, 100)  # any other movement: the month it happened
    page = (await client.get("/v1/me/account/transactions", headers=person.headers)).json()
    months = {item["memo"]: item["month"] for item in page["items"]}
    assert months["contribution 202411"] == "202411"
    assert months["test credit"] == business_date().strftime("%Y%m")
