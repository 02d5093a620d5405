"""recon: reversals found by institution and business day (reconciliation, issue 13 item 7)

Reconciliation reads a day's reversals by the institution and the day of the reversal, as it
reads settlements (``ix_settlement_institution_date``); without this index it scans every
reversal of the day across institutions.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 00:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reversals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reversal_institution_date", ["institution_code", "business_date"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("reversals", schema=None) as batch_op:
        batch_op.drop_index("ix_reversal_institution_date")
