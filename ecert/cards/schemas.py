"""Card shapes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

IdText = Annotated[str, msgspec.Meta(max_length=40)]


class CardView(msgspec.Struct):
    #: Only the last four digits are shown.
    number: str
    #: active, provisionally_reported, formally_reported or replaced
    status: str
    reported_at: dt.datetime | None
    #: When a provisional report lapses and the card is restored, unless made formal first.
    restores_at: dt.datetime | None


class AgencyCardAction(msgspec.Struct, forbid_unknown_fields=True):
    """The agency names the person by ID number in the body, never in a URL."""

    id_number: IdText


class Replacement(msgspec.Struct, forbid_unknown_fields=True):
    id_number: IdText
    reason: Literal["lost", "damaged"]


class Errata(msgspec.Struct, forbid_unknown_fields=True):
    id_number: IdText
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    new_id_number: IdText | None = None
