"""Returns that re-price (spec §7): hand-worked bills over HTTP on both backends, accumulation,
refusals, idempotency, and the from-scratch property (pure and on both backends)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from decimal import Decimal
from typing import Any, Literal

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from ecert.benefits import Bill, BillItem, Policy, YearToDate, compute
from ecert.data import illustrative_policies
from ecert.db.models import Account, BenefitUsage, LedgerEntry, Reversal, Settlement
from ecert.ledger import fen, over_limit
from ecert.server.runtime import Runtime
from ecert.settlement.basis import Basis, BasisLine
from ecert.settlement.returns import POOLS, pools, reprice
from tests.factories import ec_token, holder
from tests.helpers import Client
from tests.settlement.test_visit_settle import _inpatient_visit, invariants
from tests.settlement.visit_steps import (
    AMOXICILLIN,
    COSMETIC,
    id_number,
    line,
    load_catalogue,
    opened,
    settle,
    setup,
)

ALBUMIN = "XB05AAA010B002010100003"  # B, first self-pay 0.2


async def _return(
    client: Client,
    headers: dict[str, str],
    sid: str,
    lines: list[tuple[str, str]] | None = None,
    key: str | None = None,
    **more: Any,
) -> Any:
    body: dict[str, Any] = {"reason": "退药", **more}
    if lines is not None:
        body["lines"] = [{"line_no": n, "quantity": q} for n, q in lines]
    return await client.post(
        f"/v1/settlements/{sid}/reversal",
        json=body,
        headers={**headers, "Idempotency-Key": key or uuid.uuid4().hex},
    )


async def _visit_settled(
    client: Client,
    runtime: Runtime,
    lines: list[dict[str, Any]],
    *,
    med_type: str,
    balance: int = 0,
    use_account: bool = False,
) -> tuple[dict[str, str], dict[str, Any], uuid.UUID]:
    await load_catalogue(runtime)
    person, hospital = await setup(client, runtime, balance=balance)
    visit_id = await opened(client, runtime, person, hospital, med_type=med_type)
    uploaded = await client.post(
        f"/v1/visits/{visit_id}/fees", json={"lines": lines}, headers=hospital
    )
    assert uploaded.status_code == 200, uploaded.text
    settled = await settle(client, hospital, visit_id, {"use_account": use_account})
    assert settled.status_code == 201, settled.text
    return hospital, settled.json(), uuid.UUID(str(person.person_id))


async def _usage(runtime: Runtime, person_id: uuid.UUID) -> tuple[int, int, int, int, int]:
    async with runtime.sessions() as session:
        row = await session.scalar(select(BenefitUsage).where(BenefitUsage.person_id == person_id))
        assert row is not None
        return (
            row.outpatient_deductible_used,
            row.outpatient_fund_paid,
            row.inpatient_deductible_used,
            row.inpatient_fund_paid,
            row.inpatient_admissions,
        )


async def test_returned_class_c_drug_goes_back_to_cash_not_the_fund(
    client: Client, runtime: Runtime
) -> None:
    """The bug that motivated re-pricing: inpatient A 10,000 yuan + C 1,000 yuan; returning the
    C drug must give cash its 1,000 yuan and the fund nothing (not 720 to the fund, 280 cash)."""
    hospital, settled, person_id = await _visit_settled(
        client,
        runtime,
        [line("1", AMOXICILLIN, "1", 1_000_000), line("2", COSMETIC, "1", 100_000)],
        med_type="21",
    )
    # Eligible 1,000,000; level-3 admission deductible 100,000; 900,000 × 0.88 = 792,000 fund.
    # Cash pays 1,100,000 − 792,000 = 308,000 (no account used).
    assert (settled["fund_paid"], settled["cash_paid"]) == (792_000, 308_000)
    response = await _return(client, hospital, settled["settlement_id"], [("2", "1")])
    assert response.status_code == 201, response.text
    got = response.json()
    # What remains (the A line alone) prices to fund 792,000, cash 208,000: only cash moves.
    assert got["refunds"] == {"fund": 0, "account": 0, "account_mutual_aid": 0, "cash": 100_000}
    assert (got["kind"], got["amount"], got["remaining"]) == ("lines", 100_000, 1_000_000)
    assert (got["fund_refund"], got["cash_refund"]) == (0, 100_000)
    assert got["lines"] == [{"line_no": "2", "quantity": "1"}]
    repriced = got["repriced"]
    assert (repriced["total"], repriced["fund_paid"], repriced["cash_paid"]) == (
        1_000_000,
        792_000,
        208_000,
    )
    assert repriced["fully_self_paid"] == 0
    assert [s["line_no"] for s in repriced["lines"]] == ["1"]
    invariants(repriced)
    # The fund's usage is untouched, the admission still counts.
    assert await _usage(runtime, person_id) == (0, 0, 100_000, 792_000, 1)
    shown = (
        await client.get(f"/v1/settlements/{settled['settlement_id']}", headers=hospital)
    ).json()
    assert (shown["status"], shown["reversed_total"]) == ("partially_reversed", 100_000)
    assert shown["returned"] == {"2": "1"}
    # The full cancel of the rest: the fund its 792,000, cash 208,000; the admission and all
    # usage are back where the bill found them.
    rest = (await _return(client, hospital, settled["settlement_id"])).json()
    assert rest["refunds"] == {
        "fund": 792_000,
        "account": 0,
        "account_mutual_aid": 0,
        "cash": 208_000,
    }
    assert await _usage(runtime, person_id) == (0, 0, 0, 0, 0)


async def test_concurrent_returns_of_one_line_return_it_once(
    client: Client, runtime: Runtime
) -> None:
    hospital, settled, _ = await _visit_settled(
        client,
        runtime,
        [line("1", AMOXICILLIN, "1", 1_000_000), line("2", COSMETIC, "3", 100_000)],
        med_type="21",
    )
    sid = settled["settlement_id"]
    replies = await asyncio.gather(
        *(_return(client, hospital, sid, [("2", "2")]) for _ in range(4))
    )
    codes = sorted(r.status_code for r in replies)
    assert codes == [201, 422, 422, 422], [r.text for r in replies]
    assert all(r.json()["code"] == "return_exceeds_line" for r in replies if r.status_code == 422)
    async with runtime.sessions() as session:
        row = await session.get(Settlement, uuid.UUID(sid))
        assert row is not None
        assert (row.returned, row.reversed_cash, row.reversed_fund) == ({"2": "2"}, 200_000, 0)


async def test_b_drug_partly_returned_by_hand(client: Client, runtime: Runtime) -> None:
    """The worked inpatient bill of docs/settlement.md, 1.5 of the 4 albumin returned."""
    visit_id, hospital = await _inpatient_visit(client, runtime)
    settled = (await settle(client, hospital, visit_id, {"use_account": True})).json()
    assert (settled["fund_paid"], settled["account_paid"], settled["cash_paid"]) == (
        76_120,
        50_000,
        126_380,
    )
    sid = settled["settlement_id"]
    response = await _return(client, hospital, sid, [("2", "1.5")], key="ret-1")
    assert response.status_code == 201, response.text
    got = response.json()
    # Albumin left: 2.5 × 45,000 = 112,500 (20 % first self-paid 22,500, eligible 90,000).
    # Eligible 12,500 + 90,000 + 30,000 = 132,500; deductible 100,000; 32,500 × 0.88 = 28,600
    # fund, co-pay 3,900. Total 185,000; the person pays 156,400: account 50,000 (its whole
    # balance before, as at settling), cash 106,400. Refunds: fund 76,120 − 28,600 = 47,520,
    # account 0, cash 126,380 − 106,400 = 19,980; together 67,500 = 1.5 × 45,000.
    assert got["refunds"] == {"fund": 47_520, "account": 0, "account_mutual_aid": 0, "cash": 19_980}
    assert (got["amount"], got["remaining"]) == (67_500, 185_000)
    repriced = got["repriced"]
    figures = ("total", "first_self_paid", "eligible_amount", "deductible_paid", "co_pay")
    assert [repriced[k] for k in figures] == [185_000, 22_500, 132_500, 100_000, 3_900]
    albumin = next(s for s in repriced["lines"] if s["line_no"] == "2")
    assert (albumin["amount"], albumin["first_self_paid"]) == (112_500, 22_500)
    invariants(repriced)
    # The same key replays the same answer and moves nothing again.
    again = await _return(client, hospital, sid, [("2", "1.5")], key="ret-1")
    assert (again.status_code, again.json()) == (201, got)
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await _return(client, hospital, sid, [("2", "1")], key="ret-1")
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_conflict")
    async with runtime.sessions() as session:
        assert len((await session.scalars(select(Reversal))).all()) == 1
    # Returns accumulate: 2.5 are left, so 2.5001 is refused and nothing changes.
    too_many = await _return(client, hospital, sid, [("2", "2.5001")])
    assert (too_many.status_code, too_many.json()["code"]) == (422, "return_exceeds_line")
    unknown = await _return(client, hospital, sid, [("9", "1")])
    assert (unknown.status_code, unknown.json()["code"]) == (422, "return_line_not_found")
    bad = await _return(client, hospital, sid, [("2", "0.12345")])
    assert (bad.status_code, bad.json()["code"]) == (422, "fee_quantity_invalid")
    both = await _return(client, hospital, sid, [("2", "1")], amount=100)
    assert (both.status_code, both.json()["code"]) == (400, "validation_failed")
    mixed = await _return(client, hospital, sid, amount=100)
    assert (mixed.status_code, mixed.json()["code"]) == (409, "reversal_mode_conflict")
    # The full cancel gives every pool the rest of what it paid.
    rest = (await _return(client, hospital, sid)).json()
    assert (rest["kind"], rest["remaining"]) == ("full", 0)
    assert rest["refunds"] == {
        "fund": 28_600,
        "account": 50_000,
        "account_mutual_aid": 0,
        "cash": 106_400,
    }
    async with runtime.sessions() as session:
        assert await session.scalar(select(Account.balance)) == 50_000
        kinds = (await session.scalars(select(LedgerEntry.kind).order_by(LedgerEntry.id))).all()
        assert kinds[-2:] == ["debit", "reversal"]


async def test_return_crosses_back_below_the_deductible(client: Client, runtime: Runtime) -> None:
    """Outpatient, level 3, the Jinan employee's yearly deductible 100,000 and ratio 0.5."""
    hospital, settled, person_id = await _visit_settled(
        client,
        runtime,
        [line("1", AMOXICILLIN, "2", 40_000), line("2", AMOXICILLIN, "1", 40_000)],
        med_type="11",
    )
    sid = settled["settlement_id"]
    # 120,000 eligible: deductible 100,000; 20,000 × 0.5 = 10,000 fund; cash 110,000.
    assert (settled["deductible_paid"], settled["fund_paid"], settled["cash_paid"]) == (
        100_000,
        10_000,
        110_000,
    )
    assert await _usage(runtime, person_id) == (100_000, 10_000, 0, 0, 0)
    first = (await _return(client, hospital, sid, [("2", "1")])).json()
    # 80,000 left, all inside the deductible: the fund gives back its 10,000, cash 30,000,
    # and the year's deductible used falls back to 80,000.
    assert first["refunds"] == {
        "fund": 10_000,
        "account": 0,
        "account_mutual_aid": 0,
        "cash": 30_000,
    }
    assert first["repriced"]["deductible_paid"] == 80_000
    assert await _usage(runtime, person_id) == (80_000, 0, 0, 0, 0)
    second = (await _return(client, hospital, sid, [("1", "1")])).json()
    # 40,000 left, deductible: cash gets 40,000; usage 40,000.
    assert second["refunds"]["cash"] == 40_000
    assert await _usage(runtime, person_id) == (40_000, 0, 0, 0, 0)
    over = await _return(client, hospital, sid, [("1", "1.5")])
    assert over.json()["code"] == "return_exceeds_line"
    last = (await _return(client, hospital, sid, [("1", "1")])).json()
    # Everything returned: cash its last 40,000, usage back to where the bill found it.
    assert (last["refunds"]["cash"], last["remaining"], last["repriced"]["total"]) == (40_000, 0, 0)
    assert await _usage(runtime, person_id) == (0, 0, 0, 0, 0)
    nothing = await _return(client, hospital, sid)
    assert nothing.json()["code"] == "reversal_exceeds_settlement"


async def test_one_shot_items_are_lines_by_position(client: Client, runtime: Runtime) -> None:
    """A §5 bill's items are lines "1", "2", … of quantity 1; an amount reversal before any
    line return keeps lines out (the two do not mix), a full cancel still works."""
    person, hospital = await setup(client, runtime, balance=0)
    items = [
        {"code": "A001", "name": "检查", "item_class": "A", "amount": 150_000},
        {"code": "C001", "name": "自费药", "item_class": "C", "amount": 30_001},
    ]
    body = {
        "ec_token": await ec_token(client, runtime, person, hospital),
        "med_type": "11",
        "items": items,
    }
    settled = await client.post(
        "/v1/settlements", json=body, headers={**hospital, "Idempotency-Key": "one"}
    )
    assert settled.status_code == 201, settled.text
    sid = settled.json()["settlement_id"]
    # Half of the C item returned: what remains is 0.5 × 30,001 = 15,000.5, half up 15,001
    # (the fee rule), so cash gets back 30,001 − 15,001 = 15,000 and the A item is untouched.
    half = (await _return(client, hospital, sid, [("2", "0.5")])).json()
    assert half["refunds"] == {"fund": 0, "account": 0, "account_mutual_aid": 0, "cash": 15_000}
    assert half["repriced"]["fully_self_paid"] == 15_001
    # The other person's bill: an amount reversal first, then lines are refused.
    person2 = await holder(client, runtime, id_number=id_number())
    body["ec_token"] = await ec_token(client, runtime, person2, hospital)
    sid2 = (
        await client.post(
            "/v1/settlements", json=body, headers={**hospital, "Idempotency-Key": "2"}
        )
    ).json()["settlement_id"]
    assert (await _return(client, hospital, sid2, amount=1_000)).status_code == 201
    refused = await _return(client, hospital, sid2, [("1", "1")])
    assert (refused.status_code, refused.json()["code"]) == (409, "return_not_possible")
    cancel = await _return(client, hospital, sid2)
    assert (cancel.status_code, cancel.json()["remaining"]) == (201, 0)
    after = await _return(client, hospital, sid2, [("2", "1")])
    assert (after.status_code, after.json()["code"]) == (422, "reversal_exceeds_settlement")


async def test_settlement_without_a_basis_refuses_lines(client: Client, runtime: Runtime) -> None:
    """A settlement booked before 0008 kept nothing to price again: lines are refused."""
    hospital, settled, _ = await _visit_settled(
        client, runtime, [line("1", AMOXICILLIN, "1", 10_000)], med_type="11"
    )
    async with runtime.sessions.begin() as session:
        row = await session.get(Settlement, uuid.UUID(settled["settlement_id"]))
        assert row is not None
        row.pricing = None
    refused = await _return(client, hospital, settled["settlement_id"], [("1", "1")])
    assert refused.json()["code"] == "return_not_possible"


# The property: any sequence of returns leaves each pool and usage counter where pricing the
# remaining bill from scratch (against the original's usage and balance) puts them.

POLICY = Policy.from_json(
    next(
        p
        for p in illustrative_policies(2026)
        if (p["area"], p["insurance_type"], p["category"]) == ("370102", "310", "employee")
    )
)
#: The same policy with a large-expense layer above both caps (its own deductible, ratio, cap).
LAYERED = Policy.from_json(
    {
        **msgspec.to_builtins(POLICY),
        "outpatient": {
            **msgspec.to_builtins(POLICY.outpatient),
            "above_cap": {
                "insurance_type": "330",
                "deductible": 5_000,
                "ratio": 0.9,
                "cap": 200_000,
            },
        },
        "inpatient": {
            **msgspec.to_builtins(POLICY.inpatient),
            "above_cap": {
                "insurance_type": "330",
                "deductible": 100_000,
                "ratio": 0.85,
                "cap": 3_000_000,
            },
        },
    }
)
QUANTITIES = st.decimals(Decimal("0.01"), Decimal("9"), places=2)


@st.composite
def lines_(draw: st.DrawFn) -> list[BasisLine]:
    count = draw(st.integers(1, 5))
    out = []
    for n in range(1, count + 1):
        item_class: Literal["A", "B", "C"] = draw(st.sampled_from(["A", "B", "C"]))
        unit_price = draw(st.integers(0, 300_000))
        cap = draw(st.none() | st.integers(0, 300_000)) if item_class != "C" else None
        out.append(
            BasisLine(
                line_no=str(n),
                list_code=f"X{n}",
                name=f"项目 {n}",
                quantity=format(draw(QUANTITIES).normalize(), "f"),
                unit_price=unit_price,
                item_class=item_class,
                first_self_pay_ratio=draw(st.sampled_from([None, 0.1, 0.2, 0.35]))
                if item_class == "B"
                else None,
                price_cap=cap,
                reason="catalogue",
            )
        )
    return out


@st.composite
def returns_(draw: st.DrawFn, lines: list[BasisLine]) -> list[dict[str, Decimal] | None]:
    """A sequence of returns (None: the full cancel), each within what is left."""
    left = {line.line_no: Decimal(line.quantity) for line in lines}
    steps: list[dict[str, Decimal] | None] = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.integers(0, 5)) == 0:
            steps.append(None)
            break
        open_lines = [n for n, q in left.items() if q > 0]
        if not open_lines:
            break
        chosen = draw(st.lists(st.sampled_from(open_lines), min_size=1, unique=True))
        step = {}
        for n in chosen:
            whole = draw(st.booleans())
            q = left[n] if whole else draw(st.decimals(Decimal("0.01"), left[n], places=2))
            step[n] = q
            left[n] -= q
        steps.append(step)
    return steps


def from_scratch(
    basis: Basis, returned: dict[str, Decimal]
) -> tuple[dict[str, int], YearToDate, YearToDate | None]:
    """Pools, usage and the layer's usage of the remaining bill, built straight from the lines
    (no reprice)."""
    items = []
    for b in basis.lines:
        q = Decimal(b.quantity) - returned.get(b.line_no, Decimal(0))
        if q == 0:
            continue
        over = over_limit(q, b.unit_price, b.price_cap)
        items.append(
            BillItem(
                b.list_code,
                b.name,
                b.item_class,
                fen(q, b.unit_price) - over,
                b.first_self_pay_ratio,
            )
        )
        if over:
            items.append(BillItem(b.list_code, "over", "C", over))
    if not items:
        return dict.fromkeys(POOLS, 0), basis.usage_before, basis.layer_usage_before
    split = compute(
        basis.policy,
        Bill(basis.med_type, items, basis.level, basis.out_of_area),
        basis.usage_before,
        balance=basis.balance_before,
        use_account=basis.use_account,
        layer_ytd=basis.layer_usage_before,
    )
    paid = {"fund": split.fund_paid, "account": split.account_paid, "cash": split.cash_paid}
    return {**paid, "account_mutual_aid": 0}, split.usage_after, split.layer_usage_after


@st.composite
def bases(draw: st.DrawFn) -> Basis:
    layered = draw(st.booleans())
    layer_usage = YearToDate(
        outpatient_deductible_used=draw(st.integers(0, 6_000)),
        outpatient_fund_paid=draw(st.integers(0, 250_000)),
        inpatient_deductible_used=draw(st.integers(0, 120_000)),
        inpatient_fund_paid=draw(st.integers(0, 3_500_000)),
    )
    usage = YearToDate(
        outpatient_deductible_used=draw(st.integers(0, 120_000)),
        outpatient_fund_paid=draw(st.integers(0, 700_000)),
        inpatient_fund_paid=draw(st.integers(0, 60_000_000)),
        inpatient_admissions=draw(st.integers(0, 3)),
    )
    if layered:  # near the basic caps, so that bills cross them into the layer
        usage = msgspec.structs.replace(
            usage,
            outpatient_fund_paid=POLICY.outpatient.cap - draw(st.integers(0, 20_000)),
            inpatient_fund_paid=POLICY.inpatient.cap - draw(st.integers(0, 200_000)),
        )
    return Basis(
        policy=LAYERED if layered else POLICY,
        layer_usage_before=layer_usage if layered else None,
        insurance_type="310",
        med_type=draw(st.sampled_from(["11", "21"])),
        level=draw(st.sampled_from(["community", "1", "2", "3"])),
        out_of_area=draw(st.sampled_from(["none", "referred", "unreferred"])),
        usage_before=usage,
        balance_before=draw(st.none() | st.integers(0, 500_000)),
        use_account=draw(st.booleans()),
        lines=draw(lines_()),
    )


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_returns_land_where_pricing_the_rest_from_scratch_would(data: st.DataObject) -> None:
    basis = data.draw(bases(), label="basis")
    steps = data.draw(returns_(basis.lines), label="returns")
    original, _, _ = from_scratch(basis, {})
    costs, _ = reprice(basis, {})
    assert pools(costs) == original
    returned: dict[str, Decimal] = {}
    got_back = dict.fromkeys(POOLS, 0)
    for step in steps:
        was, _ = reprice(basis, returned)
        if step is None:  # the full cancel: each pool gets back what is left of it
            for p in POOLS:
                got_back[p] += pools(was)[p]
            returned = {line.line_no: Decimal(line.quantity) for line in basis.lines}
            break
        for n, q in step.items():
            returned[n] = returned.get(n, Decimal(0)) + q
        now, _ = reprice(basis, returned)
        refunds = {p: pools(was)[p] - pools(now)[p] for p in POOLS}
        assert all(fen >= 0 for fen in refunds.values())  # no pool ever pays more after a return
        assert sum(refunds.values()) == was.total - now.total
        for p in POOLS:
            got_back[p] += refunds[p]
        invariants(msgspec.to_builtins(now))
    left, usage, layer_usage = from_scratch(basis, returned)
    assert {p: original[p] - got_back[p] for p in POOLS} == left
    assert reprice(basis, returned)[1].usage_after == usage
    assert reprice(basis, returned)[1].layer_usage_after == layer_usage


_codes = itertools.count(1)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_returns_over_http_land_where_pricing_from_scratch_would(
    client: Client, runtime: Runtime, data: st.DataObject
) -> None:
    """The same property through the API and the database, on both backends (fewer examples):
    the settlement's pools, the account and the stored usage after any sequence of returns."""
    # No catalogue: the hospital's declared classes stand and no price cap applies.
    drawn = data.draw(lines_(), label="lines")
    lines = [msgspec.structs.replace(b, price_cap=None, reason="hospital_declared") for b in drawn]
    med_type = data.draw(st.sampled_from(["11", "21"]), label="med_type")
    use_account = data.draw(st.booleans(), label="use_account")
    balance = data.draw(st.integers(0, 300_000), label="balance")
    person, hospital = await setup(
        client, runtime, balance=balance, code=f"H370102{next(_codes):05d}"
    )
    visit_id = await opened(client, runtime, person, hospital, med_type=med_type)
    fees = [
        {
            **line(b.line_no, b.list_code, b.quantity, b.unit_price),
            "item_class": b.item_class,
            **({"first_self_pay_ratio": b.first_self_pay_ratio} if b.first_self_pay_ratio else {}),
        }
        for b in lines
    ]
    assert (
        await client.post(f"/v1/visits/{visit_id}/fees", json={"lines": fees}, headers=hospital)
    ).status_code == 200
    settled = await settle(client, hospital, visit_id, {"use_account": use_account})
    assert settled.status_code == 201, settled.text
    sid = settled.json()["settlement_id"]
    steps = data.draw(returns_(lines), label="returns")
    returned: dict[str, Decimal] = {}
    for step in steps:
        asked = None if step is None else [(n, format(q.normalize(), "f")) for n, q in step.items()]
        response = await _return(client, hospital, sid, asked)
        if step is None:
            assert response.status_code in (201, 422), response.text
            returned = {b.line_no: Decimal(b.quantity) for b in lines}
            break
        assert response.status_code == 201, response.text
        for n, q in step.items():
            returned[n] = returned.get(n, Decimal(0)) + q
    async with runtime.sessions() as session:
        row = await session.get(Settlement, uuid.UUID(sid))
        assert row is not None
        assert row.pricing is not None
        basis = Basis(**{**_basis_fields(row.pricing), "lines": lines})
        left, usage, _ = from_scratch(basis, returned)
        assert {
            "fund": row.fund_paid - row.reversed_fund,
            "account": row.account_paid - row.reversed_account,
            "account_mutual_aid": 0,
            "cash": row.cash_paid - row.reversed_cash,
        } == left
        account = await session.scalar(
            select(Account.balance).where(Account.person_id == person.person_id)
        )
        assert account == balance - left["account"]
        stored = await session.scalar(
            select(BenefitUsage).where(BenefitUsage.person_id == person.person_id)
        )
        assert stored is not None
        assert YearToDate(**{f: getattr(stored, f) for f in YearToDate.__struct_fields__}) == usage


def _basis_fields(stored: dict[str, Any]) -> dict[str, Any]:
    basis = msgspec.convert(stored, Basis)
    return {f: getattr(basis, f) for f in Basis.__struct_fields__ if f != "lines"}
