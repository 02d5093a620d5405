"""Named agency staff who sign in to the counter console (``/agency/``) and use the CLI."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import Boolean, CheckConstraint, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ecert.db.models.base import UUIDBase


class StaffRole(StrEnum):
    """What a member of staff may do (docs/agency.md, *Roles*)."""

    #: The counter and the hotline: find people, loss reports, replacements, suspensions.
    CLERK = "clerk"
    #: A clerk's work plus errata of name and ID number.
    SUPERVISOR = "supervisor"
    #: Signing keys and imports; not the counter.
    OPERATOR = "operator"


class Staff(UUIDBase):
    """One operator: login, Argon2 password hash, optional TOTP secret (sealed), role."""

    __tablename__ = "staff"

    login: Mapped[str] = mapped_column(String(32), unique=True)
    #: Shown as the national envelope's ``opter_name``; not personal data of an insured person.
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    #: The TOTP secret sealed with the PII cipher, or None when TOTP is not required.
    totp_cipher: Mapped[bytes | None] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))

    __table_args__ = (
        CheckConstraint("role in ('clerk','supervisor','operator')", name="staff_role"),
    )


__all__ = ["Staff", "StaffRole"]
