"""Declarative bases shared by every model (advanced-alchemy's, one metadata)."""

from __future__ import annotations

from advanced_alchemy.base import BigIntBase, UUIDv7AuditBase, orm_registry
from sqlalchemy import JSON
from sqlalchemy.dialects.postgresql import JSONB

from ecert.clock import utcnow

#: Entities: UUIDv7 primary key (time-ordered, index-friendly) with created/updated columns.
UUIDBase = UUIDv7AuditBase
Base = UUIDv7AuditBase
metadata = orm_registry.metadata

#: JSON on SQLite, JSONB on PostgreSQL.
JsonB = JSON().with_variant(JSONB(), "postgresql")


__all__ = ["Base", "BigIntBase", "JsonB", "UUIDBase", "metadata", "utcnow"]
