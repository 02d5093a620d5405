"""mutual aid (家庭共济): authorisations and what settlements drew from them (issue 13)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 00:30:00
"""

from collections.abc import Sequence
from typing import Any

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = advanced_alchemy.types.datetime.DateTimeUTC(timezone=True)
_GUID = advanced_alchemy.types.guid.GUID(length=16)
_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _audit() -> list[sa.Column[Any]]:
    return [
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "mutual_aid_authorisations",
        sa.Column("id", _GUID, nullable=False),
        sa.Column("holder_id", _GUID, nullable=False),
        sa.Column("relative_id", _GUID, nullable=False),
        sa.Column("relation", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", _UTC, nullable=True),
        sa.Column("revoked_by", sa.String(length=64), nullable=True),
        *_audit(),
        sa.CheckConstraint(
            "relation in ('spouse','parent','child')",
            name=op.f("ck_mutual_aid_authorisations_mutual_aid_relation"),
        ),
        sa.CheckConstraint(
            "holder_id <> relative_id",
            name=op.f("ck_mutual_aid_authorisations_mutual_aid_not_self"),
        ),
        sa.ForeignKeyConstraint(
            ["holder_id"],
            ["persons.id"],
            name=op.f("fk_mutual_aid_authorisations_holder_id_persons"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["relative_id"],
            ["persons.id"],
            name=op.f("fk_mutual_aid_authorisations_relative_id_persons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mutual_aid_authorisations")),
    )
    with op.batch_alter_table("mutual_aid_authorisations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mutual_aid_authorisations_relative_id"), ["relative_id"], unique=False
        )
        # At most one live authorisation per pair; revoked ones stay for the ledgers.
        batch_op.create_index(
            "uq_mutual_aid_live_pair",
            ["holder_id", "relative_id"],
            unique=True,
            sqlite_where=sa.text("revoked_at IS NULL"),
            postgresql_where=sa.text("revoked_at IS NULL"),
        )
    op.create_table(
        "mutual_aid_draws",
        sa.Column("id", _BIGID, nullable=False),
        sa.Column("settlement_id", _GUID, nullable=False),
        sa.Column("authorisation_id", _GUID, nullable=False),
        sa.Column("holder_id", _GUID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("refunded", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_mutual_aid_draws_mutual_aid_draw_positive")),
        sa.CheckConstraint(
            "refunded >= 0 and refunded <= amount",
            name=op.f("ck_mutual_aid_draws_mutual_aid_refund_within"),
        ),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["settlements.id"],
            name=op.f("fk_mutual_aid_draws_settlement_id_settlements"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["authorisation_id"],
            ["mutual_aid_authorisations.id"],
            name=op.f("fk_mutual_aid_draws_authorisation_id_mutual_aid_authorisations"),
        ),
        sa.ForeignKeyConstraint(
            ["holder_id"], ["persons.id"], name=op.f("fk_mutual_aid_draws_holder_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mutual_aid_draws")),
    )
    with op.batch_alter_table("mutual_aid_draws", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mutual_aid_draws_settlement_id"), ["settlement_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("mutual_aid_draws")
    op.drop_table("mutual_aid_authorisations")
