"""returns: what a settlement was priced against and what was returned; reversal kind and lines
(issue 13, returns that re-price)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pricing", _JSON, nullable=True))
        batch_op.add_column(sa.Column("returned", _JSON, nullable=True))
    with op.batch_alter_table("reversals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "account_mutual_aid_refund", sa.BigInteger(), nullable=False, server_default="0"
            )
        )
        # Reversals before this release were amount (or whole) reversals.
        batch_op.add_column(
            sa.Column("kind", sa.String(length=8), nullable=False, server_default="amount")
        )
        batch_op.add_column(sa.Column("lines", _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reversals", schema=None) as batch_op:
        batch_op.drop_column("lines")
        batch_op.drop_column("kind")
        batch_op.drop_column("account_mutual_aid_refund")
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.drop_column("returned")
        batch_op.drop_column("pricing")
