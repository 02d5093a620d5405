"""Issuance request and response shapes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec

from ecert.db.models import ECertStatus

Text128 = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class ECertActivate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Bind the person's e-cert to a device."""

    device_id: Text128
    device_name: Text128


class ECert(msgspec.Struct, kw_only=True):
    """The person's e-cert on the calling channel."""

    number: str
    status: ECertStatus
    version: int
    device_id: str | None
    device_name: str | None
    bound_at: dt.datetime | None


class Qr(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A fresh QR token: show ``qr``; fetch a new one after ``refresh_after``."""

    qr: str
    expires_at: dt.datetime
    refresh_after: dt.datetime
    #: The same code as an SVG image, when asked for with ``?image=svg``.
    svg: str | None = None


class NumericCode(msgspec.Struct, kw_only=True):
    """A 28-digit code for digit-only scanners; resolves online only, single use."""

    code: str
    expires_at: dt.datetime
    refresh_after: dt.datetime


class SuspendRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: Annotated[str, msgspec.Meta(max_length=200)] = "lost_phone"


class AgencyPersonAction(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The agency names the person by ID number in the body, never in a URL."""

    id_number: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    #: The opaque person number, instead of the ID number (console, CLI).
    person_no: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9]{1,20}$")] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=200)] = "hotline"


class SuspendResult(msgspec.Struct, kw_only=True):
    affected: int
    #: What the person's e-certs are now.
    status: ECertStatus


class Jwks(msgspec.Struct, kw_only=True):
    keys: list[dict[str, str]]


class RevocationItem(msgspec.Struct, kw_only=True):
    seq: int
    sub: str
    min_version: int
    status: str


class RevocationFeed(msgspec.Struct, kw_only=True):
    """Revoked or superseded pseudonym/version pairs after ``since``; ``jws`` signs the same."""

    iss: str
    since: int
    until: int
    more: bool
    entries: list[RevocationItem]
    jws: str
    #: Revoked ``qr`` and ``feed`` key ids, in every page: scanners drop them from their key set.
    revoked_kids: list[str] = msgspec.field(default_factory=list)


class FamilyLinkCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Ask to show codes for a relative; the relative (or the agency) must consent."""

    relation: Literal["parent", "child", "spouse"]
    id_number: Annotated[str, msgspec.Meta(max_length=40)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class FamilyConsent(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    link_id: uuid.UUID


class AgencyFamilyConsent(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    holder_id_number: Annotated[str, msgspec.Meta(max_length=40)]
    relative_id_number: Annotated[str, msgspec.Meta(max_length=40)]
    relation: Literal["parent", "child", "spouse"]


class FamilyLink(msgspec.Struct, kw_only=True):
    link_id: uuid.UUID
    relation: str
    status: str
    #: "holder" when the caller shows codes for the relative, "relative" when the caller is shown.
    role: str
    consent_source: str | None
