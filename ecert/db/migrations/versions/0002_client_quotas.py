"""client quotas: a per-client rate limit (issue 14, finding 9)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite cannot add a CHECK constraint with ALTER TABLE.
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate_limit", sa.Integer(), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_clients_client_rate_limit"), "rate_limit IS NULL OR rate_limit > 0"
        )


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_clients_client_rate_limit"), type_="check")
        batch_op.drop_column("rate_limit")
