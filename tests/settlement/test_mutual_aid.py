"""Mutual aid (家庭共济, spec §7): authorising, paying from relatives' accounts in order under
concurrency, revoking, refunding on reversal, and what both sides' lookups show.

Bills are priced by the illustrative Jinan policies at a level-3 hospital: a resident's
outpatient care has no deductible and a fund ratio of 0.3 (cap 30,000 a year); an employee's has
a yearly deductible of 100,000, so a small bill is all the person's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from ecert.db.models import (
    Account,
    AuditEvent,
    LedgerEntry,
    MutualAidAuthorisation,
    MutualAidDraw,
    Settlement,
)
from ecert.identity import mask_name
from ecert.server.runtime import Runtime
from ecert.settlement.mutual_aid import plan
from tests.factories import Holder, credit, ec_token, holder, institution, load_policies
from tests.helpers import Client
from tests.settlement.visit_steps import id_number, line, opened, settle

CHILD_BIRTH = dt.date(2015, 3, 1)


async def _person(
    client: Client, runtime: Runtime, name: str, *, balance: int | None = None, **more: Any
) -> Holder:
    birth = more.pop("birth", dt.date(1980, 5, 17))
    person = await holder(client, runtime, name=name, id_number=id_number(birth=birth), **more)
    if balance is not None:
        await credit(runtime, person.person_id, balance)
    return person


async def _child(client: Client, runtime: Runtime, name: str = "张小明") -> Holder:
    return await _person(
        client, runtime, name, category="resident", insurance_type="390", birth=CHILD_BIRTH
    )


async def _authorise(
    client: Client, holder_: Holder, relative: Holder, relation: str = "child"
) -> Any:
    return await client.post(
        "/v1/me/mutual-aid",
        json={
            "relative_id_number": relative.id_number,
            "relative_name": relative.name,
            "relation": relation,
        },
        headers=holder_.headers,
    )


async def _authorised(
    client: Client, holder_: Holder, relative: Holder, relation: str = "child"
) -> str:
    response = await _authorise(client, holder_, relative, relation)
    assert response.status_code == 201, response.text
    return str(response.json()["authorisation_id"])


def _bill(token: str, amount: int, **more: Any) -> dict[str, Any]:
    return {
        "ec_token": token,
        "med_type": "11",
        "items": [{"code": "A001", "name": "阿莫西林", "item_class": "A", "amount": amount}],
        "use_account": True,
        "mutual_aid": True,
        **more,
    }


async def _settle(client: Client, hospital: dict[str, str], body: dict[str, Any]) -> Any:
    return await client.post(
        "/v1/settlements",
        json=body,
        headers={**hospital, "Idempotency-Key": str(uuid.uuid4())},
    )


async def _balance(runtime: Runtime, person: Holder) -> int | None:
    async with runtime.sessions() as session:
        value: int | None = await session.scalar(
            select(Account.balance).where(Account.person_id == person.person_id)
        )
    return value


def _invariants(reply: dict[str, Any]) -> None:
    paid = ("fund_paid", "account_paid", "account_mutual_aid_paid", "cash_paid")
    assert reply["total"] == sum(reply[k] for k in paid)
    payments = [s["amount"] for s in reply["steps"] if s["part"] == "payment"]
    assert sum(payments) == reply["total"] - reply["fund_paid"]


async def test_resident_child_bill_paid_from_a_parents_account(
    client: Client, runtime: Runtime
) -> None:
    await load_policies(runtime)
    parent = await _person(client, runtime, "张三", balance=5_000)
    child = await _child(client, runtime)
    hospital = await institution(client, runtime)
    await _authorised(client, parent, child)
    body = _bill(await ec_token(client, runtime, child, hospital), 10_000)
    # Resident outpatient at level 3: no deductible, fund 10,000 × 0.3 = 3,000; personal 7,000.
    # The child has no account (0, and why); the parent's 5,000 all goes; cash 2,000.
    preview = (await client.post("/v1/settlements/preview", json=body, headers=hospital)).json()
    response = await _settle(client, hospital, body)
    assert response.status_code == 201, response.text
    reply = response.json()
    expected = {
        "total": 10_000,
        "fund_paid": 3_000,
        "account_paid": 0,
        "account_mutual_aid_paid": 5_000,
        "cash_paid": 2_000,
        "balance_after": None,
    }
    assert {k: reply[k] for k in expected} == expected
    assert {k: preview[k] for k in expected} == expected
    _invariants(reply)
    payment = [(s["rule"], s["amount"]) for s in reply["steps"] if s["part"] == "payment"]
    assert payment == [("account", 0), ("mutual_aid", 5_000), ("cash", 2_000)]
    assert await _balance(runtime, parent) == 0
    sid = reply["settlement_id"]
    async with runtime.sessions() as session:
        stored = await session.get(Settlement, uuid.UUID(sid))
        assert stored is not None
        assert stored.detail is not None
        assert stored.detail["account_mutual_aid_paid"] == 5_000
        assert stored.cash_paid == 2_000
    # The parent's ledger: a family debit naming the child, masked.
    moves = (await client.get("/v1/me/account/transactions", headers=parent.headers)).json()
    family = [t for t in moves["items"] if t["kind"] == "family"]
    assert len(family) == 1
    assert family[0]["amount"] == -5_000
    assert family[0]["settlement_id"] == sid
    assert family[0]["relative"]["name"] == mask_name("张小明")
    assert family[0]["relative"]["relation"] == "child"
    assert child.id_number not in str(moves)
    # The child's settlements: what mutual aid paid and whose account it was, masked.
    mine = (await client.get("/v1/me/settlements", headers=child.headers)).json()["items"]
    assert mine[0]["account_mutual_aid_paid"] == 5_000
    assert mine[0]["mutual_aid"] == [
        {
            "holder": {
                "name": mask_name("张三"),
                "id_number": mine[0]["mutual_aid"][0]["holder"]["id_number"],
                "relation": "child",
            },
            "amount": 5_000,
        }
    ]
    assert parent.id_number not in str(mine)
    # The institution's view of the settlement carries the field too.
    view = (await client.get(f"/v1/settlements/{sid}", headers=hospital)).json()
    assert view["account_mutual_aid_paid"] == 5_000


async def test_two_holders_pay_in_the_order_they_authorised(
    client: Client, runtime: Runtime
) -> None:
    await load_policies(runtime)
    mother = await _person(client, runtime, "李红", balance=3_000)
    father = await _person(client, runtime, "张三", balance=10_000)
    child = await _child(client, runtime)
    hospital = await institution(client, runtime)
    await _authorised(client, mother, child)
    await _authorised(client, father, child)
    # A visit (2207) through the same booking path: one class A line of 10,000.
    visit = await opened(client, runtime, child, hospital)
    fees = await client.post(
        f"/v1/visits/{visit}/fees",
        json={"lines": [line("1", "A001", "1", 10_000, item_class="A")]},
        headers=hospital,
    )
    assert fees.status_code == 200, fees.text
    response = await settle(client, hospital, visit, {"use_account": True, "mutual_aid": True})
    assert response.status_code == 201, response.text
    reply = response.json()
    # Fund 3,000; personal 7,000: the mother (authorised first) 3,000, the father 4,000.
    assert (reply["fund_paid"], reply["account_mutual_aid_paid"], reply["cash_paid"]) == (
        3_000,
        7_000,
        0,
    )
    assert reply["person_paid"] == 7_000
    _invariants(reply)
    assert (await _balance(runtime, mother), await _balance(runtime, father)) == (0, 6_000)
    async with runtime.sessions() as session:
        draws = (await session.scalars(select(MutualAidDraw).order_by(MutualAidDraw.seq))).all()
    assert [(d.holder_id, d.amount) for d in draws] == [
        (mother.person_id, 3_000),
        (father.person_id, 4_000),
    ]
    # The visit's stored settlement keeps the §7 field.
    shown = (await client.get(f"/v1/visits/{visit}", headers=hospital)).json()
    assert shown["settlements"][0]["account_mutual_aid_paid"] == 7_000


async def test_own_account_first_then_the_family(client: Client, runtime: Runtime) -> None:
    await load_policies(runtime)
    spouse = await _person(client, runtime, "李红", balance=50_000)
    me = await _person(client, runtime, "张三", balance=2_000)
    hospital = await institution(client, runtime)
    await _authorised(client, spouse, me, "spouse")
    body = _bill(await ec_token(client, runtime, me, hospital), 6_000)
    # Employee outpatient within the 100,000 deductible: all 6,000 is personal. Own account
    # 2,000 first, then the spouse's 4,000; no cash.
    reply = (await _settle(client, hospital, body)).json()
    assert (reply["account_paid"], reply["account_mutual_aid_paid"], reply["cash_paid"]) == (
        2_000,
        4_000,
        0,
    )
    assert reply["balance_after"] == 0
    assert (await _balance(runtime, me), await _balance(runtime, spouse)) == (0, 46_000)


async def test_mutual_aid_without_authorisation_is_zero_not_an_error(
    client: Client, runtime: Runtime
) -> None:
    await load_policies(runtime)
    child = await _child(client, runtime)
    hospital = await institution(client, runtime)
    body = _bill(await ec_token(client, runtime, child, hospital), 10_000)
    reply = (await _settle(client, hospital, body)).json()
    # Fund 3,000; nobody authorised: mutual aid 0, cash 7,000.
    assert (reply["account_mutual_aid_paid"], reply["cash_paid"]) == (0, 7_000)
    steps = {s["rule"]: s for s in reply["steps"] if s["part"] == "payment"}
    assert steps["mutual_aid"]["amount"] == 0
    # use_account for a resident is answered: 0 from the account, and why.
    assert steps["account"]["amount"] == 0
    assert "No personal account" in steps["account"]["text_en"]


async def test_revocation_stops_it(client: Client, runtime: Runtime) -> None:
    await load_policies(runtime)
    parent = await _person(client, runtime, "张三", balance=5_000)
    child = await _child(client, runtime)
    hospital = await institution(client, runtime)
    auth = await _authorised(client, parent, child)
    # Both sides list it, each seeing the other masked.
    theirs = (await client.get("/v1/me/mutual-aid", headers=child.headers)).json()
    assert [(a["authorisation_id"], a["role"]) for a in theirs] == [(auth, "relative")]
    assert theirs[0]["person"]["name"] == mask_name("张三")
    assert parent.id_number not in str(theirs)
    # Only the holder may revoke.
    refused = await client.delete(f"/v1/me/mutual-aid/{auth}", headers=child.headers)
    assert refused.status_code == 404
    assert refused.json()["code"] == "mutual_aid_not_found"
    gone = await client.delete(f"/v1/me/mutual-aid/{auth}", headers=parent.headers)
    assert gone.status_code == 204
    again = await client.delete(f"/v1/me/mutual-aid/{auth}", headers=parent.headers)
    assert again.status_code == 404
    assert (await client.get("/v1/me/mutual-aid", headers=parent.headers)).json() == []
    body = _bill(await ec_token(client, runtime, child, hospital), 10_000)
    reply = (await _settle(client, hospital, body)).json()
    assert (reply["account_mutual_aid_paid"], reply["cash_paid"]) == (0, 7_000)
    assert await _balance(runtime, parent) == 5_000
    # Authorising again makes a new live row; the revoked one stays for the record.
    assert await _authorised(client, parent, child) != auth
    async with runtime.sessions() as session:
        rows = (await session.scalars(select(MutualAidAuthorisation))).all()
    assert sorted(r.revoked_at is None for r in rows) == [False, True]
    # Every change is audited on the holder, by the channel that acted.
    async with runtime.sessions() as session:
        audited = (
            await session.execute(
                select(AuditEvent.action, AuditEvent.person_id)
                .where(AuditEvent.action.in_(("mutual_aid.authorise", "mutual_aid.revoke")))
                .order_by(AuditEvent.id)
            )
        ).all()
    assert [a for a, _ in audited] == [
        "mutual_aid.authorise",
        "mutual_aid.revoke",
        "mutual_aid.authorise",
    ]
    assert {p for _, p in audited} == {parent.person_id}


async def test_authorising_refusals_change_nothing(client: Client, runtime: Runtime) -> None:
    await load_policies(runtime)
    parent = await _person(client, runtime, "张三", balance=5_000)
    child = await _child(client, runtime)
    # A resident has no account to lend.
    resident = await client.post(
        "/v1/me/mutual-aid",
        json={
            "relative_id_number": parent.id_number,
            "relative_name": "张三",
            "relation": "parent",
        },
        headers=child.headers,
    )
    assert resident.status_code == 403
    assert resident.json()["code"] == "mutual_aid_not_allowed"
    # An unknown ID number and a wrong name get one and the same answer.
    answers = []
    for number, name in ((id_number(birth=CHILD_BIRTH), "张小明"), (child.id_number, "王五")):
        response = await client.post(
            "/v1/me/mutual-aid",
            json={"relative_id_number": number, "relative_name": name, "relation": "child"},
            headers=parent.headers,
        )
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        answers.append((response.json()["code"], response.json()["detail"]))
    assert answers[0] == answers[1] == ("relative_not_matched", answers[0][1])
    myself = await _authorise(client, parent, parent, "spouse")
    assert (myself.status_code, myself.json()["code"]) == (422, "mutual_aid_self")
    bad = await client.post(
        "/v1/me/mutual-aid",
        json={
            "relative_id_number": child.id_number,
            "relative_name": child.name,
            "relation": "cousin",
        },
        headers=parent.headers,
    )
    assert bad.status_code == 400
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(MutualAidAuthorisation)) == 0
    # The same pair twice: one live authorisation.
    first = await _authorised(client, parent, child)
    assert await _authorised(client, parent, child) == first


async def test_two_relatives_settling_at_once_never_overdraw_the_holder(
    client: Client, runtime: Runtime
) -> None:
    await load_policies(runtime)
    parent = await _person(client, runtime, "张三", balance=10_000)
    children = [await _child(client, runtime, name) for name in ("张小明", "张小红")]
    hospital = await institution(client, runtime)
    for child in children:
        await _authorised(client, parent, child)
    # Six bills of 10,000 (personal 7,000 each), three per child, at once: together they want
    # 42,000 of the parent's 10,000.
    bodies = [
        _bill(await ec_token(client, runtime, child, hospital), 10_000)
        for child in children
        for _ in range(3)
    ]
    responses = await asyncio.gather(*(_settle(client, hospital, b) for b in bodies))
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    drawn = sum(r.json()["account_mutual_aid_paid"] for r in responses)
    for r in responses:
        _invariants(r.json())
    assert drawn == 10_000  # all of it, and not a fen more
    assert await _balance(runtime, parent) == 0
    async with runtime.sessions() as session:
        ledger = await session.scalar(
            select(func.sum(LedgerEntry.amount)).where(LedgerEntry.kind == "family")
        )
    assert ledger == -10_000


async def test_spouses_drawing_on_each_other_at_once_do_not_deadlock(
    client: Client, runtime: Runtime
) -> None:
    await load_policies(runtime)
    a = await _person(client, runtime, "张三", balance=1_000)
    b = await _person(client, runtime, "李红", balance=1_000)
    hospital = await institution(client, runtime)
    await _authorised(client, a, b, "spouse")
    await _authorised(client, b, a, "spouse")
    # Each bill (employee, within the deductible: all personal) 1,500: own 1,000, then the
    # other's. Locks are taken in person order, so the two wait instead of deadlocking.
    bodies = [_bill(await ec_token(client, runtime, p, hospital), 1_500) for p in (a, b, a, b)]
    responses = await asyncio.gather(*(_settle(client, hospital, x) for x in bodies))
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    replies = [r.json() for r in responses]
    paid = sum(r["account_paid"] + r["account_mutual_aid_paid"] for r in replies)
    assert paid == 2_000  # both accounts emptied, exactly
    assert (await _balance(runtime, a), await _balance(runtime, b)) == (0, 0)


async def test_reversal_gives_the_mutual_aid_back_to_the_holders(
    client: Client, runtime: Runtime
) -> None:
    await load_policies(runtime)
    mother = await _person(client, runtime, "李红", balance=3_000)
    father = await _person(client, runtime, "张三", balance=10_000)
    child = await _child(client, runtime)
    hospital = await institution(client, runtime)
    await _authorised(client, mother, child)
    await _authorised(client, father, child)
    reply = (
        await _settle(
            client, hospital, _bill(await ec_token(client, runtime, child, hospital), 10_000)
        )
    ).json()
    sid = reply["settlement_id"]
    # Paid: fund 3,000, mutual aid 7,000 (mother 3,000, father 4,000), cash 0.
    assert (reply["fund_paid"], reply["account_mutual_aid_paid"]) == (3_000, 7_000)

    async def reverse(amount: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"reason": "退费"}
        if amount is not None:
            body["amount"] = amount
        response = await client.post(
            f"/v1/settlements/{sid}/reversal",
            json=body,
            headers={**hospital, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert response.status_code in (200, 201), response.text
        return dict(response.json())

    # 1,000 of 10,000 back: pools in proportion 3,000 : 7,000 → fund 300, mutual aid 700; the
    # last drawn (the father) gets it back first.
    part = await reverse(1_000)
    assert (part["fund_refund"], part["account_mutual_aid_refund"]) == (300, 700)
    assert (await _balance(runtime, mother), await _balance(runtime, father)) == (0, 6_700)
    # The rest: mutual aid 6,300 more — the father's remaining 3,300, then the mother's 3,000.
    rest = await reverse()
    assert rest["account_mutual_aid_refund"] == 6_300
    assert rest["fund_refund"] == 2_700
    assert (await _balance(runtime, mother), await _balance(runtime, father)) == (3_000, 10_000)
    async with runtime.sessions() as session:
        draws = (await session.scalars(select(MutualAidDraw))).all()
        family = (
            await session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "family"))
        ).all()
    assert all(d.refunded == d.amount for d in draws)
    assert sum(e.amount for e in family) == 0
    # Nothing left to reverse.
    again = await client.post(
        f"/v1/settlements/{sid}/reversal",
        json={"reason": "again"},
        headers={**hospital, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert (again.status_code, again.json()["code"]) == (422, "reversal_exceeds_settlement")
    assert (await _balance(runtime, mother), await _balance(runtime, father)) == (3_000, 10_000)


@given(
    st.lists(st.integers(0, 10_000), max_size=5),
    st.integers(0, 60_000),
)
def test_the_plan_takes_each_account_in_order_and_never_more_than_it_holds(
    held: list[int], wanted: int
) -> None:
    auths = [
        MutualAidAuthorisation(id=uuid.uuid4(), holder_id=uuid.uuid4(), relation="child")
        for _ in held
    ]
    balances = {a.holder_id: h for a, h in zip(auths, held, strict=True)}
    amount = min(wanted, sum(held))
    draws = plan(amount, auths, balances)
    assert sum(d.amount for d in draws) == amount
    assert all(0 < d.amount <= balances[d.authorisation.holder_id] for d in draws)
    # Greedy in order: every account before the last one drawn is emptied.
    taken = {d.authorisation.holder_id: d.amount for d in draws}
    if draws:
        last = auths.index(draws[-1].authorisation)
        assert all(taken.get(a.holder_id, 0) == balances[a.holder_id] for a in auths[:last])


async def test_a_line_return_gives_mutual_aid_back_to_the_holder(
    client: Client, runtime: Runtime
) -> None:
    """A return re-prices with what the relatives' accounts held when the bill was settled."""
    await load_policies(runtime)
    parent = await _person(client, runtime, "张三", balance=5_000)
    child = await _child(client, runtime)
    hospital = await institution(client, runtime)
    await _authorised(client, parent, child)
    body = _bill(await ec_token(client, runtime, child, hospital), 6_000)
    body["items"].append({"code": "A002", "name": "布洛芬", "item_class": "A", "amount": 4_000})
    # 10,000 resident outpatient at level 3: fund 3,000; the parent's 5,000; cash 2,000.
    settled = (await _settle(client, hospital, body)).json()
    assert (settled["fund_paid"], settled["account_mutual_aid_paid"], settled["cash_paid"]) == (
        3_000,
        5_000,
        2_000,
    )
    sid = settled["settlement_id"]
    # Return item 2 (4,000): 6,000 remain; fund 1,800; personal 4,200, all from the parent's
    # 5,000 as it stood. So: fund 1,200, mutual aid 800 and cash 2,000 come back.
    back = await client.post(
        f"/v1/settlements/{sid}/reversal",
        json={"reason": "returned", "lines": [{"line_no": "2", "quantity": "1"}]},
        headers={**hospital, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert back.status_code == 201, back.text
    assert back.json()["refunds"] == {
        "fund": 1_200,
        "account": 0,
        "account_mutual_aid": 800,
        "cash": 2_000,
    }
    assert back.json()["repriced"]["account_mutual_aid_paid"] == 4_200
    assert await _balance(runtime, parent) == 800
    # The full cancel gives the parent the rest.
    cancel = await client.post(
        f"/v1/settlements/{sid}/reversal",
        json={"reason": "cancelled"},
        headers={**hospital, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert cancel.status_code == 201, cancel.text
    assert cancel.json()["refunds"]["account_mutual_aid"] == 4_200
    assert await _balance(runtime, parent) == 5_000
