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
from ecert.db.models.mutual_aid import MutualAidAuthorisation, MutualAidDraw, MutualAidRelation
from ecert.db.models.settlement import (
    Account,
    BenefitUsage,
    EcToken,
    IdempotencyRecord,
    LedgerEntry,
    PolicyRow,
    QrUse,
    Reversal,
    ReversalKind,
    Settlement,
)
from ecert.db.models.staff import Staff, StaffRole
from ecert.db.models.visits import CatalogueEntry, FeeLine, Visit, VisitStatus

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
    "CatalogueEntry",
    "Client",
    "Contribution",
    "ECert",
    "EcToken",
    "Enrolment",
    "FamilyLink",
    "FeeLine",
    "IdempotencyRecord",
    "Institution",
    "KeyEvent",
    "LedgerEntry",
    "MutualAidAuthorisation",
    "MutualAidDraw",
    "MutualAidRelation",
    "NumericCode",
    "Person",
    "PersonSuspension",
    "PolicyRow",
    "QrUse",
    "Reversal",
    "ReversalKind",
    "RevocationEntry",
    "Settlement",
    "SigningKey",
    "Staff",
    "StaffRole",
    "SuspensionKind",
    "UUIDBase",
    "UsedJti",
    "Visit",
    "VisitStatus",
    "utcnow",
]
