"""Daily range partitions of the short-lived single-use tables on PostgreSQL (migration 0013).

``qr_uses``, ``used_jtis`` and ``numeric_codes`` are partitioned by ``expires_at``: the token's
or code's own expiry, fixed when it is signed or minted, so every replay of one code carries the
same partition key and meets the same unique key (docs/scaling.md). One partition a UTC day,
named ``<table>_pYYYYMMDD``, and a DEFAULT partition that catches rows of a day nobody created.

``ensure_ahead`` creates the next days' partitions (moving any rows the DEFAULT partition caught
for such a day into it); ``drop_older`` detaches and drops the partitions wholly older than a
floor. Each day is its own short transaction; both are idempotent. SQLite has none of this.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class Partitioned:
    table: str
    #: The unique key before partitioning (``expires_at`` is added to it).
    unique: tuple[str, ...]
    unique_name: str
    #: The column of its plain index (kept on the partitioned table).
    index_column: str
    #: The ``Settings`` retention (seconds) past which its partitions are dropped.
    retention: str


PARTITIONED = (
    Partitioned("qr_uses", ("iss", "sub", "jti"), "uq_qr_use", "at", "retention_qr_uses_s"),
    Partitioned(
        "used_jtis", ("issuer", "jti"), "uq_used_jti", "expires_at", "retention_used_jtis_s"
    ),
    Partitioned(
        "numeric_codes",
        ("code",),
        "uq_numeric_codes_code",
        "expires_at",
        "retention_numeric_codes_s",
    ),
)
PARTITIONED_TABLES = frozenset(p.table for p in PARTITIONED)


def _name(table: str, day: dt.date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def _bound(day: dt.date) -> str:
    return f"{day.isoformat()} 00:00:00+00"


def _days(start: dt.date, count: int) -> Iterator[dt.date]:
    return (start + dt.timedelta(days=n) for n in range(count))


def partitions(connection: Connection, table: str) -> dict[str, dt.date]:
    """The table's day partitions (name → day), DEFAULT left out."""
    rows = connection.execute(
        text(
            "SELECT c.relname FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname = :table"
        ),
        {"table": table},
    ).scalars()
    prefix = f"{table}_p"
    return {
        name: dt.datetime.strptime(name[len(prefix) :], "%Y%m%d").date()
        for name in rows
        if name.startswith(prefix) and name[len(prefix) :].isdigit()
    }


def create_day(connection: Connection, table: str, day: dt.date) -> bool:
    """Create one day's partition unless it exists; True when created. Rows the DEFAULT
    partition caught for that day move into it in the same transaction (ATTACH would refuse
    them otherwise); the DEFAULT partition is locked meanwhile so none arrive in between."""
    name = _name(table, day)
    if name in partitions(connection, table):
        return False
    lo, hi = _bound(day), _bound(day + dt.timedelta(days=1))
    connection.execute(text(f"LOCK TABLE {table}_default IN ACCESS EXCLUSIVE MODE"))
    connection.execute(text(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)"))
    # Identifiers come from PARTITIONED and dates, never from a caller's text.
    moved = (
        f"WITH moved AS (DELETE FROM {table}_default WHERE expires_at >= :lo "  # noqa: S608
        f"AND expires_at < :hi RETURNING *) INSERT INTO {name} SELECT * FROM moved"
    )
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    connection.execute(text(moved), {"lo": start, "hi": start + dt.timedelta(days=1)})
    connection.execute(
        text(f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ('{lo}') TO ('{hi}')")
    )
    return True


def drop_day(connection: Connection, table: str, name: str) -> None:
    """Detach and drop one partition: its rows go with it, no row-by-row delete."""
    connection.execute(text(f"ALTER TABLE {table} DETACH PARTITION {name}"))
    connection.execute(text(f"DROP TABLE {name}"))


def ensure_ahead(connection: Connection, today: dt.date, days: int) -> list[str]:
    """Create today's and the next ``days - 1`` days' partitions of every table (one
    transaction: the migration's). Returns the names created."""
    created = []
    for p in PARTITIONED:
        for day in _days(today, days):
            if create_day(connection, p.table, day):
                created.append(_name(p.table, day))
    return created


def older_than(connection: Connection, table: str, floor: dt.datetime) -> list[str]:
    """The table's partitions whose every row expired before ``floor`` (upper bound ≤ it)."""
    return sorted(
        name
        for name, day in partitions(connection, table).items()
        if dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC) <= floor
    )
