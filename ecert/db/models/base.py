"""Declarative bases shared by every model (advanced-alchemy's, one metadata)."""

from __future__ import annotations

import enum

from advanced_alchemy.base import BigIntBase, UUIDv7AuditBase, orm_registry
from sqlalchemy import JSON, Enum
from sqlalchemy.dialects.postgresql import JSONB

from ecert.clock import utcnow

#: Entities: UUIDv7 primary key (time-ordered, index-friendly) with created/updated columns.
UUIDBase = UUIDv7AuditBase
Base = UUIDv7AuditBase
metadata = orm_registry.metadata

#: JSON on SQLite, JSONB on PostgreSQL.
JsonB = JSON().with_variant(JSONB(), "postgresql")


def str_enum(enum_class: type[enum.StrEnum], length: int) -> Enum:
    """A lifecycle column: the enum in Python, a plain ``VARCHAR(length)`` of its values in the
    database (no database enum type, no new constraint: the migrations' CHECKs stay the rule).
    An unknown value is refused on write instead of reaching the CHECK."""
    return Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


__all__ = ["Base", "BigIntBase", "JsonB", "UUIDBase", "metadata", "str_enum", "utcnow"]
