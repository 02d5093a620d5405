"""Reconciliation: the day report (§5), the 3201 check and the 3202 detail stream (§7)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import astuple

from ecert.clock import business_date
from ecert.db.models import Reversal, Settlement
from ecert.server.runtime import Runtime
from ecert.settlement.reconciliation import repositories as recon_db
from ecert.settlement.reconciliation import services as recon
from ecert.settlement.reconciliation.schemas import Totals
from tests.factories import Holder, add_person, credit, ec_token, holder, institution, load_policies
from tests.helpers import Client

A = {"code": "A001", "name": "检查", "item_class": "A"}


async def _settle(
    client: Client, runtime: Runtime, person: Holder, hospital: dict[str, str], **body: Any
) -> dict[str, Any]:
    body["ec_token"] = await ec_token(client, runtime, person, hospital)
    response = await client.post(
        "/v1/settlements", json=body, headers={**hospital, "Idempotency-Key": str(uuid.uuid4())}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _reverse(
    client: Client, hospital: dict[str, str], sid: str, amount: int | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"reason": "退费", **({"amount": amount} if amount else {})}
    response = await client.post(
        f"/v1/settlements/{sid}/reversal",
        json=body,
        headers={**hospital, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _day(client: Client, runtime: Runtime) -> tuple[Holder, dict[str, str]]:
    """An outpatient bill with two partial reversals and an inpatient bill, all today."""
    await load_policies(runtime)
    person = await holder(client, runtime)
    await credit(runtime, person.person_id, 60_000)
    hospital = await institution(client, runtime)
    # Outpatient 150,000 at level 3: deductible 100,000; 50,000 × 0.5 = 25,000 fund;
    # account 60,000 (all of it); cash 65,000.
    out = await _settle(
        client,
        runtime,
        person,
        hospital,
        med_type="11",
        items=[{**A, "amount": 150_000}],
        use_account=True,
    )
    assert (out["fund_paid"], out["account_paid"], out["cash_paid"]) == (25_000, 60_000, 65_000)
    # Inpatient 500,000: admission deductible 100,000; 400,000 × 0.88 = 352,000 fund;
    # cash 148,000.
    inp = await _settle(
        client,
        runtime,
        person,
        hospital,
        med_type="21",
        items=[{**A, "amount": 500_000}],
        use_account=False,
    )
    assert (inp["fund_paid"], inp["cash_paid"]) == (352_000, 148_000)
    # Reversals of 30,000 then 15,000 of the outpatient bill, in proportion 25:60:65 of 150:
    # fund 5,000 + 2,500, account 12,000 + 6,000, cash 13,000 + 6,500.
    first = await _reverse(client, hospital, out["settlement_id"], 30_000)
    second = await _reverse(client, hospital, out["settlement_id"], 15_000)
    assert (first["fund_refund"], first["account_refund"], first["cash_refund"]) == (
        5_000,
        12_000,
        13_000,
    )
    assert (second["fund_refund"], second["account_refund"], second["cash_refund"]) == (
        2_500,
        6_000,
        6_500,
    )
    return person, hospital


def _figures(count: int, total: int, fund: int, account: int) -> dict[str, int]:
    return {"settlement_count": count, "total": total, "fund_paid": fund, "account_paid": account}


async def _check(client: Client, hospital: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/reconciliation", json=body, headers=hospital)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_day_report_counts_settlements_and_reversals_apart(
    client: Client, runtime: Runtime
) -> None:
    _, hospital = await _day(client, runtime)
    day = business_date().isoformat()
    report = (await client.get(f"/v1/reconciliation?date={day}", headers=hospital)).json()
    # Settlements 150,000 + 500,000; fund 25,000 + 352,000; cash 65,000 + 148,000.
    assert report["settlements"] == {
        "count": 2,
        "total": 650_000,
        "fund_paid": 377_000,
        "account_paid": 60_000,
        "cash_paid": 213_000,
    }
    assert report["reversals"] == {
        "count": 2,
        "total": 45_000,
        "fund_paid": 7_500,
        "account_paid": 18_000,
        "cash_paid": 19_500,
    }
    # net.count is the settlements' count (it used to be 2 − 2 = 0 bills); amounts net out.
    assert report["net"] == {
        "count": 2,
        "total": 605_000,
        "fund_paid": 369_500,
        "account_paid": 42_000,
        "cash_paid": 193_500,
    }
    assert [line["kind"] for line in report["details"]] == ["settlement"] * 2 + ["reversal"] * 2
    inpatient = (
        await client.get(f"/v1/reconciliation?date={day}&clearing_type=21", headers=hospital)
    ).json()
    assert (inpatient["settlements"]["count"], inpatient["reversals"]["count"]) == (1, 0)
    assert inpatient["net"]["total"] == 500_000


async def test_3201_match_and_mismatch_on_a_day_with_reversals(
    client: Client, runtime: Runtime
) -> None:
    _, hospital = await _day(client, runtime)
    day = business_date().isoformat()
    # Net of the day: 650,000 − 45,000; fund 377,000 − 7,500; account 60,000 − 18,000.
    theirs = _figures(2, 605_000, 369_500, 42_000)
    matched = await _check(client, hospital, date=day, **theirs, reversal_count=2)
    assert matched["result"] == "match"
    assert matched["ours"] == {**theirs, "reversal_count": 2}
    assert matched["theirs"] == {**theirs, "reversal_count": 2}
    assert set(matched["differences"].values()) == {0}
    without = await _check(client, hospital, date=day, **theirs)  # reversal count not sent
    assert without["result"] == "match"
    assert (without["theirs"]["reversal_count"], without["differences"]["reversal_count"]) == (
        None,
        None,
    )
    assert without["ours"]["reversal_count"] == 2
    # The hospital missed one fen and counted a reversal as a settlement: ours − theirs.
    wrong = await _check(
        client, hospital, date=day, **_figures(3, 604_999, 369_500, 42_000), reversal_count=1
    )
    assert wrong["result"] == "mismatch"
    assert wrong["differences"] == {
        "settlement_count": -1,
        "reversal_count": 1,
        "total": 1,
        "fund_paid": 0,
        "account_paid": 0,
    }
    # Another institution's check sees none of this hospital's day.
    other = await institution(client, runtime, code="H37010200055")
    assert (await _check(client, other, date=day, **_figures(0, 0, 0, 0)))["result"] == "match"


async def test_3201_by_clearing_type_and_insurance_type(client: Client, runtime: Runtime) -> None:
    _, hospital = await _day(client, runtime)
    day = business_date().isoformat()
    # 11: the outpatient bill and both its reversals: 150,000 − 45,000; fund 25,000 − 7,500;
    # account 60,000 − 18,000.
    out = await _check(
        client, hospital, date=day, clearing_type="11", **_figures(1, 105_000, 17_500, 42_000)
    )
    assert (out["result"], out["ours"]["reversal_count"]) == ("match", 2)
    # 21: the inpatient bill alone.
    inp = await _check(
        client, hospital, date=day, clearing_type="21", **_figures(1, 500_000, 352_000, 0)
    )
    assert (inp["result"], inp["ours"]["reversal_count"]) == ("match", 0)
    # Nothing cleared as a pharmacy purchase or "other" here, nothing under resident insurance.
    for filters in ({"clearing_type": "41"}, {"clearing_type": "99"}, {"insurance_type": "390"}):
        empty = await _check(client, hospital, date=day, **filters, **_figures(0, 0, 0, 0))
        assert empty["result"] == "match", filters
    both = await _check(
        client,
        hospital,
        date=day,
        clearing_type="21",
        insurance_type="310",
        **_figures(1, 500_000, 352_000, 0),
    )
    assert (both["result"], both["clearing_type"], both["insurance_type"]) == ("match", "21", "310")
    mismatch = await _check(
        client, hospital, date=day, clearing_type="21", **_figures(1, 605_000, 369_500, 42_000)
    )
    assert mismatch["result"] == "mismatch"
    assert mismatch["differences"]["total"] == -105_000


async def test_a_reversal_counts_on_its_own_day(
    client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on the national platform: yesterday's bill, reversed today, is in today's figures."""
    await load_policies(runtime)
    person = await holder(client, runtime)
    hospital = await institution(client, runtime)
    today = business_date()
    yesterday = today - dt.timedelta(days=1)
    monkeypatch.setattr("ecert.settlement.services.business_date", lambda at=None: yesterday)
    # 150,000 outpatient, no account: deductible 100,000; fund 25,000; cash 125,000.
    settled = await _settle(
        client,
        runtime,
        person,
        hospital,
        med_type="11",
        items=[{**A, "amount": 150_000}],
        use_account=False,
    )
    monkeypatch.undo()
    await _reverse(client, hospital, settled["settlement_id"])
    before = await _check(
        client, hospital, date=yesterday.isoformat(), **_figures(1, 150_000, 25_000, 0)
    )
    assert (before["result"], before["ours"]["reversal_count"]) == ("match", 0)
    # Today: no settlement, one reversal of all of it: the net is negative.
    now = await _check(
        client,
        hospital,
        date=today.isoformat(),
        reversal_count=1,
        **_figures(0, -150_000, -25_000, 0),
    )
    assert now["result"] == "match", now
    lines = await _details(client, hospital, today)
    assert [(line["kind"], line["settlement_date"]) for line in lines] == [
        ("reversal", yesterday.isoformat())
    ]


async def _details(
    client: Client, hospital: dict[str, str], day: dt.date, query: str = ""
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/v1/reconciliation/details?date={day.isoformat()}{query}", headers=hospital
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/jsonl")
    assert response.text == "" or response.text.endswith("\n")
    return [json.loads(line) for line in response.text.splitlines()]


async def test_3202_details_stream_every_line_in_batches(
    client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    person, hospital = await _day(client, runtime)
    monkeypatch.setattr(recon, "BATCH", 1)  # every row its own query: the keyset must hold
    lines = await _details(client, hospital, business_date())
    assert [line["kind"] for line in lines] == ["settlement"] * 2 + ["reversal"] * 2
    assert len({line["id"] for line in lines}) == 4
    assert [line["clearing_type"] for line in lines] == ["11", "21", "11", "11"]
    for kind, (total, fund, account) in {
        "settlement": (650_000, 377_000, 60_000),
        "reversal": (45_000, 7_500, 18_000),
    }.items():
        mine = [line for line in lines if line["kind"] == kind]
        assert (
            sum(line["total"] for line in mine),
            sum(line["fund_paid"] for line in mine),
            sum(line["account_paid"] for line in mine),
        ) == (total, fund, account)
    assert {line["insurance_type"] for line in lines} == {"310"}
    # The opaque person number, never the ID number or the name.
    raw = json.dumps(lines, ensure_ascii=False)
    assert person.id_number not in raw
    assert person.name not in raw
    assert len({line["person_no"] for line in lines}) == 1
    inpatient = await _details(client, hospital, business_date(), "&clearing_type=21")
    assert [(line["kind"], line["total"]) for line in inpatient] == [("settlement", 500_000)]
    assert await _details(client, hospital, dt.date(2020, 1, 1)) == []


async def test_reconciliation_refuses_bad_input(client: Client, runtime: Runtime) -> None:
    hospital = await institution(client, runtime)
    day = business_date().isoformat()
    for body in (
        {"date": day, **_figures(0, 0, 0, 0), "clearing_type": "12"},
        {"date": day, **_figures(-1, 0, 0, 0)},
        {"date": "yesterday", **_figures(0, 0, 0, 0)},
        {"date": day, "total": 0},
        {"date": day, **_figures(0, 0, 0, 0), "cash_paid": 0},
    ):
        response = await client.post("/v1/reconciliation", json=body, headers=hospital)
        assert (response.status_code, response.json()["code"]) == (400, "validation_failed"), body
        assert response.headers["content-type"].startswith("application/problem+json")
    for query in ("date=yesterday", f"date={day}&clearing_type=12", f"date={day}&insurance_type=x"):
        response = await client.get(f"/v1/reconciliation/details?{query}", headers=hospital)
        assert (response.status_code, response.json()["code"]) == (400, "validation_failed"), query


_days = itertools.count()
MED_TYPES = ("11", "14", "21", "41", "51", "52", "13")  # 13: no clearing type of its own
#: A bill: med_type, insurance type, (fund, account, cash), settled the day before?, refunds.
Bills = st.lists(
    st.tuples(
        st.sampled_from(MED_TYPES),
        st.sampled_from(("310", "390")),
        st.tuples(*(st.integers(0, 50_000),) * 3),
        st.booleans(),
        st.lists(st.floats(0.0, 0.5), max_size=2),
    ),
    max_size=6,
)


def _sum(totals: list[Totals]) -> Totals:
    columns = zip(*(astuple(t) for t in totals), strict=True)
    return Totals(**dict(zip(Totals.__struct_fields__, map(sum, columns), strict=True)))


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(bills=Bills)
async def test_clearing_types_partition_the_day_and_the_details_add_up(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, bills: list[Any]
) -> None:
    """Property: the four clearing types split the day's figures exactly; the streamed lines of
    each kind add up to the totals; a reversal counts on its own day, not its bill's."""
    day = dt.date(2001, 1, 1) + dt.timedelta(days=2 * next(_days) + 1)  # a day per example
    code = "H37010200077"
    person, _ = await add_person(runtime)
    async with runtime.sessions.begin() as session:
        for med_type, insurance, (fund, account, cash), before, refunds in bills:
            total = fund + account + cash
            settlement = Settlement(
                institution_code=code,
                person_id=person.id,
                ec_token="-",
                med_type=med_type,
                insurance_type=insurance,
                year=day.year,
                business_date=day - dt.timedelta(days=1) if before else day,
                items=[],
                total=total,
                fully_self_paid=0,
                first_self_paid=0,
                deductible_paid=0,
                fund_paid=fund,
                account_paid=account,
                cash_paid=cash,
                balance_after=None,
                steps=[],
            )
            session.add(settlement)
            await session.flush()
            for share in refunds:  # the day's reversals; amounts need not follow allocate here
                session.add(
                    Reversal(
                        settlement_id=settlement.id,
                        institution_code=code,
                        business_date=day,
                        amount=int(fund * share) + int(account * share) + int(cash * share),
                        fund_refund=int(fund * share),
                        account_refund=int(account * share),
                        cash_refund=int(cash * share),
                        reason="退费",
                    )
                )
    monkeypatch.setattr(recon, "BATCH", 2)
    async with runtime.sessions() as session:
        whole = await recon_db.day_totals(session, code, day, [])
        for insurance in (None, "310", "390"):
            parts = [
                await recon_db.day_totals(session, code, day, recon.filters(c, insurance))
                for c in ("11", "21", "41", "99")
            ]
            overall = await recon_db.day_totals(session, code, day, recon.filters(None, insurance))
            assert _sum([s for s, _ in parts]) == overall[0]
            assert _sum([r for _, r in parts]) == overall[1]
    settled_today = [b for b in bills if not b[3]]
    assert whole[0].count == len(settled_today)
    assert whole[1].count == sum(len(b[4]) for b in bills)
    lines = [
        json.loads(row)
        for chunk in [c async for c in recon.detail_stream(runtime.sessions, code, day)]
        for row in chunk.splitlines()
    ]
    for kind, totals in (("settlement", whole[0]), ("reversal", whole[1])):
        mine = [line for line in lines if line["kind"] == kind]
        assert len(mine) == totals.count
        assert len({line["id"] for line in mine}) == totals.count
        assert sum(line["total"] for line in mine) == totals.total
        assert sum(line["fund_paid"] for line in mine) == totals.fund_paid
        assert sum(line["account_paid"] for line in mine) == totals.account_paid
    for line in lines:
        assert line["clearing_type"] == recon.clearing_type(line["med_type"])
        assert line["business_date"] == day.isoformat()
