"""``ecert purge``: delete the short-lived rows past their retention, in small batches.

Each batch is its own short transaction (``DELETE … WHERE id IN (SELECT id … LIMIT n)``), so
traffic never waits long on a purge and an interrupted purge keeps what it did. Only rows older
than a cutoff taken once at the start are touched: running it again, or twice at once, deletes
nothing that should stay. The audit log is not purged here (see docs/operations.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from ecert.clock import utcnow
from ecert.config import Settings
from ecert.db.models import EcToken, IdempotencyRecord, NumericCode, QrUse, UsedJti
from ecert.ops import repositories

DEFAULT_BATCH = 5_000


@dataclass(frozen=True)
class Target:
    """A purged table: rows whose ``column`` is older than ``setting`` seconds go."""

    table: Table
    column: str
    setting: str

    @property
    def name(self) -> str:
        return self.table.name

    def cutoff(self, settings: Settings, now: dt.datetime) -> dt.datetime:
        return now - dt.timedelta(seconds=getattr(settings, self.setting))

    def old(self, cutoff: dt.datetime) -> ColumnElement[bool]:
        return self.table.c[self.column] < cutoff


def _table(model: object) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


TARGETS = (
    Target(_table(QrUse), "at", "retention_qr_uses_s"),
    Target(_table(UsedJti), "expires_at", "retention_used_jtis_s"),
    Target(_table(EcToken), "expires_at", "retention_ec_tokens_s"),
    Target(_table(NumericCode), "expires_at", "retention_numeric_codes_s"),
    Target(_table(IdempotencyRecord), "started_at", "retention_idempotency_s"),
)


async def count_expired(
    engine: AsyncEngine, settings: Settings, now: dt.datetime
) -> dict[str, int]:
    """Rows each table would lose now (what ``--dry-run`` prints, and the progress totals)."""
    counts: dict[str, int] = {}
    async with engine.connect() as connection:
        for target in TARGETS:
            old = target.old(target.cutoff(settings, now))
            counts[target.name] = await repositories.count_where(connection, old)
    return counts


async def purge_table(
    engine: AsyncEngine,
    target: Target,
    cutoff: dt.datetime,
    *,
    batch: int = DEFAULT_BATCH,
    advance: Callable[[int], None] = lambda _: None,
) -> int:
    """Delete ``target``'s rows older than ``cutoff``, ``batch`` rows a transaction."""
    removed = 0
    while True:
        async with engine.begin() as connection:
            done = await repositories.delete_batch(
                connection, target.table, target.old(cutoff), batch
            )
        removed += done
        advance(done)
        if done < batch:
            return removed


async def purge(
    engine: AsyncEngine,
    settings: Settings,
    *,
    now: dt.datetime | None = None,
    batch: int = DEFAULT_BATCH,
    advance: Callable[[str, int], None] = lambda _, __: None,
) -> dict[str, int]:
    """Purge every target; the rows deleted per table."""
    now = now or utcnow()
    removed: dict[str, int] = {}
    for target in TARGETS:
        removed[target.name] = await purge_table(
            engine,
            target,
            target.cutoff(settings, now),
            batch=batch,
            advance=lambda n, name=target.name: advance(name, n),  # type: ignore[misc]
        )
    return removed
