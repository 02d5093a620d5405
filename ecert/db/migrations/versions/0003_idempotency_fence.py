"""idempotency fence: each claim of an Idempotency-Key carries a random fencing token

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: a claim left in progress by the old code has none; a takeover gives it one.
    with op.batch_alter_table("idempotency_records") as batch:
        batch.add_column(sa.Column("fence_token", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_records") as batch:
        batch.drop_column("fence_token")
