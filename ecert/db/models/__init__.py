"""All ORM models. Domains import from here; this package imports no domain."""

from ecert.db.models.base import Base, BigIntBase, UUIDBase, utcnow
from ecert.db.models.core import (
    AuditEvent,
    Client,
    Enrolment,
    Institution,
    Person,
    SigningKey,
    UsedJti,
)
from ecert.db.models.issuance import ECert, FamilyLink, NumericCode, RevocationEntry

__all__ = [
    "AuditEvent",
    "Base",
    "BigIntBase",
    "Client",
    "ECert",
    "Enrolment",
    "FamilyLink",
    "Institution",
    "NumericCode",
    "Person",
    "RevocationEntry",
    "SigningKey",
    "UUIDBase",
    "UsedJti",
    "utcnow",
]
