"""The large-expense layer above the basic cap (大额医疗费用补助), worked by hand over HTTP on both
backends: settle an inpatient visit crossing the basic cap and the layer's cap, return half a
line, read the visit as it stands, cancel the rest — every pool and both usage rows checked."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ecert import ledger
from ecert.benefits import InvalidPolicy, Policy, YearToDate
from ecert.clock import business_date
from ecert.data import illustrative_policies
from ecert.server.runtime import Runtime
from tests.helpers import Client
from tests.settlement.test_returns import _return
from tests.settlement.test_visit_settle import SPLIT
from tests.settlement.visit_steps import (
    AMOXICILLIN,
    CEFIXIME,
    COSMETIC,
    line,
    load_catalogue,
    opened,
    settle,
    setup,
)

LAYER = {"insurance_type": "330", "deductible": 200_000, "ratio": 0.9, "cap": 20_000_000}


def _policy(year: int) -> dict[str, Any]:
    """Jinan employee (level 3: deductible 1,000 yuan, ratio 0.88), inpatient basic cap 600,000
    yuan, and a large-expense layer: deductible 2,000 yuan, ratio 0.9, cap 200,000 yuan."""
    jinan = next(
        p
        for p in illustrative_policies(year)
        if (p["area"], p["insurance_type"], p["category"]) == ("370102", "310", "employee")
    )
    return {**jinan, "inpatient": {**jinan["inpatient"], "above_cap": LAYER}}


async def _usage(runtime: Runtime, person_id: uuid.UUID, insurance: str) -> YearToDate:
    async with runtime.sessions() as session:
        return await ledger.usage(session, person_id, business_date().year, insurance)


async def _set_usage(runtime: Runtime, person_id: uuid.UUID, insurance: str, fund: int) -> None:
    async with runtime.sessions.begin() as session:
        year = business_date().year
        await ledger.lock_usage(session, person_id, year, insurance)
        await ledger.store_usage(
            session, person_id, year, insurance, YearToDate(inpatient_fund_paid=fund)
        )


def test_a_layer_is_validated_on_import() -> None:
    policy = _policy(2026)
    assert Policy.from_json(policy).inpatient.above_cap is not None
    for bad in (
        {**LAYER, "insurance_type": "310"},  # a basic scheme's usage row is not the layer's
        {**LAYER, "ratio": 1.5},
        {**LAYER, "cap": -1},
        {**LAYER, "insurance_type": "320"},  # no national fund type known: must be named
        {**LAYER, "ceiling": 1},  # a misspelt field is refused, not ignored
    ):
        with pytest.raises(InvalidPolicy):
            Policy.from_json({**policy, "inpatient": {**policy["inpatient"], "above_cap": bad}})
    named = {**LAYER, "insurance_type": "320", "fund_type": "320100"}
    raw = {**policy, "inpatient": {**policy["inpatient"], "above_cap": named}}
    layer = Policy.from_json(raw).inpatient.above_cap
    assert layer is not None
    assert layer.fund == "320100"


async def _settled_over_cap(
    client: Client, runtime: Runtime
) -> tuple[dict[str, str], dict[str, Any], uuid.UUID, str]:
    """The worked bill settled: (hospital headers, reply, person id, visit id)."""
    await load_catalogue(runtime)
    person, hospital = await setup(client, runtime, balance=0)
    async with runtime.sessions.begin() as session:
        await ledger.upsert_policies(session, [_policy(business_date().year)])
    person_id = uuid.UUID(str(person.person_id))
    await _set_usage(runtime, person_id, "310", 58_000_000)  # 20,000 yuan of the basic cap left
    await _set_usage(runtime, person_id, "330", 18_000_000)  # 20,000 yuan of the layer's cap left
    visit_id = await opened(client, runtime, person, hospital, med_type="21")
    lines = [
        line("1", AMOXICILLIN, "1", 5_000_000),  # A 50,000 yuan
        line("2", CEFIXIME, "10", 100_000),  # B 10,000 yuan, first self-pay 0.1
        line("3", COSMETIC, "1", 200_000),  # C 2,000 yuan
    ]
    uploaded = await client.post(
        f"/v1/visits/{visit_id}/fees", json={"lines": lines}, headers=hospital
    )
    assert uploaded.status_code == 200, uploaded.text
    response = await settle(client, hospital, visit_id, {"use_account": False})
    assert response.status_code == 201, response.text
    return hospital, response.json(), person_id, visit_id


async def test_an_inpatient_bill_crossing_the_basic_cap_is_paid_by_the_layer(
    client: Client, runtime: Runtime
) -> None:
    hospital, got, person_id, visit_id = await _settled_over_cap(client, runtime)
    # 62,000 yuan: C 2,000 and B first 1,000 self-paid; eligible 59,000; deductible 1,000; above
    # it 58,000 × 0.88 = 51,040 (co-pay 6,960). The basic cap has 20,000 left: the fund pays it
    # and 31,040 goes to the layer: its deductible 2,000, then 29,040 × 0.9 = 26,136 (co-pay
    # 2,904), of which its cap left pays 20,000 and 6,136 is over the cap.
    assert {k: got[k] for k in SPLIT} == {
        "total": 6_200_000,
        "fully_self_paid": 200_000,
        "over_limit_self_paid": 0,
        "first_self_paid": 100_000,
        "eligible_amount": 5_900_000,
        "deductible_paid": 300_000,
        "co_pay": 986_400,
        "over_cap_self_paid": 613_600,
        "fund_paid": 4_000_000,
        "account_paid": 0,
        "account_mutual_aid_paid": 0,
        "cash_paid": 2_200_000,
        "person_paid": 2_200_000,
        "balance_after": 0,
    }
    assert got["fund_parts"] == [
        {"fund_type": "310100", "amount": 2_000_000},
        {"fund_type": "330100", "amount": 2_000_000},
    ]
    rules = [(s["rule"], s["amount"]) for s in got["steps"] if s["part"] == "share"]
    assert rules[2:] == [
        ("deductible", 100_000),
        ("copay", 696_000),
        ("cap", 0),
        ("layer_deductible", 200_000),
        ("layer_copay", 290_400),
        ("cap", 613_600),
        ("fund", 2_000_000),
        ("layer_fund", 2_000_000),
    ]
    basic = YearToDate(
        inpatient_deductible_used=100_000, inpatient_fund_paid=60_000_000, inpatient_admissions=1
    )
    assert await _usage(runtime, person_id, "310") == basic
    layer = YearToDate(inpatient_deductible_used=200_000, inpatient_fund_paid=20_000_000)
    assert await _usage(runtime, person_id, "330") == layer

    # Return half of line 1: 37,000 yuan remain. Eligible 34,000 − 1,000 = 33,000 × 0.88 =
    # 29,040: the basic fund still pays its 20,000, the layer gets 9,040: deductible 2,000,
    # 7,040 × 0.9 = 6,336 paid by the layer (within its cap), co-pay 704. Fund 26,336.
    sid = got["settlement_id"]
    returned = await _return(client, hospital, sid, [("1", "0.5")])
    assert returned.status_code == 201, returned.text
    back = returned.json()
    assert back["refunds"] == {
        "fund": 1_366_400,
        "account": 0,
        "account_mutual_aid": 0,
        "cash": 1_133_600,
    }
    assert back["repriced"]["fund_parts"] == [
        {"fund_type": "310100", "amount": 2_000_000},
        {"fund_type": "330100", "amount": 633_600},
    ]
    assert await _usage(runtime, person_id, "310") == basic
    layer = YearToDate(inpatient_deductible_used=200_000, inpatient_fund_paid=18_633_600)
    assert await _usage(runtime, person_id, "330") == layer

    # The visit as it stands: line 1 half returned and priced at its remaining half.
    visit = (await client.get(f"/v1/visits/{visit_id}", headers=hospital)).json()
    first = visit["lines"][0]
    assert (first["returned_quantity"], first["quantity"], first["amount"]) == (
        "0.5",
        "1",
        2_500_000,
    )
    assert first["eligible_amount"] == 2_500_000
    assert [ln["returned_quantity"] for ln in visit["lines"][1:]] == ["0", "0"]
    [settled] = visit["settlements"]
    assert settled["fund_paid"] == 4_000_000  # as settled; what came back is in its reversals
    assert [(r["kind"], r["amount"], r["fund_refund"]) for r in settled["reversals"]] == [
        ("lines", 2_500_000, 1_366_400)
    ]
    assert settled["reversals"][0]["lines"] == [{"line_no": "1", "quantity": "0.5"}]

    # The full cancel gives each pool the rest and both usage rows go back to where they were.
    cancelled = await _return(client, hospital, sid)
    assert cancelled.status_code == 201, cancelled.text
    assert cancelled.json()["refunds"]["fund"] == 2_633_600
    assert await _usage(runtime, person_id, "310") == YearToDate(inpatient_fund_paid=58_000_000)
    assert await _usage(runtime, person_id, "330") == YearToDate(inpatient_fund_paid=18_000_000)


async def test_amount_reversals_take_the_layer_back_first(client: Client, runtime: Runtime) -> None:
    """The layer paid last, so an amount reversal's fund refund comes off its usage first; the
    final reversal gives back the rest and the layer's deductible."""
    hospital, got, person_id, _ = await _settled_over_cap(client, runtime)
    sid = got["settlement_id"]
    first = await _return(client, hospital, sid, amount=3_100_000)  # half of 62,000 yuan
    assert first.status_code == 201, first.text
    fund = first.json()["fund_refund"]
    assert 0 < fund <= 2_000_000  # not more than the layer paid: it all comes off the layer
    layer = await _usage(runtime, person_id, "330")
    assert layer == YearToDate(
        inpatient_deductible_used=200_000, inpatient_fund_paid=20_000_000 - fund
    )
    assert (await _usage(runtime, person_id, "310")).inpatient_fund_paid == 60_000_000
    rest = await _return(client, hospital, sid)
    assert rest.status_code == 201, rest.text
    assert fund + rest.json()["fund_refund"] == 4_000_000
    assert await _usage(runtime, person_id, "310") == YearToDate(inpatient_fund_paid=58_000_000)
    assert await _usage(runtime, person_id, "330") == YearToDate(inpatient_fund_paid=18_000_000)
