"""All ORM models. Domains import from here; this package imports no domain."""

from ecert.db.models.audit import AuditAnchor, AuditChainHead
from ecert.db.models.base import Base, BigIntBase, UUIDBase, utcnow
from ecert.db.models.core import (
    AuditEvent,
    Client,
    Enrolment,
    Institution,
    KeyEvent,
    Person,
    SigningKey,
    UsedJti,
)
from ecert.db.models.issuance import (
    ECert,
    FamilyLink,
    NumericCode,
    PersonSuspension,
    RevocationEntry,
    SuspensionKind,
)
from ecert.db.models.lookup import Card, CardEvent, Contribution
from ecert.db.models.settlement import (
    Account,
    BenefitUsage,
    EcToken,
    IdempotencyRecord,
    LedgerEntry,
    PolicyRow,
    QrUse,
    Reversal,
    Settlement,
)

__all__ = [
    "Account",
    "AuditAnchor",
    "AuditChainHead",
    "AuditEvent",
    "Base",
    "BenefitUsage",
    "BigIntBase",
    "Card",
    "CardEvent",
    "Client",
    "Contribution",
    "ECert",
    "EcToken",
    "Enrolment",
    "FamilyLink",
    "IdempotencyRecord",
    "Institution",
    "KeyEvent",
    "LedgerEntry",
    "NumericCode",
    "Person",
    "PersonSuspension",
    "PolicyRow",
    "QrUse",
    "Reversal",
    "RevocationEntry",
    "Settlement",
    "SigningKey",
    "SuspensionKind",
    "UUIDBase",
    "UsedJti",
    "utcnow",
]
