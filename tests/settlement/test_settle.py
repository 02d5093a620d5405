"""Preview and settle: hand-worked splits, token binding, designation, money under concurrency."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, update

from ecert import ledger
from ecert.clock import business_date
from ecert.data import illustrative_policies
from ecert.db.models import (
    Account,
    BenefitUsage,
    EcToken,
    Enrolment,
    Institution,
    LedgerEntry,
    Settlement,
    utcnow,
)
from ecert.server.runtime import Runtime
from tests.factories import Holder, credit, ec_token, holder, institution, load_policies
from tests.helpers import Client
from tests.settlement.visit_steps import id_number

A = {"code": "A001", "name": "阿莫西林", "item_class": "A"}


def bill(med_type: str, *items: dict[str, Any], use_account: bool = True) -> dict[str, Any]:
    return {"med_type": med_type, "items": list(items), "use_account": use_account}


async def _setup(
    client: Client, runtime: Runtime, balance: int = 50_000, **hospital: Any
) -> tuple[Holder, dict[str, str]]:
    await load_policies(runtime)
    person = await holder(client, runtime)
    await credit(runtime, person.person_id, balance)
    return person, await institution(client, runtime, **hospital)


async def _settle(
    client: Client, headers: dict[str, str], body: dict[str, Any], key: str | None = None
) -> Any:
    return await client.post(
        "/v1/settlements",
        json=body,
        headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())},
    )


async def test_outpatient_at_level_3_split_by_hand(client: Client, runtime: Runtime) -> None:
    person, hospital = await _setup(client, runtime)
    token = await ec_token(client, runtime, person, hospital)
    body = bill(
        "11",
        {**A, "amount": 150_000},
        {"code": "B1", "name": "乙类药", "item_class": "B", "amount": 20_000},
        {"code": "C1", "name": "丙类", "item_class": "C", "amount": 10_000},
    )
    body["ec_token"] = token
    # Jinan employee outpatient: deductible 100,000 a year, level-3 ratio 0.5, B share 10 %.
    # total 180,000; C 10,000; B first 2,000; eligible 168,000; deductible 100,000;
    # 68,000 × 0.5 = 34,000 fund; personal 146,000: account 50,000 (all of it), cash 96,000.
    preview = (await client.post("/v1/settlements/preview", json=body, headers=hospital)).json()
    settled = await _settle(client, hospital, body)
    assert settled.status_code == 201, settled.text
    result = settled.json()
    expected = {
        "total": 180_000,
        "fully_self_paid": 10_000,
        "first_self_paid": 2_000,
        "deductible_paid": 100_000,
        "fund_paid": 34_000,
        "account_paid": 50_000,
        "cash_paid": 96_000,
        "balance_after": 0,
    }
    assert {k: result[k] for k in expected} == expected
    assert {k: preview[k] for k in expected} == expected
    assert preview["settlement_id"] is None
    assert result["steps"] == preview["steps"]
    assert sum(s["amount"] for s in result["steps"] if s["part"] == "share") == 180_000


async def test_inpatient_at_level_3_split_by_hand(client: Client, runtime: Runtime) -> None:
    person, hospital = await _setup(client, runtime)
    body = {
        **bill("21", {**A, "amount": 500_000}, use_account=False),
        "ec_token": await ec_token(client, runtime, person, hospital),
    }
    # Level-3 admission deductible 100,000; 400,000 × 0.88 = 352,000 fund; cash 148,000.
    result = (await _settle(client, hospital, body)).json()
    assert (
        result["deductible_paid"],
        result["fund_paid"],
        result["account_paid"],
        result["cash_paid"],
        result["balance_after"],
    ) == (100_000, 352_000, 0, 148_000, 50_000)


async def test_pharmacy_purchase_from_the_account(client: Client, runtime: Runtime) -> None:
    person, pharmacy = await _setup(client, runtime, code="P37010200009", level="community")
    body = {
        **bill("41", {**A, "amount": 8_000}),
        "ec_token": await ec_token(client, runtime, person, pharmacy),
    }
    # Within the yearly outpatient deductible: no fund pay; the account pays all 8,000.
    result = (await _settle(client, pharmacy, body)).json()
    assert (
        result["fund_paid"],
        result["account_paid"],
        result["cash_paid"],
        result["balance_after"],
    ) == (0, 8_000, 0, 42_000)
    async with runtime.sessions() as session:
        entries = (await session.scalars(select(LedgerEntry).order_by(LedgerEntry.id))).all()
    assert [(e.kind, e.amount, e.balance_after) for e in entries] == [
        ("credit", 50_000, 50_000),
        ("debit", -8_000, 42_000),
    ]


async def test_token_bound_to_institution_lifetime_and_designation(
    client: Client, runtime: Runtime
) -> None:
    person, hospital = await _setup(client, runtime)
    other = await institution(client, runtime, code="H37010200077")
    token = await ec_token(client, runtime, person, hospital)
    body = {**bill("11", {**A, "amount": 1_000}), "ec_token": token}
    elsewhere = await _settle(client, other, body)
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (403, "ec_token_wrong_institution")
    async with runtime.sessions.begin() as session:
        await session.execute(
            update(Institution).where(Institution.code == "H37010200001").values(designated=False)
        )
    refused = await _settle(client, hospital, body)
    assert refused.json()["code"] == "institution_not_designated"
    async with runtime.sessions.begin() as session:
        await session.execute(update(Institution).values(designated=True))
        await session.execute(update(EcToken).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    assert (await _settle(client, hospital, body)).json()["code"] == "ec_token_expired"
    unknown = {**body, "ec_token": "370102" + "a" * 32}
    assert (await _settle(client, hospital, unknown)).json()["code"] == "ec_token_invalid"


async def test_idempotency(client: Client, runtime: Runtime) -> None:
    person, hospital = await _setup(client, runtime)
    body = {
        **bill("11", {**A, "amount": 3_000}),
        "ec_token": await ec_token(client, runtime, person, hospital),
    }
    first = await _settle(client, hospital, body, key="visit-1")
    again = await _settle(client, hospital, body, key="visit-1")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    changed = await _settle(client, hospital, {**body, "use_account": False}, key="visit-1")
    assert (changed.status_code, changed.json()["code"]) == (422, "idempotency_conflict")
    missing = await client.post("/v1/settlements", json=body, headers=hospital)
    assert missing.json()["code"] == "idempotency_key_required"
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Settlement)) == 1


async def test_concurrent_same_key_settles_once(client: Client, runtime: Runtime) -> None:
    person, hospital = await _setup(client, runtime)
    body = {
        **bill("11", {**A, "amount": 3_000}),
        "ec_token": await ec_token(client, runtime, person, hospital),
    }
    responses = await asyncio.gather(
        *(_settle(client, hospital, body, key="same") for _ in range(8))
    )
    ids = {r.json()["settlement_id"] for r in responses if r.status_code == 201}
    assert len(ids) == 1
    assert all(
        r.status_code == 201 or r.json()["code"] == "idempotency_in_progress" for r in responses
    )
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Settlement)) == 1


async def test_fifty_concurrent_settlements_never_overdraw(
    client: Client, runtime: Runtime
) -> None:
    person, pharmacy = await _setup(
        client, runtime, balance=100_000, code="P37010200010", level="community"
    )
    # One ec_token a settlement: each opens one and is then spent.
    bodies = [
        {
            **bill("41", {**A, "amount": 5_000}),
            "ec_token": await ec_token(client, runtime, person, pharmacy),
        }
        for _ in range(50)
    ]
    responses = await asyncio.gather(*(_settle(client, pharmacy, body) for body in bodies))
    assert all(r.status_code == 201 for r in responses), [
        r.text for r in responses if r.status_code != 201
    ]
    paid = sum(r.json()["account_paid"] for r in responses)
    async with runtime.sessions() as session:
        balance = await session.scalar(select(Account.balance))
        ledger = await session.scalar(select(func.sum(LedgerEntry.amount)))
        usage = await session.scalar(select(BenefitUsage))
    assert balance == 0
    assert paid == 100_000  # money conserved: what the account paid is what it lost
    assert ledger == balance
    assert usage is not None
    assert usage.outpatient_deductible_used == 100_000  # the yearly deductible counted once


async def test_second_enrolment_is_listed_and_the_basic_one_prices(
    client: Client, runtime: Runtime
) -> None:
    # Verify and settle load the person's enrolments joined to other rows in one query: every
    # enrolment must come through, not just the first joined row.
    person, hospital = await _setup(client, runtime)
    async with runtime.sessions.begin() as session:
        session.add(
            Enrolment(
                person_id=person.person_id,
                insurance_type="510",
                area="370102",
                status="active",
                start_date=dt.date(2020, 1, 1),
            )
        )
    verified = await client.post(
        "/v1/verify", json={"qr": await person.qr(client)}, headers=hospital
    )
    assert verified.status_code == 200, verified.text
    assert sorted(i["insurance_type"] for i in verified.json()["insurances"]) == ["310", "510"]
    body = {**bill("11", {**A, "amount": 2_000}), "ec_token": verified.json()["ec_token"]}
    settled = await _settle(client, hospital, body)
    assert settled.status_code == 201, settled.text
    async with runtime.sessions() as session:
        row = await session.scalar(select(Settlement))
    assert row is not None
    assert row.insurance_type == "310"


async def _balance(runtime: Runtime) -> int | None:
    async with runtime.sessions() as session:
        return await session.scalar(select(Account.balance))


async def test_finding_03_an_ec_token_settles_once(client: Client, runtime: Runtime) -> None:
    person, hospital = await _setup(client, runtime)
    token = await ec_token(client, runtime, person, hospital)
    body = {**bill("11", {**A, "amount": 1_000}), "ec_token": token}
    preview = await client.post("/v1/settlements/preview", json=body, headers=hospital)
    assert preview.status_code == 200  # a preview does not spend the token
    first = await _settle(client, hospital, body, key="k1")
    assert first.status_code == 201, first.text
    assert (await _settle(client, hospital, body, key="k1")).json() == first.json()  # replay
    for again in (
        await _settle(client, hospital, body, key="k2"),
        await client.post("/v1/settlements/preview", json=body, headers=hospital),
    ):
        assert (again.status_code, again.json()["code"]) == (409, "ec_token_spent")
    assert await _balance(runtime) == 50_000 - first.json()["account_paid"]


async def test_finding_03_concurrent_settlements_spend_the_token_once(
    client: Client, runtime: Runtime
) -> None:
    person, hospital = await _setup(client, runtime)
    body = {
        **bill("11", {**A, "amount": 1_000}),
        "ec_token": await ec_token(client, runtime, person, hospital),
    }
    responses = await asyncio.gather(*(_settle(client, hospital, body) for _ in range(4)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 409, 409, 409], [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"ec_token_spent"}
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Settlement)) == 1
        assert await session.scalar(select(func.count()).select_from(LedgerEntry)) == 2


async def test_finding_03_a_failed_settlement_leaves_the_token_unspent(
    client: Client, runtime: Runtime
) -> None:
    person = await holder(client, runtime)  # no policy loaded yet: settling fails
    hospital = await institution(client, runtime)
    body = {
        **bill("11", {**A, "amount": 1_000}),
        "ec_token": await ec_token(client, runtime, person, hospital),
    }
    failed = await _settle(client, hospital, body)
    assert failed.json()["code"] == "no_policy"
    await load_policies(runtime)
    assert (await _settle(client, hospital, body)).status_code == 201


async def test_finding_03_rebind_and_suspension_kill_the_token(
    client: Client, runtime: Runtime
) -> None:
    person, hospital = await _setup(client, runtime)
    body = {
        **bill("11", {**A, "amount": 1_000}),
        "ec_token": await ec_token(client, runtime, person, hospital),
    }
    rebind = {"device_id": "phone-2", "device_name": "new phone"}
    assert (await client.post("/v1/me/ecert", json=rebind, headers=person.headers)).is_success
    refused = await _settle(client, hospital, body)
    assert (refused.status_code, refused.json()["code"]) == (409, "ecert_revoked")
    body["ec_token"] = await ec_token(client, runtime, person, hospital)
    await client.post("/v1/me/ecert/suspend", json={}, headers=person.headers)
    await client.post("/v1/me/ecert/resume", headers=person.headers)
    # Resumed, but the token was issued before the suspension: it stays dead.
    refused = await _settle(client, hospital, body)
    assert (refused.status_code, refused.json()["code"]) == (409, "ecert_revoked")


async def test_finding_03_ec_token_lives_ten_minutes_by_default(
    client: Client, runtime: Runtime
) -> None:
    person, hospital = await _setup(client, runtime)
    verified = await client.post(
        "/v1/verify", json={"qr": await person.qr(client)}, headers=hospital
    )
    lifetime = dt.datetime.fromisoformat(verified.json()["expires_at"]) - utcnow()
    assert dt.timedelta(seconds=590) < lifetime <= dt.timedelta(seconds=600)


async def test_finding_04_undesignated_institution_cannot_preview_or_settle(
    client: Client, runtime: Runtime
) -> None:
    person, hospital = await _setup(client, runtime)
    body = {
        **bill("11", {**A, "amount": 1_000}),
        "ec_token": await ec_token(client, runtime, person, hospital),
    }
    async with runtime.sessions.begin() as session:
        await session.execute(update(Institution).values(designated=False))
    for response in (
        await client.post("/v1/settlements/preview", json=body, headers=hospital),
        await _settle(client, hospital, body),
    ):
        assert (response.status_code, response.json()["code"]) == (
            403,
            "institution_not_designated",
        )


async def test_the_policy_in_force_across_a_year_change(
    client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Newest policy with year ≤ the business year; year-to-date usage restarts each year."""
    person, hospital = await _setup(client, runtime, balance=0)
    year = business_date().year
    body = bill("11", {**A, "amount": 150_000}, use_account=False)

    async def settle_now() -> dict[str, Any]:
        token = await ec_token(client, runtime, person, hospital)
        reply = await _settle(client, hospital, {**body, "ec_token": token})
        assert reply.status_code == 201, reply.text
        return dict(reply.json())

    # This year: deductible 100,000, then 50,000 × 0.5 = 25,000 from the fund.
    assert (await settle_now())["deductible_paid"] == 100_000
    monkeypatch.setattr(
        "ecert.ledger.policies.business_date", lambda at=None: dt.date(year + 1, 1, 2)
    )
    # 2 January, next year's policies not imported yet: this year's still prices, and the
    # yearly deductible starts again.
    first = await settle_now()
    assert (first["deductible_paid"], first["fund_paid"]) == (100_000, 25_000)
    # Next year's policies arrive (deductible 50,000, already met), and the year after's
    # (ratio 0.9) must not apply yet.
    nxt = illustrative_policies(year + 1)
    later = illustrative_policies(year + 2)
    for policy in nxt:
        policy["outpatient"]["deductible"] = 50_000
    for policy in later:
        policy["outpatient"]["ratios"]["3"] = 0.9
    async with runtime.sessions.begin() as session:
        await ledger.upsert_policies(session, nxt + later)
    second = await settle_now()
    assert (second["deductible_paid"], second["fund_paid"]) == (0, 75_000)
    async with runtime.sessions() as session:
        years = (await session.scalars(select(BenefitUsage.year).order_by(BenefitUsage.year))).all()
    assert years == [year, year + 1]


async def test_a_policy_changed_in_place_prices_the_next_settlement(
    client: Client, runtime: Runtime
) -> None:
    """Settle caches parsed policies per worker by row version: the same policy row uploaded
    again with another deductible (an update, same id) prices the very next settlement."""
    person, hospital = await _setup(client, runtime, balance=0)
    body = bill("11", {**A, "amount": 150_000}, use_account=False)

    async def settle_now() -> dict[str, Any]:
        token = await ec_token(client, runtime, person, hospital)
        reply = await _settle(client, hospital, {**body, "ec_token": token})
        assert reply.status_code == 201, reply.text
        return dict(reply.json())

    assert (await settle_now())["deductible_paid"] == 100_000  # cached from here on
    changed = illustrative_policies(business_date().year)
    for policy in changed:
        policy["outpatient"]["deductible"] = 120_000
    async with runtime.sessions.begin() as session:
        await ledger.upsert_policies(session, changed)
    # 100,000 of the deductible is used: 20,000 more under the changed policy, not 0.
    assert (await settle_now())["deductible_paid"] == 20_000


async def test_med_type_must_fit_the_institution_and_the_person_one_shot(
    client: Client, runtime: Runtime
) -> None:
    """The visits' rule on the one-shot path: refused before the token is spent, nothing written."""
    await load_policies(runtime)
    man = await holder(client, runtime, id_number=id_number("M"))
    woman = await holder(client, runtime, id_number=id_number("F"))
    hospital = await institution(client, runtime)
    pharmacy = await institution(client, runtime, code="P37010200009", level="community")
    item = {**A, "amount": 1_000}
    for who, headers, med_type in (
        (man, hospital, "41"),  # pharmacy purchase at a hospital
        (man, pharmacy, "21"),  # an admission at a pharmacy
        (man, pharmacy, "52"),  # maternity admission at a pharmacy
        (man, hospital, "51"),  # maternity for a man
    ):
        token = await ec_token(client, runtime, who, headers)
        body = {**bill(med_type, item, use_account=False), "ec_token": token}
        for response in (
            await client.post("/v1/settlements/preview", json=body, headers=headers),
            await _settle(client, headers, body),
        ):
            assert (response.status_code, response.json()["code"]) == (
                422,
                "med_type_not_allowed",
            ), med_type
        # The token is still good for a bill that fits.
        fits = "41" if headers is pharmacy else "11"
        ok = await _settle(client, headers, {**body, "med_type": fits})
        assert ok.status_code == 201, ok.text
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Settlement)) == 4
    token = await ec_token(client, runtime, woman, hospital)
    maternity = {**bill("51", item, use_account=False), "ec_token": token}
    assert (await _settle(client, hospital, maternity)).status_code == 201
