"""Fee lines (2204/2205) over HTTP: the catalogue classifies, retries are no-ops, bad lines
change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from ecert.db.models import FeeLine
from ecert.server.runtime import Runtime
from tests.helpers import Client
from tests.settlement.visit_steps import (
    AMOXICILLIN,
    CEFIXIME,
    CONSULTATION,
    COSMETIC,
    MENOTROPHIN,
    PARACETAMOL,
    line,
    load_catalogue,
    opened,
    setup,
)

SHARES = ("amount", "fully_self_paid", "over_limit_self_paid", "first_self_paid", "eligible_amount")


def _by_no(reply: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {s["line_no"]: (*(s[k] for k in SHARES), s["reason"]) for s in reply["lines"]}


async def _post(client: Client, headers: dict[str, str], visit_id: str, *lines: Any) -> Any:
    return await client.post(
        f"/v1/visits/{visit_id}/fees", json={"lines": list(lines)}, headers=headers
    )


async def _count(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(FeeLine)) or 0)


async def test_the_catalogue_classifies_each_line_by_hand(client: Client, runtime: Runtime) -> None:
    await load_catalogue(runtime)
    person, hospital = await setup(client, runtime, gender="M")
    visit_id = await opened(client, runtime, person, hospital)
    reply = await _post(
        client,
        hospital,
        visit_id,
        line("1", AMOXICILLIN, "2", 1_250),  # A: 2,500 eligible
        line("2", CEFIXIME, "1.5", 3_333),  # 4,999.5 → 5,000; B 10 %: 500 first self-paid
        line("3", CONSULTATION, "1", 1_500),  # cap 1,000: 500 over the limit
        line("4", COSMETIC, "1", 20_000),  # C: fully self-paid
        line("5", "NOT-LISTED", "0.5", 999, item_class="A"),  # 499.5 → 500, not listed: C
        line("6", MENOTROPHIN, "1", 8_000),  # women only: C for him
        line("7", PARACETAMOL, "3", 100),  # expired: C
    )
    assert reply.status_code == 200, reply.text
    assert _by_no(reply.json()) == {
        "1": (2_500, 0, 0, 0, 2_500, "catalogue"),
        "2": (5_000, 0, 0, 500, 4_500, "catalogue"),
        "3": (1_500, 0, 500, 0, 1_000, "catalogue"),
        "4": (20_000, 20_000, 0, 0, 0, "catalogue"),
        "5": (500, 500, 0, 0, 0, "not_in_catalogue"),
        "6": (8_000, 8_000, 0, 0, 0, "gender_restricted"),
        "7": (300, 300, 0, 0, 0, "outside_validity"),
    }
    shown = (await client.get(f"/v1/visits/{visit_id}", headers=hospital)).json()
    assert {s["line_no"]: s["quantity"] for s in shown["lines"]}["2"] == "1.5"
    assert _by_no(shown) == _by_no(reply.json())


async def test_without_a_catalogue_the_hospital_class_stands(
    client: Client, runtime: Runtime
) -> None:
    person, hospital = await setup(client, runtime)
    visit_id = await opened(client, runtime, person, hospital)
    reply = await _post(
        client,
        hospital,
        visit_id,
        line("1", "ANY", "1", 10_000, item_class="B", first_self_pay_ratio=0.2),
        line("2", "ANY2", "1", 3_000),  # no class declared: fully self-paid
    )
    assert _by_no(reply.json()) == {
        "1": (10_000, 0, 0, 2_000, 8_000, "hospital_declared"),
        "2": (3_000, 3_000, 0, 0, 0, "hospital_declared"),
    }


async def test_same_line_again_is_a_no_op_and_a_different_one_conflicts(
    client: Client, runtime: Runtime
) -> None:
    person, hospital = await setup(client, runtime)
    visit_id = await opened(client, runtime, person, hospital)
    first = await _post(client, hospital, visit_id, line("1", "X", "2", 100, item_class="A"))
    assert first.status_code == 200, first.text
    # The same line, re-sent (quantity written differently, amount now given): nothing changes.
    again = await _post(
        client, hospital, visit_id, line("1", "X", "2.0", 100, item_class="A", amount=200)
    )
    assert (again.status_code, again.json()) == (200, first.json())
    other = await _post(client, hospital, visit_id, line("1", "X", "3", 100, item_class="A"))
    assert (other.status_code, other.json()["code"]) == (409, "fee_line_conflict")
    twice = await _post(client, hospital, visit_id, line("2", "Y", "1", 1), line("2", "Y", "1", 2))
    assert (twice.status_code, twice.json()["code"]) == (409, "fee_line_conflict")
    assert await _count(runtime) == 1


@pytest.mark.parametrize(
    ("quantity", "amount", "code"),
    [
        ("1.23456", None, "fee_quantity_invalid"),  # five places
        ("1.00000", None, "fee_quantity_invalid"),
        ("-1", None, "fee_quantity_invalid"),
        ("0", None, "fee_quantity_invalid"),
        ("0.0000", None, "fee_quantity_invalid"),
        ("1e3", None, "fee_quantity_invalid"),
        ("NaN", None, "fee_quantity_invalid"),
        (" 1", None, "fee_quantity_invalid"),
        ("1.5", 4_999, "fee_amount_mismatch"),  # 1.5 × 3,333 = 4,999.5 → 5,000
    ],
)
async def test_bad_lines_are_refused_and_change_nothing(
    client: Client, runtime: Runtime, quantity: str, amount: int | None, code: str
) -> None:
    person, hospital = await setup(client, runtime)
    visit_id = await opened(client, runtime, person, hospital)
    bad = line("2", "X", quantity, 3_333, **({} if amount is None else {"amount": amount}))
    refused = await _post(client, hospital, visit_id, line("1", "X", "1", 1), bad)
    assert (refused.status_code, refused.json()["code"]) == (422, code)
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert await _count(runtime) == 0


async def test_delete_a_line_while_open(client: Client, runtime: Runtime) -> None:
    person, hospital = await setup(client, runtime)
    visit_id = await opened(client, runtime, person, hospital)
    await _post(client, hospital, visit_id, line("1", "X", "1", 1), line("2", "Y", "1", 2))
    gone = await client.delete(f"/v1/visits/{visit_id}/fees/1", headers=hospital)
    assert gone.status_code == 204, gone.text
    again = await client.delete(f"/v1/visits/{visit_id}/fees/1", headers=hospital)
    assert (again.status_code, again.json()["code"]) == (404, "fee_line_not_found")
    shown = (await client.get(f"/v1/visits/{visit_id}", headers=hospital)).json()
    assert [s["line_no"] for s in shown["lines"]] == ["2"]
