"""more audit chains: 64 chain heads instead of 16

A settlement holds its chain's head from its first statement to its COMMIT. With 64 settling
connections and 16 heads, ``SKIP LOCKED`` often found none free and the settlement waited for a
busy one (docs/performance.md, "Fifth round"). The new heads start at the genesis link like the
first 16 did; existing chains are untouched. Downgrade refuses once a row sits on a new chain
(its chain could not be walked any more).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64
OLD, NEW = 16, 64
_DROP_NEW = "DELETE FROM audit_chain_head WHERE id > 16"
_NAME = "ck_audit_chain_head_audit_chain_head_stripes"
# 0005's SQLite trigger, as it stands: SQLite rebuilds the table to change a CHECK, and will not
# rename the rebuilt table while a trigger names the one it replaces.
_SQLITE_ADVANCE = """
CREATE TRIGGER audit_events_advance AFTER INSERT ON audit_events
BEGIN
    UPDATE audit_chain_head SET last_id = NEW.id, last_hash = NEW.row_hash WHERE id = NEW.chain;
END
"""


def _stripes(chains: int) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("DROP TRIGGER audit_events_advance")
    with op.batch_alter_table("audit_chain_head", schema=None) as batch_op:
        batch_op.drop_constraint(op.f(_NAME), type_="check")
        batch_op.create_check_constraint("audit_chain_head_stripes", f"id BETWEEN 1 AND {chains}")
    if sqlite:
        op.execute(_SQLITE_ADVANCE)


def upgrade() -> None:
    _stripes(NEW)
    head = sa.table(
        "audit_chain_head",
        sa.column("id", sa.Integer),
        sa.column("last_id", sa.BigInteger),
        sa.column("last_hash", sa.String),
    )
    op.bulk_insert(
        head, [{"id": c, "last_id": None, "last_hash": GENESIS} for c in range(OLD + 1, NEW + 1)]
    )


def downgrade() -> None:
    used = op.get_bind().execute(
        sa.text("SELECT count(*) FROM audit_events WHERE chain > :old"), {"old": OLD}
    )
    if used.scalar_one():
        raise RuntimeError("audit rows sit on chains above 16: they cannot be folded back")
    if op.get_bind().dialect.name == "postgresql":
        # The heads are kept from DELETE by a trigger (0005); lift it for these rows only.
        op.execute("ALTER TABLE audit_chain_head DISABLE TRIGGER audit_chain_head_kept")
        op.execute(_DROP_NEW)
        op.execute("ALTER TABLE audit_chain_head ENABLE TRIGGER audit_chain_head_kept")
    else:
        op.execute(_DROP_NEW)
    _stripes(OLD)
