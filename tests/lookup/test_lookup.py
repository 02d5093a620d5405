"""The person's lookups: enrolment, account and transactions, benefits, estimate, history."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from ecert.clock import business_date
from ecert.db.models import AuditEvent
from ecert.server.runtime import Runtime
from tests.factories import Holder, credit, ec_token, holder, institution, load_policies
from tests.helpers import Client

ITEMS = [
    {"code": "A1", "name": "检查", "item_class": "A", "amount": 130_000},
    {"code": "B1", "name": "乙类药", "item_class": "B", "amount": 10_000},
]


async def _settled_person(
    client: Client, runtime: Runtime
) -> tuple[Holder, dict[str, str], dict[str, Any]]:
    await load_policies(runtime)
    person = await holder(client, runtime, name="周八")
    await credit(runtime, person.person_id, 40_000)
    hospital = await institution(client, runtime, level="2")
    body = {
        "ec_token": await ec_token(client, runtime, person, hospital),
        "med_type": "11",
        "items": ITEMS,
        "use_account": True,
    }
    response = await client.post(
        "/v1/settlements", json=body, headers={**hospital, "Idempotency-Key": uuid.uuid4().hex}
    )
    assert response.status_code == 201, response.text
    return person, hospital, response.json()


async def test_enrolment_and_account(client: Client, runtime: Runtime) -> None:
    person, _, settled = await _settled_person(client, runtime)
    enrolment = (await client.get("/v1/me/enrolment", headers=person.headers)).json()
    assert enrolment["person_category"] == "employee"
    assert enrolment["enrolments"][0]["insurance_type"] == "310"
    account = (await client.get("/v1/me/account", headers=person.headers)).json()
    assert account == {"balance": 40_000 - settled["account_paid"]}
    page = (await client.get("/v1/me/account/transactions", headers=person.headers)).json()
    assert [(t["kind"], t["amount"]) for t in page["items"]] == [
        ("debit", -settled["account_paid"]),
        ("credit", 40_000),
    ]
    assert page["total"] == 2
    assert sum(t["amount"] for t in page["items"]) == account["balance"]  # balance = ledger sum
    one = (
        await client.get("/v1/me/account/transactions?limit=1&offset=1", headers=person.headers)
    ).json()
    assert [t["kind"] for t in one["items"]] == ["credit"]
    today = business_date().isoformat()
    dated = await client.get(
        f"/v1/me/account/transactions?from={today}&to={today}", headers=person.headers
    )
    assert dated.json()["total"] == 2
    none = await client.get(
        "/v1/me/account/transactions?from=2000-01-01&to=2000-12-31", headers=person.headers
    )
    assert none.json()["items"] == []


async def test_benefits_show_policy_and_usage(client: Client, runtime: Runtime) -> None:
    person, _, settled = await _settled_person(client, runtime)
    benefits = (await client.get("/v1/me/benefits", headers=person.headers)).json()
    assert (benefits["area"], benefits["insurance_type"], benefits["category"]) == (
        "370102",
        "310",
        "employee",
    )
    outpatient = benefits["outpatient"]
    assert outpatient["deductible"] == 100_000
    assert outpatient["deductible_used"] == settled["deductible_paid"]
    assert outpatient["fund_paid"] == settled["fund_paid"]
    assert outpatient["cap_left"] == outpatient["cap"] - settled["fund_paid"]


async def test_estimate_is_the_settlement_engine(client: Client, runtime: Runtime) -> None:
    person, hospital, _ = await _settled_person(client, runtime)
    bill = [{"code": "A2", "name": "复诊", "item_class": "A", "amount": 20_000}]
    preview = await client.post(
        "/v1/settlements/preview",
        headers=hospital,
        json={
            "ec_token": await ec_token(client, runtime, person, hospital),
            "med_type": "11",
            "items": bill,
            "use_account": True,
        },
    )
    estimate = await client.post(
        "/v1/me/benefits/estimate",
        headers=person.headers,
        json={"med_type": "11", "items": bill, "level": "2", "use_account": True},
    )
    assert estimate.status_code == 200, estimate.text
    assert {k: v for k, v in preview.json().items() if k != "settlement_id"} == estimate.json()
    costs = estimate.json()
    # The explanation comes with the estimate and adds up fen for fen (issue 9).
    shares = sum(s["amount"] for s in costs["steps"] if s["part"] == "share")
    payments = sum(s["amount"] for s in costs["steps"] if s["part"] == "payment")
    assert (shares, payments) == (costs["total"], costs["total"] - costs["fund_paid"])
    after = (await client.get("/v1/me/account", headers=person.headers)).json()
    assert after["balance"] == costs["balance_after"] + costs["account_paid"]  # nothing written


async def test_history_with_explanations_and_privacy(client: Client, runtime: Runtime) -> None:
    person, _, settled = await _settled_person(client, runtime)
    history = (await client.get("/v1/me/settlements", headers=person.headers)).json()
    assert history["total"] == 1
    [item] = history["items"]
    assert item["settlement_id"] == settled["settlement_id"]
    assert item["steps"] == settled["steps"]
    stranger = await holder(client, runtime, name="吴九")
    assert (await client.get("/v1/me/settlements", headers=stranger.headers)).json()["total"] == 0
    assert (await client.get("/v1/me/account", headers=stranger.headers)).json() == {
        "balance": None
    }
    for path in ("/v1/me/account/transactions", "/v1/me/contributions"):
        assert (await client.get(path, headers=stranger.headers)).json()["total"] == 0


async def test_every_read_is_audited_for_the_token_person(client: Client, runtime: Runtime) -> None:
    await load_policies(runtime)
    person = await holder(client, runtime, name="卫十四")
    reads = {
        "/v1/me/enrolment": "lookup.enrolment",
        "/v1/me/contributions": "lookup.contributions",
        "/v1/me/account": "lookup.account",
        "/v1/me/account/transactions": "lookup.transactions",
        "/v1/me/benefits": "lookup.benefits",
        "/v1/me/settlements": "lookup.settlements",
    }
    for path in reads:
        assert (await client.get(path, headers=person.headers)).status_code == 200, path
    estimate = await client.post(
        "/v1/me/benefits/estimate",
        headers=person.headers,
        json={"med_type": "41", "items": ITEMS, "level": "community"},
    )
    assert estimate.status_code == 200, estimate.text
    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                select(AuditEvent.action, AuditEvent.person_id).where(
                    AuditEvent.action.like("lookup.%")
                )
            )
        ).all()
    assert sorted(action for action, _ in rows) == sorted([*reads.values(), "lookup.estimate"])
    assert {person_id for _, person_id in rows} == {person.person_id}


async def test_estimate_counts_on_mutual_aid_and_writes_nothing(
    client: Client, runtime: Runtime
) -> None:
    await load_policies(runtime)
    me = await holder(client, runtime, name="周八")
    spouse = await holder(client, runtime, name="郑十")
    await credit(runtime, me.person_id, 1_000)
    await credit(runtime, spouse.person_id, 50_000)
    authorised = await client.post(
        "/v1/me/mutual-aid",
        json={"relative_id_number": me.id_number, "relative_name": "周八", "relation": "spouse"},
        headers=spouse.headers,
    )
    assert authorised.status_code == 201, authorised.text
    bill = [{"code": "A2", "name": "复诊", "item_class": "A", "amount": 6_000}]
    body: dict[str, Any] = {"med_type": "11", "items": bill, "level": "3", "use_account": True}
    # Employee outpatient within the 100,000 deductible: all 6,000 is the person's. Own account
    # 1,000; with mutual_aid the spouse's account 5,000; cash 0. Without it: cash 5,000.
    plain = (await client.post("/v1/me/benefits/estimate", headers=me.headers, json=body)).json()
    assert (plain["account_paid"], plain["account_mutual_aid_paid"], plain["cash_paid"]) == (
        1_000,
        0,
        5_000,
    )
    family = await client.post(
        "/v1/me/benefits/estimate", headers=me.headers, json={**body, "mutual_aid": True}
    )
    costs = family.json()
    assert (costs["account_paid"], costs["account_mutual_aid_paid"], costs["cash_paid"]) == (
        1_000,
        5_000,
        0,
    )
    after = (await client.get("/v1/me/account", headers=spouse.headers)).json()
    assert after == {"balance": 50_000}  # an estimate moves nothing
    page = (await client.get("/v1/me/account/transactions", headers=spouse.headers)).json()
    assert [(t["kind"], t["relative"]) for t in page["items"]] == [("credit", None)]
