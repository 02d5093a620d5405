"""Visit preview and settlement (2206/2207) over HTTP: a hand-worked bill, one settlement per
visit, the visit closed to changes afterwards, and a whole visit checking the §7 invariants."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import select

from ecert.cards import services as cards
from ecert.db.models import BenefitUsage, LedgerEntry, Person, Settlement
from ecert.server.runtime import Runtime
from tests.factories import ec_token
from tests.helpers import Client
from tests.settlement.visit_steps import (
    AMOXICILLIN,
    COSMETIC,
    line,
    load_catalogue,
    open_visit,
    opened,
    settle,
    setup,
    visit_body,
)

ALBUMIN = "XB05AAA010B002010100003"  # B, first self-pay 0.2, inpatient types only
BED = "120100001000000000000002"  # A, price cap 6,000 fen a day, inpatient types only

SPLIT = (
    "total",
    "fully_self_paid",
    "over_limit_self_paid",
    "first_self_paid",
    "eligible_amount",
    "deductible_paid",
    "co_pay",
    "over_cap_self_paid",
    "fund_paid",
    "account_paid",
    "account_mutual_aid_paid",
    "cash_paid",
    "person_paid",
    "balance_after",
)


def invariants(reply: dict[str, Any]) -> None:
    """Spec §7: shares and payments each add up to the total, fen for fen."""
    total = reply["total"]
    paid = ("fund_paid", "account_paid", "account_mutual_aid_paid", "cash_paid")
    assert total == sum(reply[k] for k in paid)
    shares = ("fully_self_paid", "over_limit_self_paid", "first_self_paid", "eligible_amount")
    assert total == sum(reply[k] for k in shares)
    for key in shares:
        assert sum(line[key] for line in reply["lines"]) == reply[key]
    assert sum(p["amount"] for p in reply["fund_parts"]) == reply["fund_paid"]


async def _inpatient_visit(client: Client, runtime: Runtime) -> tuple[str, dict[str, str]]:
    await load_catalogue(runtime)
    person, hospital = await setup(client, runtime, balance=50_000, gender="M")
    visit_id = await opened(client, runtime, person, hospital, med_type="21")
    uploaded = await client.post(
        f"/v1/visits/{visit_id}/fees",
        json={
            "lines": [
                line("1", AMOXICILLIN, "10", 1_250),
                line("2", ALBUMIN, "4", 45_000),
                line("3", BED, "5", 8_000),
                line("4", COSMETIC, "1", 20_000),
            ]
        },
        headers=hospital,
    )
    assert uploaded.status_code == 200, uploaded.text
    return visit_id, hospital


async def test_inpatient_visit_settled_by_hand(client: Client, runtime: Runtime) -> None:
    visit_id, hospital = await _inpatient_visit(client, runtime)
    # Lines: A 12,500; B 180,000 (20 %: 36,000 first self-paid); bed 5 × 8,000 = 40,000 with
    # a cap of 5 × 6,000 = 30,000 (10,000 over the limit); C 20,000. Total 252,500.
    # Eligible 12,500 + 144,000 + 30,000 = 186,500. Level-3 admission deductible 100,000;
    # 86,500 × 0.88 = 76,120 fund, co-pay 10,380. The person pays 176,380: account 50,000
    # (all of it), cash 126,380.
    body = {"use_account": True}
    preview = await client.post(
        f"/v1/visits/{visit_id}/settlements/preview", json=body, headers=hospital
    )
    assert preview.status_code == 200, preview.text
    settled = await settle(client, hospital, visit_id, body)
    assert settled.status_code == 201, settled.text
    result = settled.json()
    figures = (252_500, 20_000, 10_000, 36_000, 186_500, 100_000, 10_380, 0, 76_120)
    payments = (50_000, 0, 126_380, 176_380, 0)
    expected = dict(zip(SPLIT, (*figures, *payments), strict=True))
    assert {k: result[k] for k in SPLIT} == expected
    assert {k: preview.json()[k] for k in SPLIT} == expected
    assert preview.json()["settlement_id"] is None
    assert result["fund_parts"] == [{"fund_type": "310100", "amount": 76_120}]
    lines = {s["line_no"]: s for s in result["lines"]}
    assert (lines["2"]["first_self_paid"], lines["2"]["first_self_pay_ratio"]) == (36_000, 0.2)
    assert (lines["3"]["over_limit_self_paid"], lines["3"]["eligible_amount"]) == (10_000, 30_000)
    assert sum(s["amount"] for s in result["steps"] if s["part"] == "share") == 252_500
    invariants(result)
    async with runtime.sessions() as session:
        row = await session.get(Settlement, uuid.UUID(result["settlement_id"]))
        assert row is not None
        assert (row.visit_id, row.fund_paid, row.account_paid) == (
            uuid.UUID(visit_id),
            76_120,
            50_000,
        )
        usage = await session.scalar(select(BenefitUsage))
        assert usage is not None
        assert (usage.inpatient_admissions, usage.inpatient_fund_paid) == (1, 76_120)
        debits = (
            await session.scalars(select(LedgerEntry.amount).where(LedgerEntry.kind == "debit"))
        ).all()
        assert debits == [-50_000]
    # The §5 view of the same settlement agrees.
    shown = await client.get(f"/v1/settlements/{result['settlement_id']}", headers=hospital)
    assert (shown.json()["total"], shown.json()["cash_paid"]) == (252_500, 126_380)


async def test_a_settled_visit_is_closed(client: Client, runtime: Runtime) -> None:
    visit_id, hospital = await _inpatient_visit(client, runtime)
    key = str(uuid.uuid4())
    first = await settle(client, hospital, visit_id, {"use_account": False}, key)
    assert first.status_code == 201, first.text
    replay = await settle(client, hospital, visit_id, {"use_account": False}, key)
    assert (replay.status_code, replay.json()) == (201, first.json())
    assert replay.headers["Idempotent-Replayed"] == "true"
    for refused in (
        await settle(client, hospital, visit_id, {"use_account": False}),
        await client.post(f"/v1/visits/{visit_id}/cancel", headers=hospital),
        await client.delete(f"/v1/visits/{visit_id}/fees/1", headers=hospital),
        await client.post(
            f"/v1/visits/{visit_id}/fees",
            json={"lines": [line("9", "X", "1", 1)]},
            headers=hospital,
        ),
        await client.post(f"/v1/visits/{visit_id}/settlements/preview", json={}, headers=hospital),
    ):
        assert (refused.status_code, refused.json()["code"]) == (409, "visit_not_open")
    view = (await client.get(f"/v1/visits/{visit_id}", headers=hospital)).json()
    assert view["status"] == "settled"
    assert [s["settlement_id"] for s in view["settlements"]] == [first.json()["settlement_id"]]
    assert view["settlements"][0]["over_limit_self_paid"] == 10_000
    assert {s["line_no"]: s["eligible_amount"] for s in view["lines"]} == {
        s["line_no"]: s["eligible_amount"] for s in first.json()["lines"]
    }


async def test_concurrent_settlements_of_one_visit_settle_once(
    client: Client, runtime: Runtime
) -> None:
    visit_id, hospital = await _inpatient_visit(client, runtime)
    replies = await asyncio.gather(
        *(settle(client, hospital, visit_id, {"use_account": True}) for _ in range(5))
    )
    codes = sorted(r.status_code for r in replies)
    assert codes.count(201) == 1, [r.text for r in replies]
    assert all(r.json()["code"] in ("visit_not_open",) for r in replies if r.status_code != 201)
    async with runtime.sessions() as session:
        assert len((await session.scalars(select(Settlement))).all()) == 1


async def test_a_whole_outpatient_visit(client: Client, runtime: Runtime) -> None:
    """Open, upload in two batches with a line re-sent, preview, settle: the §7 invariants."""
    await load_catalogue(runtime)
    person, hospital = await setup(client, runtime, balance=3_000)
    token = await ec_token(client, runtime, person, hospital)
    opened_reply = await open_visit(client, hospital, visit_body(token, "11"))
    assert opened_reply.status_code == 201, opened_reply.text
    visit_id = opened_reply.json()["visit_id"]
    fees = f"/v1/visits/{visit_id}/fees"
    batch1 = [line("1", AMOXICILLIN, "3", 1_333), line("2", "110200001000000000000001", "1", 1_500)]
    batch2 = [
        batch1[1],  # re-sent: a no-op
        line("3", "XJ01DDC010A001010100002", "2.5", 3_333, amount=8_333),  # 8,332.5 → 8,333
        line("4", COSMETIC, "1", 5_000),
    ]
    for batch in (batch1, batch2):
        sent = await client.post(fees, json={"lines": batch}, headers=hospital)
        assert sent.status_code == 200, sent.text
    preview = await client.post(
        f"/v1/visits/{visit_id}/settlements/preview", json={"use_account": True}, headers=hospital
    )
    settled = await settle(client, hospital, visit_id, {"use_account": True, "mutual_aid": True})
    assert settled.status_code == 201, settled.text
    result = settled.json()
    # 3,999 + 1,500 + 8,333 + 5,000: all within the yearly 100,000 deductible, so no fund;
    # the account pays its 3,000 and cash the rest.
    assert result["total"] == 3_999 + 1_500 + 8_333 + 5_000
    assert (result["fund_paid"], result["account_paid"], result["balance_after"]) == (0, 3_000, 0)
    assert (result["over_limit_self_paid"], result["fully_self_paid"]) == (500, 5_000)
    assert result["first_self_paid"] == 833  # 8,333 × 0.1 = 833.3
    assert {k: preview.json()[k] for k in SPLIT} == {k: result[k] for k in SPLIT}
    assert sorted(s["line_no"] for s in result["lines"]) == ["1", "2", "3", "4"]
    invariants(result)


async def test_a_card_visit_settles_and_an_empty_one_does_not(
    client: Client, runtime: Runtime
) -> None:
    person, hospital = await setup(client, runtime)
    async with runtime.sessions.begin() as session:
        row = await session.get(Person, person.person_id)
        assert row is not None
        number = (await cards.issue(session, row, "test")).number
    opened_reply = await open_visit(client, hospital, visit_body(card_no=number))
    visit_id = opened_reply.json()["visit_id"]
    empty = await settle(client, hospital, visit_id, {})
    assert (empty.status_code, empty.json()["code"]) == (422, "invalid_bill")
    view = (await client.get(f"/v1/visits/{visit_id}", headers=hospital)).json()
    assert view["status"] == "open"  # the failed settlement rolled back whole
    fee = line("1", "X", "1", 2_000, item_class="A")
    await client.post(f"/v1/visits/{visit_id}/fees", json={"lines": [fee]}, headers=hospital)
    settled = await settle(client, hospital, visit_id, {})
    assert settled.status_code == 201, settled.text
    assert (settled.json()["total"], settled.json()["cash_paid"]) == (2_000, 2_000)
    invariants(settled.json())
