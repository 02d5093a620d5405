"""The payer's catalogue, and visits with their fee lines (docs/settlement.md)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ecert.db.models.base import BigIntBase, JsonB, UUIDBase


class VisitStatus(enum.StrEnum):
    OPEN = "open"
    SETTLED = "settled"
    CANCELLED = "cancelled"


class CatalogueEntry(UUIDBase):
    """One catalogue item (药品/诊疗/耗材目录) for one validity period; prices in fen."""

    __tablename__ = "catalogue"

    list_code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    item_class: Mapped[str] = mapped_column(String(1))
    first_self_pay_ratio: Mapped[float | None] = mapped_column(Float)
    #: Highest unit price the fund recognises; above it the line is over-limit self-paid.
    price_cap: Mapped[int | None] = mapped_column(BigInteger)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    gender: Mapped[str | None] = mapped_column(String(1))
    min_age: Mapped[int | None] = mapped_column(Integer)
    max_age: Mapped[int | None] = mapped_column(Integer)
    #: Comma-separated med_type codes the item is covered for; NULL: all.
    med_types: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (
        UniqueConstraint("list_code", "valid_from", name="uq_catalogue_code_from"),
        CheckConstraint("item_class in ('A','B','C')", name="catalogue_item_class"),
    )


class Visit(UUIDBase):
    """A visit (就诊) opened by one institution with an ec_token or a usable physical card."""

    __tablename__ = "visits"

    institution_code: Mapped[str] = mapped_column(String(20), index=True)
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("persons.id"), index=True)
    insurance_type: Mapped[str] = mapped_column(String(3))
    med_type: Mapped[str] = mapped_column(String(4))
    #: What opened it: the spent ec_token, or NULL for a physical card.
    ec_token: Mapped[str | None] = mapped_column(String(38))
    card_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cards.id"))
    his_visit_no: Mapped[str] = mapped_column(String(64))
    dept_code: Mapped[str] = mapped_column(String(30))
    dept_name: Mapped[str] = mapped_column(String(100))
    doctor_code: Mapped[str | None] = mapped_column(String(30))
    doctor_name: Mapped[str | None] = mapped_column(String(50))
    diagnoses: Mapped[list[Any]] = mapped_column(JsonB)
    admitted_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default=VisitStatus.OPEN.value)

    __table_args__ = (
        CheckConstraint("status in ('open','settled','cancelled')", name="visit_status"),
    )


class FeeLine(BigIntBase):
    """One fee line of a visit as the hospital sent it, classified when it arrived."""

    __tablename__ = "visit_fee_lines"

    visit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("visits.id", ondelete="CASCADE"))
    line_no: Mapped[str] = mapped_column(String(30))
    #: SHA-256 of the line as sent (normalised): the same line again is a no-op.
    fingerprint: Mapped[str] = mapped_column(String(64))
    list_code: Mapped[str] = mapped_column(String(64))
    hospital_code: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[str] = mapped_column(String(24))
    unit_price: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    #: What the hospital declared (used only without a catalogue).
    declared_class: Mapped[str | None] = mapped_column(String(1))
    declared_ratio: Mapped[float | None] = mapped_column(Float)
    ordered_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    doctor_code: Mapped[str | None] = mapped_column(String(30))

    __table_args__ = (UniqueConstraint("visit_id", "line_no", name="uq_fee_line_visit_no"),)
