"""Reversals (limits, exactly once, ownership), reconciliation totals, stored explanations."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from ecert import ledger
from ecert.clock import business_date
from ecert.data import illustrative_policies
from ecert.db.models import Account, Institution, Settlement
from ecert.server.runtime import Runtime
from ecert.settlement import reversal
from tests.factories import credit, ec_token, holder, institution, load_policies
from tests.helpers import Client

ITEM = {"code": "A001", "name": "检查", "item_class": "A", "amount": 150_000}


async def _settled(client: Client, runtime: Runtime) -> tuple[dict[str, str], dict[str, Any]]:
    await load_policies(runtime)
    person = await holder(client, runtime)
    await credit(runtime, person.person_id, 60_000)
    hospital = await institution(client, runtime)
    body = {
        "ec_token": await ec_token(client, runtime, person, hospital),
        "med_type": "11",
        "items": [ITEM],
        "use_account": True,
    }
    response = await client.post(
        "/v1/settlements", json=body, headers={**hospital, "Idempotency-Key": "s-1"}
    )
    assert response.status_code == 201, response.text
    return hospital, response.json()


async def _reverse(
    client: Client, headers: dict[str, str], sid: str, key: str, amount: int | None = None
) -> Any:
    body: dict[str, Any] = {"reason": "退费"}
    if amount is not None:
        body["amount"] = amount
    return await client.post(
        f"/v1/settlements/{sid}/reversal", json=body, headers={**headers, "Idempotency-Key": key}
    )


async def _balance(runtime: Runtime) -> int | None:
    async with runtime.sessions() as session:
        return await session.scalar(select(Account.balance))


async def test_partial_then_full_reversal_never_exceeds(client: Client, runtime: Runtime) -> None:
    hospital, settled = await _settled(client, runtime)
    sid = settled["settlement_id"]
    # total 150,000: deductible 100,000; 50,000 × 0.5 → fund 25,000; account 60,000; cash 65,000.
    assert (settled["fund_paid"], settled["account_paid"], settled["cash_paid"]) == (
        25_000,
        60_000,
        65_000,
    )
    part = (await _reverse(client, hospital, sid, "r-1", amount=30_000)).json()
    # In proportion: fund 30,000 × 25/150 = 5,000; account 12,000; cash 13,000.
    assert (
        part["fund_refund"],
        part["account_refund"],
        part["cash_refund"],
        part["remaining"],
    ) == (5_000, 12_000, 13_000, 120_000)
    assert await _balance(runtime) == 12_000
    again = await _reverse(client, hospital, sid, "r-1", amount=30_000)
    assert again.json() == part  # exactly once per key
    too_much = await _reverse(client, hospital, sid, "r-2", amount=120_001)
    assert (too_much.status_code, too_much.json()["code"]) == (422, "reversal_exceeds_settlement")
    rest = (await _reverse(client, hospital, sid, "r-3")).json()
    assert rest["amount"] == 120_000
    assert rest["remaining"] == 0
    assert (
        part["fund_refund"] + rest["fund_refund"],
        part["account_refund"] + rest["account_refund"],
        part["cash_refund"] + rest["cash_refund"],
    ) == (25_000, 60_000, 65_000)
    assert await _balance(runtime) == 60_000
    assert (await _reverse(client, hospital, sid, "r-4")).json()[
        "code"
    ] == "reversal_exceeds_settlement"
    shown = (await client.get(f"/v1/settlements/{sid}", headers=hospital)).json()
    assert (shown["status"], shown["reversed_total"]) == ("reversed", 150_000)


async def test_only_the_settling_institution(client: Client, runtime: Runtime) -> None:
    _, settled = await _settled(client, runtime)
    other = await institution(client, runtime, code="H37010200055")
    sid = settled["settlement_id"]
    assert (await client.get(f"/v1/settlements/{sid}", headers=other)).status_code == 404
    refused = await _reverse(client, other, sid, "x")
    assert refused.json()["code"] == "settlement_not_found"
    missing = await client.get(f"/v1/settlements/{uuid.uuid4()}", headers=other)
    assert missing.status_code == 404


async def test_reconciliation_is_settlements_minus_reversals(
    client: Client, runtime: Runtime
) -> None:
    hospital, settled = await _settled(client, runtime)
    await _reverse(client, hospital, settled["settlement_id"], "r-1", amount=30_000)
    day = business_date().isoformat()
    report = (await client.get(f"/v1/reconciliation?date={day}", headers=hospital)).json()
    assert report["settlements"] == {
        "count": 1,
        "total": 150_000,
        "fund_paid": 25_000,
        "account_paid": 60_000,
        "cash_paid": 65_000,
    }
    assert report["reversals"]["total"] == 30_000
    # net.count counts settlements; reversals are counted apart (reversals.count).
    assert report["net"] == {
        "count": 1,
        "total": 120_000,
        "fund_paid": 20_000,
        "account_paid": 48_000,
        "cash_paid": 52_000,
    }
    assert [line["kind"] for line in report["details"]] == ["settlement", "reversal"]
    empty = (await client.get("/v1/reconciliation?date=2020-01-01", headers=hospital)).json()
    assert empty["net"]["total"] == 0
    assert (
        await client.get("/v1/reconciliation?date=yesterday", headers=hospital)
    ).status_code == 400


async def test_stored_explanation_survives_a_policy_change(
    client: Client, runtime: Runtime
) -> None:
    hospital, settled = await _settled(client, runtime)
    changed = illustrative_policies(business_date().year)
    for policy in changed:
        policy["outpatient"]["ratios"]["3"] = 0.9
    async with runtime.sessions.begin() as session:
        await ledger.upsert_policies(session, changed)
    shown = (
        await client.get(f"/v1/settlements/{settled['settlement_id']}", headers=hospital)
    ).json()
    assert shown["steps"] == settled["steps"]
    copay = next(s for s in shown["steps"] if s["rule"] == "copay")
    assert (copay["policy_field"], copay["policy_value"]) == ("outpatient.ratios.3", "0.5")


@settings(max_examples=300, deadline=None)
@given(
    paid=st.lists(st.integers(0, 10**9), min_size=1, max_size=5).filter(lambda p: sum(p) > 0),
    data=st.data(),
)
def test_finding_07_pieces_refund_what_one_reversal_would(
    paid: list[int], data: st.DataObject
) -> None:
    """Any split of an amount into reversals gives each pool what one reversal of the sum would."""
    pools = {f"pool{i}": fen for i, fen in enumerate(paid)}
    total = sum(paid)
    amount = data.draw(st.integers(1, total), label="amount")
    cuts = data.draw(st.lists(st.integers(0, amount), max_size=30, unique=True), label="cuts")
    points = sorted({0, *cuts, amount})
    got = dict.fromkeys(pools, 0)
    for before, after in itertools.pairwise(points):
        share = {
            p: fen - reversal.allocate(before, pools)[p]
            for p, fen in reversal.allocate(after, pools).items()
        }
        assert sum(share.values()) == after - before
        assert all(fen >= 0 for fen in share.values())  # no pool ever gives money back
        for pool, fen in share.items():
            got[pool] += fen
    assert got == reversal.allocate(amount, pools)
    assert all(0 <= got[p] <= pools[p] for p in pools)
    # Close to the exact proportion (a divisor method may stray by less than one fen a pool).
    assert all(abs(got[p] * total - amount * pools[p]) < len(pools) * total for p in pools)
    assert reversal.allocate(total, pools) == pools  # a full reversal returns what each paid


async def test_finding_07_thirty_one_fen_reversals_equal_one_of_thirty(
    client: Client, runtime: Runtime
) -> None:
    """30 reversals of 1 fen refund each pool what one of 30 fen does: fund 19, account 11."""
    await load_policies(runtime)
    hospital = await institution(client, runtime)
    refunds = []
    for pieces in ([1] * 30, [30]):
        person = await holder(client, runtime)
        await credit(runtime, person.person_id, 150_000)
        # Level-3 admission: deductible 100,000; 280,000 × 0.88 = 246,400 fund; the account
        # pays the other 133,600; no cash.
        body = {
            "ec_token": await ec_token(client, runtime, person, hospital),
            "med_type": "21",
            "items": [{**ITEM, "amount": 380_000}],
            "use_account": True,
        }
        settled = await client.post(
            "/v1/settlements", json=body, headers={**hospital, "Idempotency-Key": uuid.uuid4().hex}
        )
        assert settled.status_code == 201, settled.text
        split = settled.json()
        assert (split["fund_paid"], split["account_paid"], split["cash_paid"]) == (
            246_400,
            133_600,
            0,
        )
        got = {"fund": 0, "account": 0, "cash": 0}
        sid = split["settlement_id"]
        for n, amount in enumerate(pieces):
            response = await _reverse(client, hospital, sid, f"{sid}-{n}", amount)
            assert response.status_code == 201, response.text
            for pool in got:
                got[pool] += response.json()[f"{pool}_refund"]
        refunds.append(got)
    assert refunds[0] == refunds[1] == {"fund": 19, "account": 11, "cash": 0}


async def test_settlement_partly_reversed_under_the_old_rule_still_nets_out(
    client: Client, runtime: Runtime
) -> None:
    """A settlement whose earlier pieces went to cash first (the old rule) keeps every refund
    non-negative, and its last reversal still returns each pool exactly what it paid."""
    hospital, settled = await _settled(client, runtime)
    sid = settled["settlement_id"]
    async with runtime.sessions.begin() as session:  # 30 old 1-fen reversals, all to cash
        await session.execute(
            update(Settlement)
            .where(Settlement.id == uuid.UUID(sid))
            .values(reversed_total=30, reversed_cash=30)
        )
    refunds = [
        (await _reverse(client, hospital, sid, key, amount)).json()
        for key, amount in (("old-1", 10), ("old-2", 7), ("old-3", None))
    ]
    assert all(r[f"{p}_refund"] >= 0 for r in refunds for p in ("fund", "account", "cash"))
    assert refunds[-1]["remaining"] == 0
    assert (
        sum(r["fund_refund"] for r in refunds),
        sum(r["account_refund"] for r in refunds),
        30 + sum(r["cash_refund"] for r in refunds),
    ) == (25_000, 60_000, 65_000)


async def test_an_undesignated_institution_cannot_reverse(client: Client, runtime: Runtime) -> None:
    """2208 is a settlement transaction: refused once the institution's designation ends."""
    hospital, settled = await _settled(client, runtime)
    async with runtime.sessions.begin() as session:
        await session.execute(update(Institution).values(designated=False))
    refused = await _reverse(client, hospital, settled["settlement_id"], "r-x")
    assert (refused.status_code, refused.json()["code"]) == (403, "institution_not_designated")
    assert await _balance(runtime) == 0  # the account's 60,000 stayed spent: nothing moved
    shown = await client.get(f"/v1/settlements/{settled['settlement_id']}", headers=hospital)
    assert shown.json()["reversed_total"] == 0  # it can still read its own settlement
    async with runtime.sessions.begin() as session:
        await session.execute(update(Institution).values(designated=True))
    assert (await _reverse(client, hospital, settled["settlement_id"], "r-x")).status_code == 201


async def test_a_zero_fen_admission_is_cancelled_once(client: Client, runtime: Runtime) -> None:
    # An inpatient bill of 0 fen still counts an admission; its cancel takes the admission back
    # (found by the returns property test), and a second cancel is refused.
    await load_policies(runtime)
    person = await holder(client, runtime)
    hospital = await institution(client, runtime)
    body = {
        "ec_token": await ec_token(client, runtime, person, hospital),
        "med_type": "21",
        "items": [{**ITEM, "amount": 0}],
        "use_account": False,
    }
    settled = await client.post(
        "/v1/settlements", json=body, headers={**hospital, "Idempotency-Key": "zero"}
    )
    assert settled.status_code == 201, settled.text
    sid = settled.json()["settlement_id"]
    year = business_date().year

    async def admissions() -> int:
        async with runtime.sessions() as session:
            usage = await ledger.usage(session, uuid.UUID(str(person.person_id)), year, "310")
        return usage.inpatient_admissions

    assert await admissions() == 1
    cancelled = await _reverse(client, hospital, sid, "z-1")
    assert cancelled.status_code == 201, cancelled.text
    assert cancelled.json()["amount"] == 0
    assert await admissions() == 0
    again = await _reverse(client, hospital, sid, "z-2")
    assert (again.status_code, again.json()["code"]) == (422, "reversal_exceeds_settlement")
