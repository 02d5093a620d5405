"""client secret rotation: the previous secret's hash and its grace deadline (issue 20 item 9)

Expand-only: two nullable columns; running code of the previous release ignores them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 00:20:00
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode, as alembic requires for SQLite ALTERs (plain ADD COLUMN on PostgreSQL).
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_secret_hash", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column(
                "previous_secret_until",
                advanced_alchemy.types.datetime.DateTimeUTC(timezone=True),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("previous_secret_until")
        batch_op.drop_column("previous_secret_hash")
