"""Foundation models: people, enrolments, institutions, API clients, signing keys, audit."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ecert.db.models.base import BigIntBase, JsonB, UUIDBase, str_enum, utcnow


class EnrolmentStatus(enum.StrEnum):
    """Membership of an insurance type as the core system reports it; only active may settle."""

    ACTIVE = "active"
    PAUSED = "paused"
    TERMINATED = "terminated"


class Person(UUIDBase):
    """An insured person. The ID number and name exist only encrypted; lookups use ``id_hash``."""

    __tablename__ = "persons"

    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    id_cipher: Mapped[bytes] = mapped_column(LargeBinary)
    name_cipher: Mapped[bytes] = mapped_column(LargeBinary)
    id_kind: Mapped[str] = mapped_column(String(32))
    gender: Mapped[str | None] = mapped_column(String(1))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    area: Mapped[str] = mapped_column(String(6), index=True)
    category: Mapped[str] = mapped_column(String(16))
    #: Opaque person number, safe to show and to log.
    person_no: Mapped[str] = mapped_column(String(20), unique=True)

    enrolments: Mapped[list[Enrolment]] = relationship(
        back_populates="person", lazy="selectin", cascade="all, delete-orphan"
    )

    __table_args__ = (
        CheckConstraint("category in ('employee','retired','resident')", name="person_category"),
    )


class Enrolment(UUIDBase):
    """Membership of one insurance type (310, 390, …) in one area."""

    __tablename__ = "enrolments"

    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"))
    insurance_type: Mapped[str] = mapped_column(String(3))
    area: Mapped[str] = mapped_column(String(6))
    employer: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[EnrolmentStatus] = mapped_column(str_enum(EnrolmentStatus, 16))
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)

    person: Mapped[Person] = relationship(back_populates="enrolments", lazy="raise")

    __table_args__ = (
        UniqueConstraint("person_id", "insurance_type", name="uq_enrolment_person_type"),
        CheckConstraint("status in ('active','paused','terminated')", name="enrolment_status"),
    )


class Institution(UUIDBase):
    """A hospital or pharmacy; only designated ones may settle."""

    __tablename__ = "institutions"

    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    area: Mapped[str] = mapped_column(String(6))
    designated: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (
        CheckConstraint("kind in ('hospital','pharmacy')", name="institution_kind"),
        CheckConstraint("level in ('community','1','2','3')", name="institution_level"),
    )


class Client(UUIDBase):
    """A registered OAuth2 client: a channel backend, an institution's system, or the agency."""

    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    #: ``hmac-sha256$…`` keyed hash (older rows: Argon2, upgraded on use); NULL for private_key_jwt.
    secret_hash: Mapped[str | None] = mapped_column(String(200))
    #: After ``ecert clients rotate-secret --grace``: the old secret's hash, accepted until
    #: ``previous_secret_until`` so the client can switch without an outage.
    previous_secret_hash: Mapped[str | None] = mapped_column(String(200))
    previous_secret_until: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    #: PEM public key for private_key_jwt and for signing person assertions.
    public_key_pem: Mapped[str | None] = mapped_column(Text)
    scopes: Mapped[str] = mapped_column(String(500), default="")
    institution_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("institutions.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Requests a minute (``--rate-limit``); NULL: ``ECERT_CLIENT_RATE_LIMIT_PER_MINUTE``.
    rate_limit: Mapped[int | None] = mapped_column(Integer)
    #: The national gateway's signing key (HmacSHA1 of the ``_api_*`` headers), sealed with the
    #: PII cipher: unlike a client secret it must be read back to check a signature. NULL: the
    #: client signs no headers (Bearer only). ``ecert clients gateway-key`` issues one.
    gateway_key_cipher: Mapped[bytes | None] = mapped_column(LargeBinary)

    institution: Mapped[Institution | None] = relationship(lazy="selectin")

    __table_args__ = (
        CheckConstraint(
            "kind in ('channel','institution','agency','province')", name="client_kind"
        ),
        CheckConstraint("rate_limit IS NULL OR rate_limit > 0", name="client_rate_limit"),
    )


class SigningKey(UUIDBase):
    """A key of ecert's own key table; ``kid`` is only ever looked up here (RFC 8725 §3.10)."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(16), unique=True)
    #: ``qr`` signs QR codes, ``access`` signs access tokens, ``feed`` signs the revocation feed.
    purpose: Mapped[str] = mapped_column(String(16), index=True)
    alg: Mapped[str] = mapped_column(String(8), default="ES256")
    state: Mapped[str] = mapped_column(String(16), index=True)
    #: The private key as PKCS#8 DER, encrypted with the PII cipher.
    private_cipher: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JsonB)
    activated_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    retiring_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    #: A retiring key stays published until this time (its last token has expired by then).
    publish_until: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))

    __table_args__ = (
        CheckConstraint(
            "state in ('next','active','retiring','retired','revoked')", name="signing_key_state"
        ),
    )


class KeyEvent(BigIntBase):
    """Append-only log of key-table changes; its highest ``id`` is the key ring's version.

    Every transaction that changes which keys sign or verify (rotation, revocation, first keys)
    adds a row, so a worker holding an older version knows it must reload (spec: a revoked key
    dies at once). A sequence, not a counter row: concurrent changes never contend on one row.
    """

    __tablename__ = "key_events"

    kid: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))
    #: A :class:`ecert.security.keys.KeyAction` value.
    action: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)


class UsedJti(BigIntBase):
    """Single-use JWT ids (client assertions, person assertions); the unique key refuses replays."""

    __tablename__ = "used_jtis"

    issuer: Mapped[str] = mapped_column(String(64))
    jti: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), index=True)

    __table_args__ = (UniqueConstraint("issuer", "jti", name="uq_used_jti"),)


class AuditEvent(BigIntBase):
    """Who read or changed which person's data, when, with what outcome. Never a plaintext ID."""

    __tablename__ = "audit_events"

    at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    actor_kind: Mapped[str] = mapped_column(String(16))
    #: The person's opaque UUID (not the ID number), when the event concerns a person.
    person_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JsonB)
    #: Which of the audit chains (1..16, ecert/security/auditchain.py) the row is on. NULL only
    #: on rows written before the chains existed.
    chain: Mapped[int | None] = mapped_column(SmallInteger)
    #: The previous row's ``row_hash`` on its chain. NULL only on rows written before the chains
    #: existed.
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    #: HMAC-SHA256 under the audit key over this row's fields and ``prev_hash``.
    row_hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_actor_at", "actor", "at"),)


__all__ = [
    "AuditEvent",
    "Client",
    "Enrolment",
    "Institution",
    "KeyEvent",
    "Person",
    "SigningKey",
    "UsedJti",
]
