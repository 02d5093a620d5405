"""Verify request and response shapes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec


class VerifyRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What a scanner read: a signed QR token or the 28-digit numeric code."""

    qr: Annotated[str, msgspec.Meta(min_length=1, max_length=600)]
    #: National business type of the scan (e.g. 01101 registration, 02121 pharmacy purchase).
    business_type: Annotated[str, msgspec.Meta(pattern=r"^\d{5}$")] | None = None


class VerifiedPerson(msgspec.Struct, kw_only=True):
    """Masked unless the institution holds the ``identity:full`` scope."""

    name: str
    id_number: str
    gender: str | None
    age: int | None
    insured_area: str


class Insurance(msgspec.Struct, kw_only=True):
    insurance_type: str
    status: str


class VerifyResponse(msgspec.Struct, kw_only=True):
    ec_token: str
    expires_at: dt.datetime
    person: VerifiedPerson
    insurances: list[Insurance]
