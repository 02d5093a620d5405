"""Shapes of the federation routes: a routed institution, and the month's clearing report."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec


class RoutedInstitution(msgspec.Struct, forbid_unknown_fields=True):
    """A treating province's hospital, as it vouches for it (its own register decides)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    kind: Literal["hospital", "pharmacy"]
    level: Literal["community", "1", "2", "3"]
    area: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")]
    designated: bool


class ClearingFigures(msgspec.Struct, kw_only=True):
    """One direction of a province pair for the month, in fen, net of reversals."""

    settlements: int
    reversals: int
    total: int
    fund_paid: int
    account_paid: int
    account_mutual_aid_paid: int
    cash_paid: int
    #: What the insured province owes the treating one: fund + account + mutual aid (the
    #: patient paid the cash to the hospital).
    amount: int


class ClearingPeer(msgspec.Struct, kw_only=True):
    #: The other province's issuing area (as on our trust list).
    province: str
    #: Our hospitals treated its insured: it owes us this.
    owed_to_us: ClearingFigures
    #: Its hospitals treated our insured: we owe it this.
    we_owe: ClearingFigures
    #: owed_to_us.amount − we_owe.amount.
    net: int


class ClearingReport(msgspec.Struct, kw_only=True):
    month: str
    #: Our own issuing area.
    province: str
    peers: list[ClearingPeer]


class ClearingEntry(msgspec.Struct, kw_only=True):
    """One settlement or reversal the insured province made for the treating province's
    hospitals (what a clearing sync compares with the treating side's records)."""

    kind: Literal["settlement", "reversal"]
    #: The settlement's (or reversal's) id at the insured province.
    remote_id: uuid.UUID
    settlement_id: uuid.UUID
    institution_code: str
    business_date: dt.date
    total: int
    fund_paid: int
    account_paid: int
    account_mutual_aid_paid: int
    cash_paid: int


class ClearingSync(msgspec.Struct, kw_only=True):
    month: str
    #: Records added because a reply never arrived and the hospital did not retry.
    added: int
