"""Provinces settling each other's insured (spec §9): routed visits and the clearing record."""

from __future__ import annotations

import datetime as dt
import uuid

from advanced_alchemy.types import GUID
from sqlalchemy import BigInteger, CheckConstraint, Date, String
from sqlalchemy.orm import Mapped, mapped_column

from ecert.db.models.base import UUIDBase


class FederatedVisit(UUIDBase):
    """A visit opened at the insured person's province for one of our hospitals: where its
    fees, previews and settlement go. Not money: written as soon as the remote visit exists."""

    __tablename__ = "federated_visits"

    remote_id: Mapped[uuid.UUID] = mapped_column(GUID(length=16), unique=True)
    #: The insured province: its issuing area as named in the federation file.
    province: Mapped[str] = mapped_column(String(6))
    institution_code: Mapped[str] = mapped_column(String(20))


class ClearingRecord(UUIDBase):
    """One routed settlement or reversal, recorded by the treating province after the insured
    province's reply: what that province owes us for our hospital's care of its insured."""

    __tablename__ = "clearing_records"

    #: ``settlement`` or ``reversal``.
    kind: Mapped[str] = mapped_column(String(12))
    province: Mapped[str] = mapped_column(String(6), index=True)
    #: The settlement's (or reversal's) id at the insured province; unique, so a retried
    #: routed call records once.
    remote_id: Mapped[uuid.UUID] = mapped_column(GUID(length=16), unique=True)
    #: The settlement at the insured province (for a reversal: the one it reverses).
    settlement_id: Mapped[uuid.UUID] = mapped_column(GUID(length=16), index=True)
    institution_code: Mapped[str] = mapped_column(String(20))
    business_date: Mapped[dt.date] = mapped_column(Date, index=True)
    #: Settled total (a reversal: the amount given back); the pools in fen, refunds positive.
    total: Mapped[int] = mapped_column(BigInteger)
    fund_paid: Mapped[int] = mapped_column(BigInteger)
    account_paid: Mapped[int] = mapped_column(BigInteger)
    mutual_aid_paid: Mapped[int] = mapped_column(BigInteger)
    cash_paid: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("kind in ('settlement','reversal')", name="clearing_kind"),)
