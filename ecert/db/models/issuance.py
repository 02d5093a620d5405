"""E-certificates and the revocation feed: what issuance writes and verification reads."""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ecert.db.models.base import BigIntBase, UUIDBase, str_enum, utcnow


class ECertStatus(enum.StrEnum):
    """An e-cert's lifecycle: suspension is lifted back to active; revocation is final."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class ECert(UUIDBase):
    """One e-cert per person per channel binding; ``version`` bumps kill outstanding QR codes."""

    __tablename__ = "ecerts"

    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"))
    #: The channel client (its ``client_id``) that holds this binding.
    channel: Mapped[str] = mapped_column(String(64))
    #: The e-cert's own number, distinct from the physical card number.
    number: Mapped[str] = mapped_column(String(24), unique=True)
    #: Opaque pseudonym carried in QR codes instead of any personal data.
    pseudonym: Mapped[str] = mapped_column(String(24), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[ECertStatus] = mapped_column(
        str_enum(ECertStatus, 16), default=ECertStatus.ACTIVE
    )
    device_id: Mapped[str | None] = mapped_column(String(128))
    device_name: Mapped[str | None] = mapped_column(String(128))
    bound_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))

    __table_args__ = (
        UniqueConstraint("person_id", "channel", name="uq_ecert_person_channel"),
        CheckConstraint("status in ('active','suspended','revoked')", name="ecert_status"),
        CheckConstraint("version >= 1", name="ecert_version_positive"),
    )


class SuspensionKind(enum.StrEnum):
    """Who imposed a suspension, which decides who may lift it."""

    #: The agency (hotline, counter, fraud review); only the agency lifts it.
    AGENCY = "agency"
    #: The person (lost phone), through a channel; lifted by the agency or a bound channel.
    PERSON = "person"


class PersonSuspension(UUIDBase):
    """A suspension of all of a person's e-certs; in force while ``lifted_at`` is NULL.

    It is kept on the person, not on each e-cert, so that an e-cert made later (a new channel,
    a family code) is suspended too, and so that lifting can check who imposed it.
    """

    __tablename__ = "person_suspensions"

    person_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    #: The client that imposed it: the agency's client, or the channel the person used.
    imposed_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(200))
    imposed_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    lifted_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    lifted_by: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        CheckConstraint(
            "kind in (" + ",".join(f"'{k}'" for k in SuspensionKind) + ")",
            name="person_suspension_kind",
        ),
    )


class RevocationEntry(BigIntBase):
    """Append-only feed: QR codes of ``pseudonym`` below ``min_version`` are dead.

    ``id`` is the feed's sequence number (``GET /v1/revocations?since=SEQ``).
    """

    __tablename__ = "revocations"

    pseudonym: Mapped[str] = mapped_column(String(24), index=True)
    #: Codes with a version below this are refused; suspended/revoked e-certs refuse all.
    min_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32))
    at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)


class NumericCode(BigIntBase):
    """A 28-digit code for digit-only scanners: resolves online only, single use."""

    __tablename__ = "numeric_codes"

    code: Mapped[str] = mapped_column(String(28), unique=True)
    ecert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ecerts.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))


class FamilyLink(UUIDBase):
    """A holder may show codes for a relative once the relative (or the agency) consented."""

    __tablename__ = "family_links"

    holder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"))
    relative_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"))
    relation: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    consent_source: Mapped[str | None] = mapped_column(String(16))
    consented_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))

    __table_args__ = (
        UniqueConstraint("holder_id", "relative_id", name="uq_family_holder_relative"),
        CheckConstraint("relation in ('parent','child','spouse')", name="family_relation"),
        CheckConstraint("status in ('pending','active','revoked')", name="family_status"),
    )
