"""visits: the payer's catalogue, visits and their fee lines; settlements of a visit (issue 13)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 00:10:00
"""

from collections.abc import Sequence
from typing import Any

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = advanced_alchemy.types.datetime.DateTimeUTC(timezone=True)
_GUID = advanced_alchemy.types.guid.GUID(length=16)
_JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _audit() -> list[sa.Column[Any]]:
    return [
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "catalogue",
        sa.Column("id", _GUID, nullable=False),
        sa.Column("list_code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("item_class", sa.String(length=1), nullable=False),
        sa.Column("first_self_pay_ratio", sa.Float(), nullable=True),
        sa.Column("price_cap", sa.BigInteger(), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("gender", sa.String(length=1), nullable=True),
        sa.Column("min_age", sa.Integer(), nullable=True),
        sa.Column("max_age", sa.Integer(), nullable=True),
        sa.Column("med_types", sa.String(length=100), nullable=True),
        *_audit(),
        sa.CheckConstraint(
            "item_class in ('A','B','C')", name=op.f("ck_catalogue_catalogue_item_class")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue")),
        sa.UniqueConstraint("list_code", "valid_from", name="uq_catalogue_code_from"),
    )
    op.create_table(
        "visits",
        sa.Column("id", _GUID, nullable=False),
        sa.Column("institution_code", sa.String(length=20), nullable=False),
        sa.Column("person_id", _GUID, nullable=False),
        sa.Column("insurance_type", sa.String(length=3), nullable=False),
        sa.Column("med_type", sa.String(length=4), nullable=False),
        sa.Column("ec_token", sa.String(length=38), nullable=True),
        sa.Column("card_id", _GUID, nullable=True),
        sa.Column("his_visit_no", sa.String(length=64), nullable=False),
        sa.Column("dept_code", sa.String(length=30), nullable=False),
        sa.Column("dept_name", sa.String(length=100), nullable=False),
        sa.Column("doctor_code", sa.String(length=30), nullable=True),
        sa.Column("doctor_name", sa.String(length=50), nullable=True),
        sa.Column("diagnoses", _JSON, nullable=False),
        sa.Column("admitted_at", _UTC, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        *_audit(),
        sa.CheckConstraint(
            "status in ('open','settled','cancelled')", name=op.f("ck_visits_visit_status")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_visits_person_id_persons")
        ),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"], name=op.f("fk_visits_card_id_cards")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visits")),
    )
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_visits_institution_code"), ["institution_code"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_visits_person_id"), ["person_id"], unique=False)
    op.create_table(
        "visit_fee_lines",
        sa.Column("id", _BIGID, nullable=False),
        sa.Column("visit_id", _GUID, nullable=False),
        sa.Column("line_no", sa.String(length=30), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("list_code", sa.String(length=64), nullable=False),
        sa.Column("hospital_code", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("quantity", sa.String(length=24), nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("declared_class", sa.String(length=1), nullable=True),
        sa.Column("declared_ratio", sa.Float(), nullable=True),
        sa.Column("ordered_at", _UTC, nullable=True),
        sa.Column("doctor_code", sa.String(length=30), nullable=True),
        sa.ForeignKeyConstraint(
            ["visit_id"],
            ["visits.id"],
            name=op.f("fk_visit_fee_lines_visit_id_visits"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit_fee_lines")),
        sa.UniqueConstraint("visit_id", "line_no", name="uq_fee_line_visit_no"),
    )
    # Batch mode: SQLite cannot add a foreign key with ALTER TABLE.
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("visit_id", _GUID, nullable=True))
        batch_op.add_column(sa.Column("detail", _JSON, nullable=True))
        batch_op.create_index(batch_op.f("ix_settlements_visit_id"), ["visit_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_settlements_visit_id_visits"), "visits", ["visit_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_settlements_visit_id_visits"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_settlements_visit_id"))
        batch_op.drop_column("detail")
        batch_op.drop_column("visit_id")
    op.drop_table("visit_fee_lines")
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visits_person_id"))
        batch_op.drop_index(batch_op.f("ix_visits_institution_code"))
    op.drop_table("visits")
    op.drop_table("catalogue")
