"""`ecert demo` seeding: realistic, valid, and idempotent on re-run."""

from __future__ import annotations

from sqlalchemy import delete, func, select

from ecert.db.models import (
    Account,
    Card,
    Client,
    Contribution,
    LedgerEntry,
    Person,
    PolicyRow,
    Staff,
)
from ecert.demo import seed_demo
from ecert.server.runtime import Runtime


async def _counts(runtime: Runtime) -> dict[str, int]:
    async with runtime.sessions() as session:
        counts = {}
        for model in (Person, Contribution, LedgerEntry, Card, Client, PolicyRow):
            counts[model.__name__] = int(
                await session.scalar(select(func.count()).select_from(model)) or 0
            )
        counts["balance"] = int(await session.scalar(select(func.sum(Account.balance))) or 0)
        return counts


async def test_demo_seed_is_idempotent(runtime: Runtime) -> None:
    first = await seed_demo(runtime, people=20)
    assert first["clients"] is not None
    assert set(first["clients"]) == {"channel", "hospital", "pharmacy", "agency"}
    before = await _counts(runtime)
    assert before["Person"] == 20
    assert before["Card"] == 20
    assert before["Contribution"] > 0
    assert before["balance"] > 0
    assert before["PolicyRow"] == 8
    assert set(first["staff"]) == {"clerk", "supervisor", "operator"}
    second = await seed_demo(runtime, people=20)
    assert second["clients"] is None  # secrets are shown once; the first run's file keeps them
    assert second["staff"] is None
    assert await _counts(runtime) == before


async def test_demo_made_before_staff_accounts_gets_them(runtime: Runtime) -> None:
    await seed_demo(runtime, people=2)
    async with runtime.sessions.begin() as session:
        await session.execute(delete(Staff))
    again = await seed_demo(runtime, people=2)
    assert again["clients"] is None
    assert set(again["staff"]) == {"clerk", "supervisor", "operator"}
