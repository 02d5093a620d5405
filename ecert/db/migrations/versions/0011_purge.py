"""purge: indexes on the columns ``ecert purge`` selects expired rows by; audit anchors

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 00:20:00
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, column). used_jtis.expires_at and numeric_codes.expires_at are indexed already.
_INDEXED = (
    ("qr_uses", "at"),
    ("ec_tokens", "expires_at"),
    ("idempotency_records", "started_at"),
)


# Anchors are append-only like the audit rows they replace (its own function: this revision
# may run before 0005's on a fresh database until the branches are re-chained).
_PG_REFUSE = """
CREATE FUNCTION audit_anchor_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$
"""


def upgrade() -> None:
    # CREATE INDEX is plain SQL on both databases: no batch mode needed. On PostgreSQL it blocks
    # writes to the table while it builds: cheap while these tables are young (see scaling.md).
    for table, column in _INDEXED:
        op.create_index(op.f(f"ix_{table}_{column}"), table, [column])
    # A new table: no ALTER, so no batch mode on SQLite.
    op.create_table(
        "audit_anchors",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("chain", sa.SmallInteger(), nullable=True),
        sa.Column("through_id", sa.BigInteger(), nullable=False),
        sa.Column("through_hash", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("prev_mac", sa.String(length=64), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_anchors")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_REFUSE)
        op.execute(
            "CREATE TRIGGER audit_anchors_append_only BEFORE UPDATE OR DELETE ON audit_anchors "
            "FOR EACH ROW EXECUTE FUNCTION audit_anchor_refuse_change()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_anchors_append_only ON audit_anchors")
        op.execute("DROP FUNCTION audit_anchor_refuse_change()")
    op.drop_table("audit_anchors")
    for table, column in _INDEXED:
        op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
