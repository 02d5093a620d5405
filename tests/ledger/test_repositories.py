"""The ledger's queries on both backends: the guarded move, and what mutual aid may draw on."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from ecert import ledger
from ecert.db.models import LedgerEntry, MutualAidAuthorisation, Person, utcnow
from ecert.server.runtime import Runtime
from tests.factories import add_person


async def test_a_guarded_move_refuses_an_overdraft_and_writes_nothing(runtime: Runtime) -> None:
    person, _ = await add_person(runtime)
    async with runtime.sessions.begin() as session:
        assert await ledger.credit(session, person.id, 1_000, "start") == 1_000
    with pytest.raises(ledger.InsufficientBalance):
        async with runtime.sessions.begin() as session:
            await ledger.move(session, person.id, -1_001, kind="debit")
    async with runtime.sessions.begin() as session:
        assert await ledger.move(session, person.id, -400, kind="debit", memo="H1") == 600
    async with runtime.sessions() as session:
        assert await ledger.balance(session, person.id) == 600
        rows = (await session.scalars(select(LedgerEntry).order_by(LedgerEntry.id))).all()
        assert [(r.kind, r.amount, r.balance_after) for r in rows] == [
            ("credit", 1_000, 1_000),
            ("debit", -400, 600),
        ]


async def test_mutual_aid_draws_on_live_authorisations_of_account_holders_oldest_first(
    runtime: Runtime,
) -> None:
    relative, _ = await add_person(
        runtime, name="张小明", category="resident", insurance_type="390"
    )
    first, _ = await add_person(runtime, name="张一")
    retired, _ = await add_person(runtime, name="张二", category="retired")
    revoked, _ = await add_person(runtime, name="张三")
    moved_on, _ = await add_person(runtime, name="张四")
    start = utcnow() - dt.timedelta(days=1)
    async with runtime.sessions.begin() as session:
        # Created in reverse: the drawing order is the authorisations' age, not insertion.
        for age, (holder, balance) in enumerate(
            [(moved_on, 5_000), (revoked, 7_000), (retired, 1_000), (first, 3_000)]
        ):
            await ledger.credit(session, holder.id, balance, "start")
            session.add(
                MutualAidAuthorisation(
                    holder_id=holder.id,
                    relative_id=relative.id,
                    relation="child",
                    channel="test",
                    created_at=start + dt.timedelta(minutes=10 - age),
                    revoked_at=utcnow() if holder is revoked else None,
                )
            )
    async with runtime.sessions.begin() as session:
        # No longer an employee or retiree: their account no longer pays for relatives.
        changed = await session.get(Person, moved_on.id)
        assert changed is not None
        changed.category = "resident"
    async with runtime.sessions() as session:
        sources = await ledger.mutual_aid_sources(session, relative.id)
        assert [a.holder_id for a in sources] == [first.id, retired.id]
        assert await ledger.holder_balances(session, [first.id, retired.id]) == {
            first.id: 3_000,
            retired.id: 1_000,
        }
        assert await ledger.mutual_aid_available(session, relative.id) == 4_000
        assert await ledger.mutual_aid_available(session, first.id) == 0
        assert await session.scalar(select(func.count()).select_from(LedgerEntry)) == 4
