"""Random sequences of settle / retry / reverse / over-reverse, with the ledger invariants checked
after every step: I1 balance ≥ 0; I2 credits − debits + reversals = balance; I3 each
idempotency key applied at most once; I4 reversals never exceed the original."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from ecert.db.models import Account, LedgerEntry, Reversal, Settlement
from ecert.server.runtime import Runtime
from tests.factories import credit, ec_token, holder, institution, load_policies
from tests.helpers import Client

START = 20_000


async def _invariants(runtime: Runtime, keys_settled: set[str]) -> None:
    async with runtime.sessions() as session:
        balance = await session.scalar(select(Account.balance))
        kinds = select(LedgerEntry.kind, func.sum(LedgerEntry.amount)).group_by(LedgerEntry.kind)
        by_kind = {kind: int(total) for kind, total in (await session.execute(kinds)).all()}
        settlements = (await session.scalars(select(Settlement))).all()
        sums = select(Reversal.settlement_id, func.sum(Reversal.amount)).group_by(
            Reversal.settlement_id
        )
        reversed_sums = {sid: int(total) for sid, total in (await session.execute(sums)).all()}
    assert balance is not None
    assert balance >= 0  # I1
    assert (
        by_kind.get("credit", 0) + by_kind.get("debit", 0) + by_kind.get("reversal", 0) == balance
    )  # I2
    assert len(settlements) == len(keys_settled)  # I3
    for s in settlements:  # I4
        assert s.reversed_total == reversed_sums.get(s.id, 0) <= s.total
        assert s.reversed_account <= s.account_paid


@pytest.mark.parametrize("seed", [1, 2])
async def test_random_money_sequences_keep_the_invariants(
    client: Client, runtime: Runtime, seed: int
) -> None:
    rng = random.Random(seed)
    await load_policies(runtime)
    person = await holder(client, runtime)
    await credit(runtime, person.person_id, START)
    hospital = await institution(client, runtime, code="P37010200002", level="community")
    settled: dict[str, dict[str, Any]] = {}
    for _ in range(25):
        action = rng.choice(["settle", "settle", "retry", "reverse", "reverse_all", "over"])
        if action == "settle" or not settled:
            key = uuid.uuid4().hex
            body = {
                "ec_token": await ec_token(client, runtime, person, hospital),  # one a settlement
                "med_type": "41",
                "use_account": rng.random() < 0.8,
                "items": [
                    {
                        "code": "A",
                        "name": "药",
                        "item_class": rng.choice("ABC"),
                        "amount": rng.randrange(100, 9_000),
                    }
                ],
            }
            response = await client.post(
                "/v1/settlements", json=body, headers={**hospital, "Idempotency-Key": key}
            )
            assert response.status_code == 201, response.text
            settled[key] = {"body": body, "result": response.json()}
        elif action == "retry":
            key = rng.choice(list(settled))
            again = await client.post(
                "/v1/settlements",
                json=settled[key]["body"],
                headers={**hospital, "Idempotency-Key": key},
            )
            assert again.json() == settled[key]["result"]
        else:
            result = settled[rng.choice(list(settled))]["result"]
            sid = result["settlement_id"]
            amount = None if action == "reverse_all" else rng.randrange(1, result["total"] + 1)
            if action == "over":
                amount = result["total"] + 1
            body = {"reason": "test"} | ({"amount": amount} if amount else {})
            response = await client.post(
                f"/v1/settlements/{sid}/reversal",
                json=body,
                headers={**hospital, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert response.status_code in (201, 422), response.text
            if response.status_code == 422:
                assert response.json()["code"] == "reversal_exceeds_settlement"
        await _invariants(runtime, set(settled))
