"""national gateway: a sealed per-client signing key for the provincial gateways' _api_* headers

Expand-only: one nullable column; running code of the previous release ignores it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode, as alembic requires for SQLite ALTERs (plain ADD COLUMN on PostgreSQL).
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gateway_key_cipher", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("gateway_key_cipher")
