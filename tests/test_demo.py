"""`ecert demo` seeding: realistic, valid, and idempotent on re-run."""

from __future__ import annotations

from sqlalchemy import func, select

from ecert.db.models import Account, Card, Client, Contribution, LedgerEntry, Person, PolicyRow
from ecert.demo import seed_demo
from ecert.runtime import Runtime


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
    second = await seed_demo(runtime, people=20)
    assert second["clients"] is None  # secrets are shown once; the first run's file keeps them
    assert await _counts(runtime) == before
