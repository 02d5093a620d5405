"""A full inpatient visit over HTTP (spec §7): open, three fee uploads with a re-sent line,
preview, settle, (return two lines), reconcile, checking every invariant of §7 at each step."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select, update

from ecert.clock import business_date
from ecert.db.models import Account, BenefitUsage, Institution, LedgerEntry, Settlement
from ecert.server.runtime import Runtime
from tests.factories import ec_token
from tests.helpers import Client
from tests.settlement.visit_steps import (
    AMOXICILLIN,
    COSMETIC,
    line,
    load_catalogue,
    open_visit,
    settle,
    setup,
    visit_body,
)

ALBUMIN = "XB05AAA010B002010100003"  # B, first self-pay 0.2, inpatient types only
BED = "120100001000000000000002"  # A, price cap 6,000 fen a day, inpatient types only
SHARES = ("fully_self_paid", "over_limit_self_paid", "first_self_paid", "eligible_amount")
PAYMENTS = ("fund_paid", "account_paid", "account_mutual_aid_paid", "cash_paid")


def line_invariants(lines: list[dict[str, Any]]) -> None:
    """Each line's four shares add up to its amount."""
    for each in lines:
        assert sum(each[k] for k in SHARES) == each["amount"], each


def bill_invariants(reply: dict[str, Any]) -> None:
    """Every §7 identity of a preview or settlement reply, to the fen."""
    total = reply["total"]
    assert total == sum(reply[k] for k in PAYMENTS)
    assert total == sum(reply[k] for k in SHARES)
    assert reply["eligible_amount"] == (
        reply["deductible_paid"]
        + reply["co_pay"]
        + reply["over_cap_self_paid"]
        + reply["fund_paid"]
    )
    assert reply["person_paid"] == total - reply["fund_paid"]
    assert reply["person_paid"] == sum(reply[k] for k in PAYMENTS[1:])
    assert sum(p["amount"] for p in reply["fund_parts"]) == reply["fund_paid"]
    for key in SHARES:
        assert sum(each[key] for each in reply["lines"]) == reply[key], key
    assert sum(each["amount"] for each in reply["lines"]) == total
    line_invariants(reply["lines"])
    assert sum(s["amount"] for s in reply["steps"] if s["part"] == "share") == total


async def _state(runtime: Runtime) -> tuple[int, int, int, int]:
    """Balance, settlements, ledger rows and admissions: what a preview must leave alone."""
    async with runtime.sessions() as session:
        balance = await session.scalar(select(Account.balance))
        settlements = await session.scalar(select(func.count()).select_from(Settlement))
        ledger = await session.scalar(select(func.count()).select_from(LedgerEntry))
        admissions = await session.scalar(select(BenefitUsage.inpatient_admissions))
    return balance or 0, settlements or 0, ledger or 0, admissions or 0


async def test_a_full_inpatient_visit(client: Client, runtime: Runtime) -> None:
    await load_catalogue(runtime)
    person, hospital = await setup(client, runtime, balance=50_000)

    # 1. Open (2201): the ec_token opens this visit and is spent.
    token = await ec_token(client, runtime, person, hospital)
    opened = await open_visit(client, hospital, visit_body(token, "21"))
    assert opened.status_code == 201, opened.text
    visit = opened.json()
    assert (visit["status"], visit["insurance_type"], visit["med_type"]) == ("open", "310", "21")
    assert person.id_number not in opened.text  # masked
    again = await open_visit(client, hospital, visit_body(token, "21"))
    assert (again.status_code, again.json()["code"]) == (409, "ec_token_spent")
    visit_id = visit["visit_id"]
    fees = f"/v1/visits/{visit_id}/fees"

    # 2. Three uploads (2204); the second re-sends line 2 (a no-op), a changed line 2 conflicts.
    uploads = [
        [line("1", AMOXICILLIN, "10", 1_250), line("2", ALBUMIN, "4", 45_000)],
        [line("2", ALBUMIN, "4.0", 45_000), line("3", BED, "5", 8_000)],
        [line("4", COSMETIC, "1", 20_000)],
    ]
    held: list[str] = []
    for batch in uploads:
        sent = await client.post(fees, json={"lines": batch}, headers=hospital)
        assert sent.status_code == 200, sent.text
        line_invariants(sent.json()["lines"])
        held += [each["line_no"] for each in batch if each["line_no"] not in held]
        shown = (await client.get(f"/v1/visits/{visit_id}", headers=hospital)).json()
        assert (shown["status"], [each["line_no"] for each in shown["lines"]]) == ("open", held)
        line_invariants(shown["lines"])
    conflict = await client.post(
        fees, json={"lines": [line("2", ALBUMIN, "5", 45_000)]}, headers=hospital
    )
    assert (conflict.status_code, conflict.json()["code"]) == (409, "fee_line_conflict")

    # 3. Preview (2206): the hand-worked bill of docs/settlement.md, nothing written.
    # Lines: A 12,500; B 180,000 (20 %: 36,000 first self-paid); bed 5 × 8,000 = 40,000 over
    # a cap of 5 × 6,000 (10,000 over the limit); C 20,000. Total 252,500; eligible 186,500;
    # admission deductible 100,000; 86,500 × 0.88 = 76,120 fund, co-pay 10,380; the person
    # pays 176,380: the account's 50,000, cash 126,380.
    expected = {
        "total": 252_500,
        "fully_self_paid": 20_000,
        "over_limit_self_paid": 10_000,
        "first_self_paid": 36_000,
        "eligible_amount": 186_500,
        "deductible_paid": 100_000,
        "co_pay": 10_380,
        "over_cap_self_paid": 0,
        "fund_paid": 76_120,
        "account_paid": 50_000,
        "account_mutual_aid_paid": 0,
        "cash_paid": 126_380,
        "person_paid": 176_380,
        "balance_after": 0,
    }
    before = await _state(runtime)
    assert before == (50_000, 0, 1, 0)  # the credit is the one ledger row
    previewed = await client.post(
        f"/v1/visits/{visit_id}/settlements/preview", json={"use_account": True}, headers=hospital
    )
    assert previewed.status_code == 200, previewed.text
    preview = previewed.json()
    assert preview["settlement_id"] is None
    assert {k: preview[k] for k in expected} == expected
    bill_invariants(preview)
    assert await _state(runtime) == before

    # 4. Settle (2207): the preview's figures, money moved once, the visit closed.
    settled = await settle(client, hospital, visit_id, {"use_account": True})
    assert settled.status_code == 201, settled.text
    result = settled.json()
    bill_invariants(result)
    assert {k: result[k] for k in expected} == expected
    assert result["lines"] == preview["lines"]
    sid = result["settlement_id"]
    # Balance 0, one settlement, the credit and the debit, one admission.
    assert await _state(runtime) == (0, 1, 2, 1)
    async with runtime.sessions() as session:
        debit = await session.scalar(select(LedgerEntry.amount).where(LedgerEntry.kind == "debit"))
    assert debit == -result["account_paid"]
    shown = (await client.get(f"/v1/visits/{visit_id}", headers=hospital)).json()
    assert shown["status"] == "settled"
    assert [s["settlement_id"] for s in shown["settlements"]] == [sid]
    line_invariants(shown["lines"])
    one = (await client.get(f"/v1/settlements/{sid}", headers=hospital)).json()
    assert {k: one[k] for k in ("total", "fund_paid", "account_paid", "cash_paid")} == {
        k: expected[k] for k in ("total", "fund_paid", "account_paid", "cash_paid")
    }

    # 5. Return two lines (2208 partial, spec §7 "Returns re-price"): one albumin and two bed
    # days. What remains: A 12,500; B 3 × 45,000 = 135,000 (27,000 first self-paid); bed
    # 3 × 8,000 = 24,000 over a cap of 3 × 6,000 (6,000 over the limit); C 20,000. Total
    # 191,500, eligible 138,500; the same admission deductible of 100,000; 38,500 × 0.88 =
    # 33,880 fund, co-pay 4,620; the person 157,620: the account's 50,000 (the balance the
    # original saw), cash 107,620. Refunds: fund 76,120 − 33,880 = 42,240, account 0, cash
    # 126,380 − 107,620 = 18,760; together 61,000 = 45,000 + 2 × 8,000.
    remains = {
        "total": 191_500,
        "fully_self_paid": 20_000,
        "over_limit_self_paid": 6_000,
        "first_self_paid": 27_000,
        "eligible_amount": 138_500,
        "deductible_paid": 100_000,
        "co_pay": 4_620,
        "over_cap_self_paid": 0,
        "fund_paid": 33_880,
        "account_paid": 50_000,
        "account_mutual_aid_paid": 0,
        "cash_paid": 107_620,
        "person_paid": 157_620,
    }
    back = await client.post(
        f"/v1/settlements/{sid}/reversal",
        json={
            "reason": "two lines returned",
            "lines": [{"line_no": "2", "quantity": "1"}, {"line_no": "3", "quantity": "2"}],
        },
        headers={**hospital, "Idempotency-Key": f"return-{sid}"},
    )
    assert back.status_code == 201, back.text
    reversal = back.json()
    assert reversal["kind"] == "lines"
    assert reversal["refunds"] == {
        "fund": 42_240,
        "account": 0,
        "account_mutual_aid": 0,
        "cash": 18_760,
    }
    assert reversal["amount"] == 61_000
    repriced = reversal["repriced"]
    assert {k: repriced[k] for k in remains} == remains
    bill_invariants(repriced)
    line_invariants(repriced["lines"])
    # Each pool got back exactly what it paid minus what it pays now.
    for pool, column in (("fund", "fund_paid"), ("account", "account_paid"), ("cash", "cash_paid")):
        assert reversal["refunds"][pool] == expected[column] - remains[column]
    # No account money moved (the account still pays its 50,000); one reversal row.
    assert (await _state(runtime))[0] == 0
    returned = {"count": 1, "total": 61_000, "fund_paid": 42_240, "account_paid": 0}

    # 6. Reconcile (3201, 3202): the day's inpatient figures match, line by line too.
    day = business_date().isoformat()
    theirs = {
        "settlement_count": 1,
        "reversal_count": returned["count"],
        "total": expected["total"] - returned["total"],
        "fund_paid": expected["fund_paid"] - returned["fund_paid"],
        "account_paid": expected["account_paid"] - returned["account_paid"],
    }
    checked = await client.post(
        "/v1/reconciliation",
        json={"date": day, "clearing_type": "21", "insurance_type": "310", **theirs},
        headers=hospital,
    )
    assert checked.status_code == 200, checked.text
    assert checked.json()["result"] == "match", checked.json()
    details = await client.get(f"/v1/reconciliation/details?date={day}", headers=hospital)
    assert details.headers["content-type"].startswith("application/jsonl")
    lines = [json.loads(row) for row in details.text.splitlines()]
    assert [each["kind"] for each in lines] == ["settlement"] + ["reversal"] * returned["count"]
    booked = lines[0]
    assert (booked["id"], booked["visit_id"], booked["clearing_type"]) == (sid, visit_id, "21")
    assert {k: booked[k] for k in ("total", "fund_paid", "account_paid", "cash_paid")} == {
        k: expected[k] for k in ("total", "fund_paid", "account_paid", "cash_paid")
    }
    assert sum(each["total"] for each in lines[1:]) == returned["total"]


async def test_an_undesignated_hospital_cannot_price_or_settle_its_open_visit(
    client: Client, runtime: Runtime
) -> None:
    """Designation is checked when the visit settles too, not only when it opens."""
    person, hospital = await setup(client, runtime)
    token = await ec_token(client, runtime, person, hospital)
    opened = await open_visit(client, hospital, visit_body(token, "11"))
    visit_id = opened.json()["visit_id"]
    fee = line("1", "X", "1", 2_000, item_class="A")
    await client.post(f"/v1/visits/{visit_id}/fees", json={"lines": [fee]}, headers=hospital)
    async with runtime.sessions.begin() as session:
        await session.execute(update(Institution).values(designated=False))
    for refused in (
        await client.post(f"/v1/visits/{visit_id}/settlements/preview", json={}, headers=hospital),
        await settle(client, hospital, visit_id, {}),
    ):
        assert (refused.status_code, refused.json()["code"]) == (403, "institution_not_designated")
    assert await _state(runtime) == (50_000, 0, 1, 0)
    async with runtime.sessions.begin() as session:
        await session.execute(update(Institution).values(designated=True))
    view = (await client.get(f"/v1/visits/{visit_id}", headers=hospital)).json()
    assert view["status"] == "open"  # the refused settlement rolled back whole
    assert (await settle(client, hospital, visit_id, {})).status_code == 201
