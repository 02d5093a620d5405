"""``ecert db partitions`` (and the first step of ``ecert purge`` on PostgreSQL): create the
next days' partitions of the short-lived tables, detach and drop those past retention.

Each day created or dropped is its own short transaction, so a run can stop anywhere and the
next one finishes the job; running it twice changes nothing. On SQLite there is nothing to do.
"""

from __future__ import annotations

import datetime as dt

import msgspec
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ecert.config import Settings
from ecert.db.partitions import PARTITIONED, create_day, drop_day, older_than

DEFAULT_AHEAD = 7


class Maintained(msgspec.Struct):
    created: list[str]
    dropped: list[str]
    #: Why nothing was done, when the role may not (creating partitions needs the owner).
    skipped: str | None = None


#: SQLSTATE insufficient_privilege: the service's application role owns no table.
NOT_OWNER = "42501"


async def maintain(
    engine: AsyncEngine, settings: Settings, *, now: dt.datetime, ahead: int = DEFAULT_AHEAD
) -> Maintained:
    """Partitions for today and ``ahead - 1`` days after; drop those wholly past retention."""
    done = Maintained([], [])
    if engine.dialect.name != "postgresql":
        return done
    try:
        await _maintain(engine, settings, now, ahead, done)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != NOT_OWNER:
            raise
        done.skipped = "partitions need the tables' owner: run `ecert db partitions` as it"
    return done


async def _maintain(
    engine: AsyncEngine, settings: Settings, now: dt.datetime, ahead: int, done: Maintained
) -> None:
    today = now.astimezone(dt.UTC).date()
    for p in PARTITIONED:
        for n in range(ahead):
            day = today + dt.timedelta(days=n)
            async with engine.begin() as connection:
                if await connection.run_sync(create_day, p.table, day):
                    done.created.append(f"{p.table}_p{day:%Y%m%d}")
        floor = now - dt.timedelta(seconds=getattr(settings, p.retention))
        async with engine.connect() as connection:
            names = await connection.run_sync(older_than, p.table, floor)
        for name in names:
            async with engine.begin() as connection:
                await connection.run_sync(drop_day, p.table, name)
            done.dropped.append(name)
