"""partitions: on PostgreSQL, range-partition the short-lived single-use tables by day

``qr_uses``, ``used_jtis`` and ``numeric_codes`` become tables partitioned by their expiry (the
token's own ``exp``: fixed by the signed token, so a replay lands in the same partition), with a
DEFAULT partition and the next days created ahead; the partition key joins the primary and the
unique keys. ``qr_uses`` gains ``expires_at`` (the QR's ``exp``) on both databases; on SQLite the
tables stay plain and ``ecert purge`` deletes. ``ec_tokens`` and ``idempotency_records`` stay
plain tables (looked up by a value without a day; docs/scaling.md). Existing rows are copied;
downgrade copies them back into plain tables.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 03:00:00
"""

import datetime as dt
from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

from ecert.db.partitions import PARTITIONED, ensure_ahead

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Legacy ``qr_uses`` rows kept no ``exp``: they get ``at`` + this (above any allowed QR TTL).
_LEGACY_QR_LIFETIME = "interval '1 day'"


def _columns(table: str) -> str:
    return {
        "qr_uses": "id, iss, sub, jti, institution_code, at, expires_at",
        "used_jtis": "id, issuer, jti, expires_at",
        "numeric_codes": "id, code, ecert_id, version, expires_at, used_at",
    }[table]


def upgrade() -> None:
    with op.batch_alter_table("qr_uses") as batch:
        batch.add_column(
            sa.Column(
                "expires_at", advanced_alchemy.types.DateTimeUTC(timezone=True), nullable=True
            )
        )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"UPDATE qr_uses SET expires_at = at + {_LEGACY_QR_LIFETIME}")  # noqa: S608
    for p in PARTITIONED:
        old = f"{p.table}_plain"
        op.execute(f"ALTER TABLE {p.table} RENAME TO {old}")
        # Constraint and index names are per schema: free them for the new table.
        op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_{p.table} TO pk_{old}")
        op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {p.unique_name} TO {p.unique_name}_plain")
        op.execute(f"ALTER INDEX ix_{p.table}_{p.index_column} RENAME TO ix_{old}_{p.index_column}")
        op.execute(
            f"CREATE TABLE {p.table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
            f"PARTITION BY RANGE (expires_at)"
        )
        op.execute(f"ALTER TABLE {p.table} ALTER COLUMN expires_at SET NOT NULL")
        op.execute(
            f"ALTER TABLE {p.table} ADD CONSTRAINT pk_{p.table} PRIMARY KEY (id, expires_at)"
        )
        op.execute(
            f"ALTER TABLE {p.table} ADD CONSTRAINT {p.unique_name} "
            f"UNIQUE ({', '.join(p.unique)}, expires_at)"
        )
        op.execute(f"CREATE INDEX ix_{p.table}_{p.index_column} ON {p.table} ({p.index_column})")
        if p.table == "numeric_codes":
            op.execute(
                "ALTER TABLE numeric_codes ADD CONSTRAINT fk_numeric_codes_ecert_id_ecerts "
                "FOREIGN KEY (ecert_id) REFERENCES ecerts (id) ON DELETE CASCADE"
            )
        op.execute(f"CREATE TABLE {p.table}_default PARTITION OF {p.table} DEFAULT")
        # The id sequence moves to the new table before the old one (its owner) goes.
        op.execute(f"ALTER SEQUENCE {p.table}_id_seq OWNED BY {p.table}.id")
        columns = _columns(p.table)
        op.execute(f"INSERT INTO {p.table} ({columns}) SELECT {columns} FROM {old}")  # noqa: S608
        op.execute(f"DROP TABLE {old}")
    # Rows copied above whose day is ahead move out of the DEFAULT partition as days are made.
    ensure_ahead(op.get_bind(), dt.datetime.now(dt.UTC).date(), days=7)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for p in PARTITIONED:
            part = f"{p.table}_parted"
            op.execute(f"ALTER TABLE {p.table} RENAME TO {part}")
            op.execute(f"ALTER TABLE {part} RENAME CONSTRAINT pk_{p.table} TO pk_{part}")
            op.execute(
                f"ALTER TABLE {part} RENAME CONSTRAINT {p.unique_name} TO {p.unique_name}_parted"
            )
            op.execute(
                f"ALTER INDEX ix_{p.table}_{p.index_column} RENAME TO ix_{part}_{p.index_column}"
            )
            op.execute(
                f"CREATE TABLE {p.table} (LIKE {part} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            )
            op.execute(f"ALTER TABLE {p.table} ADD CONSTRAINT pk_{p.table} PRIMARY KEY (id)")
            op.execute(
                f"ALTER TABLE {p.table} ADD CONSTRAINT {p.unique_name} UNIQUE ({', '.join(p.unique)})"
            )
            op.execute(
                f"CREATE INDEX ix_{p.table}_{p.index_column} ON {p.table} ({p.index_column})"
            )
            if p.table == "numeric_codes":
                op.execute(
                    "ALTER TABLE numeric_codes ADD CONSTRAINT fk_numeric_codes_ecert_id_ecerts "
                    "FOREIGN KEY (ecert_id) REFERENCES ecerts (id) ON DELETE CASCADE"
                )
            op.execute(f"ALTER SEQUENCE {p.table}_id_seq OWNED BY {p.table}.id")
            # Rows that only differ by expiry (possible only once partitioned) keep the newest.
            keys = ", ".join(p.unique)
            op.execute(
                f"INSERT INTO {p.table} ({_columns(p.table)}) "  # noqa: S608 (fixed identifiers)
                f"SELECT DISTINCT ON ({keys}) {_columns(p.table)} FROM {part} "
                f"ORDER BY {keys}, expires_at DESC"
            )
            op.execute(f"DROP TABLE {part}")
    with op.batch_alter_table("qr_uses") as batch:
        batch.drop_column("expires_at")
