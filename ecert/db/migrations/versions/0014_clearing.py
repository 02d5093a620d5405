"""provinces (issue 17 item 3): clients of kind province, routed visits, the clearing record

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 03:00:00
"""

from collections.abc import Sequence
from typing import Any

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = advanced_alchemy.types.datetime.DateTimeUTC(timezone=True)
_GUID = advanced_alchemy.types.guid.GUID(length=16)
_KINDS = "'channel','institution','agency'"


def _audit() -> list[sa.Column[Any]]:
    return [
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
    ]


def _client_kinds(kinds: str) -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_clients_client_kind"), type_="check")
        batch_op.create_check_constraint("client_kind", sa.text(f"kind in ({kinds})"))


def upgrade() -> None:
    _client_kinds(f"{_KINDS},'province'")
    op.create_table(
        "federated_visits",
        sa.Column("id", _GUID, nullable=False),
        sa.Column("remote_id", _GUID, nullable=False),
        sa.Column("province", sa.String(length=6), nullable=False),
        sa.Column("institution_code", sa.String(length=20), nullable=False),
        *_audit(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_federated_visits")),
        sa.UniqueConstraint("remote_id", name=op.f("uq_federated_visits_remote_id")),
    )
    op.create_table(
        "clearing_records",
        sa.Column("id", _GUID, nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("province", sa.String(length=6), nullable=False),
        sa.Column("remote_id", _GUID, nullable=False),
        sa.Column("settlement_id", _GUID, nullable=False),
        sa.Column("institution_code", sa.String(length=20), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("fund_paid", sa.BigInteger(), nullable=False),
        sa.Column("account_paid", sa.BigInteger(), nullable=False),
        sa.Column("mutual_aid_paid", sa.BigInteger(), nullable=False),
        sa.Column("cash_paid", sa.BigInteger(), nullable=False),
        *_audit(),
        sa.CheckConstraint(
            "kind in ('settlement','reversal')", name=op.f("ck_clearing_records_clearing_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clearing_records")),
        sa.UniqueConstraint("remote_id", name=op.f("uq_clearing_records_remote_id")),
    )
    with op.batch_alter_table("clearing_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_clearing_records_province"), ["province"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_clearing_records_settlement_id"), ["settlement_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_clearing_records_business_date"), ["business_date"], unique=False
        )


def downgrade() -> None:
    op.drop_table("clearing_records")
    op.drop_table("federated_visits")
    op.execute("DELETE FROM clients WHERE kind = 'province'")
    _client_kinds(_KINDS)
