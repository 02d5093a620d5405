"""Shapes of the agency console's API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

Login = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9._-]{1,31}$")]
PersonNo = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9]{1,20}$")]


class SignIn(msgspec.Struct, forbid_unknown_fields=True):
    login: Login
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    #: The six digits of the authenticator app, for staff with TOTP.
    totp: Annotated[str, msgspec.Meta(pattern=r"^\d{6}$")] | None = None


class StaffView(msgspec.Struct):
    login: str
    name: str
    #: clerk, supervisor or operator
    role: str
    #: When the session cookie expires (sign in again after).
    expires_at: dt.datetime | None = None


class PersonSearch(msgspec.Struct, forbid_unknown_fields=True):
    """The ID number travels in the body only, never in a URL."""

    id_number: Annotated[str, msgspec.Meta(max_length=40)]


class PersonSummary(msgspec.Struct):
    #: Opaque: what the console uses from here on instead of the ID number.
    person_no: str
    name: str
    id_number: str
    gender: str | None
    birth_date: dt.date | None
    area: str
    category: str


class ECertView(msgspec.Struct):
    #: Last four characters only.
    number: str
    channel: str
    status: str
    version: int
    device_name: str | None
    bound_at: dt.datetime | None


class SuspensionView(msgspec.Struct):
    kind: str
    reason: str
    imposed_by: str
    imposed_at: dt.datetime


class FamilyLinkView(msgspec.Struct):
    #: holder: this person may show the relative's code; relative: the other way round.
    side: Literal["holder", "relative"]
    relation: str
    status: str
    other: PersonSummary


class PersonFile(msgspec.Struct):
    person: PersonSummary
    ecerts: list[ECertView]
    suspensions: list[SuspensionView]
    family: list[FamilyLinkView]


class AuditRow(msgspec.Struct):
    at: dt.datetime
    actor: str
    actor_kind: str
    #: The national envelope's operator name, for staff actions.
    opter_name: str | None
    action: str
    outcome: str
    #: This row's MAC checks and its successor on the chain (if any) still points at it.
    intact: bool


class AuditTrail(msgspec.Struct):
    rows: list[AuditRow]
    #: Every row shown is intact.
    intact: bool


class KeyRotation(msgspec.Struct, forbid_unknown_fields=True):
    purpose: Literal["qr", "feed", "access"] = "qr"


class KeyRotated(msgspec.Struct):
    purpose: str
    active: str
