"""person suspensions; single-use, version-bound ec_tokens (issue 14, findings 2 and 3)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 23:30:00
"""

import datetime as dt
import uuid
from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = advanced_alchemy.types.datetime.DateTimeUTC(timezone=True)
_GUID = advanced_alchemy.types.guid.GUID(length=16)


def upgrade() -> None:
    suspensions = op.create_table(
        "person_suspensions",
        sa.Column("id", _GUID, nullable=False),
        sa.Column("person_id", _GUID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("imposed_by", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("imposed_at", _UTC, nullable=False),
        sa.Column("lifted_at", _UTC, nullable=True),
        sa.Column("lifted_by", sa.String(length=64), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.CheckConstraint(
            "kind in ('agency','person')", name=op.f("ck_person_suspensions_person_suspension_kind")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_person_suspensions_person_id_persons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person_suspensions")),
    )
    with op.batch_alter_table("person_suspensions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_person_suspensions_person_id"), ["person_id"], unique=False
        )
    # Suspensions made before this revision lived only on the e-certs; nobody recorded who made
    # them, so they become agency suspensions (the safe reading: only the agency lifts them).
    connection = op.get_bind()
    ecerts = sa.table("ecerts", sa.column("person_id", _GUID), sa.column("status", sa.String))
    suspended = connection.execute(
        sa.select(ecerts.c.person_id).where(ecerts.c.status == "suspended").distinct()
    ).scalars()
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "id": uuid.uuid4(),
            "person_id": person_id,
            "kind": "agency",
            "imposed_by": "migration-0002",
            "reason": "suspended before 0002",
            "imposed_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for person_id in suspended
    ]
    if rows:
        connection.execute(sa.insert(suspensions), rows)

    with op.batch_alter_table("ec_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ecert_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("spent_at", _UTC, nullable=True))
    # Outstanding tokens keep working until they expire, bound to the e-cert's current version.
    op.execute(
        "UPDATE ec_tokens SET ecert_version = "
        "(SELECT version FROM ecerts WHERE ecerts.id = ec_tokens.ecert_id)"
    )
    with op.batch_alter_table("ec_tokens", schema=None) as batch_op:
        batch_op.alter_column("ecert_version", existing_type=sa.Integer(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("ec_tokens", schema=None) as batch_op:
        batch_op.drop_column("spent_at")
        batch_op.drop_column("ecert_version")
    with op.batch_alter_table("person_suspensions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_person_suspensions_person_id"))
    op.drop_table("person_suspensions")
