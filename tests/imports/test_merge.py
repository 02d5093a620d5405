"""The contributions merge credits each paid month once: across batches, on re-import, with a
month repeated in one batch, and with two imports of overlapping files at once (PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select

from ecert.db.models import Account, Contribution, LedgerEntry
from ecert.imports import services
from ecert.imports.readers import rows
from ecert.imports.schemas import Reject
from ecert.server.runtime import Runtime
from tests.factories import new_id_number

PEOPLE = [new_id_number("370102", dt.date(1970, 1, 1) + dt.timedelta(days=i)) for i in range(4)]
HEADER = "id_number,month,base,employer_amount,employee_amount,account_credit,status\n"


def _persons() -> str:
    return "id_number,name,area,category\n" + "".join(
        f"{n},测试{i},370102,employee\n" for i, n in enumerate(PEOPLE)
    )


def _months(months: range, status: str = "paid") -> str:
    return HEADER + "".join(
        f"{n},2026{m:02d},800000,64000,16000,{100 * m},{status}\n" for n in PEOPLE for m in months
    )


async def _import(runtime: Runtime, kind: str, text: str) -> tuple[int, list[Reject]]:
    rejects: list[Reject] = []
    accepted = await services.run_import(
        runtime, kind, rows(text.splitlines(keepends=True), "csv"), on_reject=rejects.append
    )
    return accepted, rejects


async def _totals(runtime: Runtime) -> tuple[int, int, int, int]:
    """(sum of balances, sum of credit rows, credit rows, contribution rows)."""
    async with runtime.sessions() as session:
        balances = await session.scalar(select(func.coalesce(func.sum(Account.balance), 0)))
        credits = (
            await session.execute(
                select(func.coalesce(func.sum(LedgerEntry.amount), 0), func.count())
            )
        ).one()
        months = await session.scalar(select(func.count()).select_from(Contribution))
    return int(balances or 0), int(credits[0]), int(credits[1]), int(months or 0)


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    # Several batches per file, so batch boundaries are crossed on both paths.
    monkeypatch.setattr(services, "BATCH", 5)
    monkeypatch.setattr(services, "MERGE_BATCH", 5)


@pytest.mark.usefixtures("small_batches")
async def test_reimport_after_the_merge_credits_nothing_twice(runtime: Runtime) -> None:
    await _import(runtime, "persons", _persons())
    first = _months(range(1, 7))
    # The same month twice in one batch: the later line wins and credits once.
    repeated = f"{PEOPLE[0]},202601,800000,64000,16000,100,paid\n"
    assert await _import(runtime, "contributions", first + repeated) == (25, [])
    expected = 4 * sum(100 * m for m in range(1, 7))
    assert await _totals(runtime) == (expected, expected, 24, 24)
    assert await _import(runtime, "contributions", first) == (24, [])
    assert await _totals(runtime) == (expected, expected, 24, 24)


@pytest.mark.usefixtures("small_batches")
async def test_arrears_then_back_paid_credit_once_across_batches(runtime: Runtime) -> None:
    await _import(runtime, "persons", _persons())
    await _import(runtime, "contributions", _months(range(1, 4), "arrears"))
    assert await _totals(runtime) == (0, 0, 0, 12)
    back_paid = _months(range(1, 4), "back_paid")
    for _ in range(2):
        await _import(runtime, "contributions", back_paid)
        assert await _totals(runtime) == (4 * 600, 4 * 600, 12, 12)


@pytest.mark.postgres  # SQLite runs one writer at a time; PostgreSQL's row locks are the point
@pytest.mark.usefixtures("small_batches")
async def test_two_overlapping_imports_at_once_credit_each_month_once(runtime: Runtime) -> None:
    await _import(runtime, "persons", _persons())
    await _import(runtime, "contributions", _months(range(1, 3), "arrears"))
    # Both files bring months 3–6 (new rows) and back-pay months 1–2 (existing rows).
    one = _months(range(1, 7), "back_paid")
    two = _months(range(1, 3), "back_paid") + _months(range(3, 9)).removeprefix(HEADER)
    results = await asyncio.gather(
        _import(runtime, "contributions", one), _import(runtime, "contributions", two)
    )
    assert [accepted for accepted, _ in results] == [24, 32]
    expected = 4 * sum(100 * m for m in range(1, 9))
    assert await _totals(runtime) == (expected, expected, 32, 32)
