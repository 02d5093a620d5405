"""purge: indexes on the columns ``ecert purge`` selects expired rows by

Revision ID: 0007t
Revises: 0001
Create Date: 2026-12-01 00:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007t"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, column). used_jtis.expires_at and numeric_codes.expires_at are indexed already.
_INDEXED = (
    ("qr_uses", "at"),
    ("ec_tokens", "expires_at"),
    ("idempotency_records", "started_at"),
)


def upgrade() -> None:
    # CREATE INDEX is plain SQL on both databases: no batch mode needed. On PostgreSQL it blocks
    # writes to the table while it builds: cheap while these tables are young (see scaling.md).
    for table, column in _INDEXED:
        op.create_index(op.f(f"ix_{table}_{column}"), table, [column])


def downgrade() -> None:
    for table, column in _INDEXED:
        op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
