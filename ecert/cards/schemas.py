"""Card shapes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from ecert.db import models

IdText = Annotated[str, msgspec.Meta(max_length=40)]
#: The opaque person number (the console and the CLI may name the person by it instead).
PersonNo = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9]{1,20}$")]


class CardEventView(msgspec.Struct, kw_only=True):
    at: dt.datetime
    #: issued, provisional_report, cancel_report, lapsed (restored automatically),
    #: formal_report, replaced_lost, replaced_damaged, replaced_errata
    action: str
    from_status: models.CardStatus | None
    to_status: models.CardStatus
    #: The card it happened to (last four digits).
    card: str


class CardView(msgspec.Struct, kw_only=True):
    #: Only the last four digits are shown.
    number: str
    status: models.CardStatus
    #: Whether the card may be used to settle at a counter (only while active).
    usable: bool
    reported_at: dt.datetime | None
    #: When a provisional report lapses and the card is restored, unless made formal first.
    restores_at: dt.datetime | None
    #: What happened to the person's cards, newest first.
    history: list[CardEventView]


class CardCheck(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A card terminal names the card it has read."""

    number: Annotated[str, msgspec.Meta(pattern=r"^\d{8,20}$")]


class CardStatus(msgspec.Struct, kw_only=True):
    status: models.CardStatus
    #: False from the moment of a loss report: the counter must refuse the card.
    usable: bool


class AgencyCardAction(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The agency names the person by ID number in the body, never in a URL (or by number)."""

    id_number: IdText | None = None
    person_no: PersonNo | None = None


class Replacement(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: Literal["lost", "damaged"]
    id_number: IdText | None = None
    person_no: PersonNo | None = None


class Errata(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id_number: IdText | None = None
    person_no: PersonNo | None = None
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    new_id_number: IdText | None = None
