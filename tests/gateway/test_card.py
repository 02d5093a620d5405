"""The physical card (mdtrt_cert_type 03) through the gateway: 1101 reads it, 2201 opens a visit
while it is usable, 2202 cancels that visit; a reported card is refused."""

from __future__ import annotations

from sqlalchemy import select

from ecert.db.models import Card
from ecert.server.runtime import Runtime
from tests.factories import add_client, holder, load_policies
from tests.fixtures.auth import bearer, client_token
from tests.gateway.national import envelope, hospital, ok, refused
from tests.helpers import Client
from tests.settlement.visit_steps import id_number


async def test_a_card_queries_opens_and_cancels_a_visit(client: Client, runtime: Runtime) -> None:
    await load_policies(runtime)
    h = await hospital(runtime, client, "H37010200051")
    someone = await holder(client, runtime, id_number=id_number("M"))
    agency = bearer(await client_token(client, *await add_client(runtime, "agency")))
    issued = await client.post(
        "/v1/agency/cards/issue", json={"id_number": someone.id_number}, headers=agency
    )
    assert issued.status_code == 201, issued.text
    async with runtime.sessions() as session:
        number = await session.scalar(
            select(Card.number).where(Card.person_id == someone.person_id)
        )
    assert number is not None

    query = {"data": {"mdtrt_cert_type": "03", "mdtrt_cert_no": number, "card_sn": "null"}}
    found = await ok(client, h.headers, envelope("1101", h.code, query))
    assert found["insuinfo"][0]["insutype"] == "310"
    data = {
        "mdtrt_cert_type": "03",
        "mdtrt_cert_no": number,
        "ipt_otp_no": "MZ-card-1",
        "dept_code": "A03",
        "dept_name": "内科",
        "begntime": "2026-12-01 08:30:00",
    }
    opened = await ok(client, h.headers, envelope("2201", h.code, {"data": data}))
    mdtrt_id = opened["data"]["mdtrt_id"]
    assert opened["data"]["psn_no"] == found["baseinfo"]["psn_no"]
    ref = {"data": {"mdtrt_id": mdtrt_id, "psn_no": "null", "ipt_otp_no": "MZ-card-1"}}
    cancelled = await ok(client, h.headers, envelope("2202", h.code, ref))
    assert cancelled["data"] == {"mdtrt_id": mdtrt_id, "status": "cancelled"}
    # Again: a no-op, as natively.
    assert (await ok(client, h.headers, envelope("2202", h.code, ref)))["data"]["status"] == (
        "cancelled"
    )

    lost = await client.post("/v1/me/card/loss-reports", json={}, headers=someone.headers)
    assert lost.status_code in (200, 201), lost.text
    assert await refused(client, h.headers, envelope("1101", h.code, query)) == "card_not_usable"
    assert await refused(client, h.headers, envelope("2201", h.code, {"data": data})) == (
        "card_not_usable"
    )
    bad_time = {**data, "begntime": "01/12/2026"}
    assert await refused(client, h.headers, envelope("2201", h.code, {"data": bad_time})) == (
        "input_invalid"
    )
