"""audit chains: chain/prev_hash/row_hash on audit_events, the 16 chain heads, append-only on PostgreSQL

Revision ID: 0005
Revises: 0004

Rows already in audit_events stay unchained (NULL hashes; the MAC key is not available here):
the chains start with the first rows written after this migration (docs/security.md).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64
#: Appends contend on one of this many chains (ecert.security.auditchain.CHAINS).
CHAINS = 16

# Each inserted audit row becomes its chain's head: verify then also sees rows cut off a chain's
# end. Rows without a chain (none are written after this migration) move no head.
_PG_ADVANCE = """
CREATE FUNCTION audit_chain_advance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_chain_head SET last_id = NEW.id, last_hash = NEW.row_hash WHERE id = NEW.chain;
    RETURN NULL;
END $$
"""
# Append-only, whatever the role's privileges (the owner can still drop the trigger: verify).
_PG_REFUSE = """
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$
"""
_SQLITE_ADVANCE = """
CREATE TRIGGER audit_events_advance AFTER INSERT ON audit_events
BEGIN
    UPDATE audit_chain_head SET last_id = NEW.id, last_hash = NEW.row_hash WHERE id = NEW.chain;
END
"""


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain", sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("row_hash", sa.String(length=64), nullable=True))
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=True),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            f"id BETWEEN 1 AND {CHAINS}", name=op.f("ck_audit_chain_head_audit_chain_head_stripes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.bulk_insert(
        head,
        [{"id": c, "last_id": None, "last_hash": GENESIS} for c in range(1, CHAINS + 1)],
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_ADVANCE)
        op.execute(_PG_REFUSE)
        op.execute(
            "CREATE TRIGGER audit_events_advance AFTER INSERT ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_chain_advance()"
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER audit_chain_head_kept BEFORE DELETE ON audit_chain_head "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
    else:
        op.execute(_SQLITE_ADVANCE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_chain_head_kept ON audit_chain_head")
        op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
        op.execute("DROP TRIGGER audit_events_advance ON audit_events")
        op.execute("DROP FUNCTION audit_refuse_change()")
        op.execute("DROP FUNCTION audit_chain_advance()")
    else:
        op.execute("DROP TRIGGER audit_events_advance")
    op.drop_table("audit_chain_head")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("row_hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("chain")
