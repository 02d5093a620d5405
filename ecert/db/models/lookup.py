"""Contributions from the core system, and the physical social security card."""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ecert.db.models.base import BigIntBase, UUIDBase, str_enum, utcnow


class ContributionStatus(enum.StrEnum):
    """A month as the core system reports it; paid and back-paid months credit the account."""

    PAID = "paid"
    ARREARS = "arrears"
    BACK_PAID = "back_paid"


class CardStatus(enum.StrEnum):
    """The physical card's lifecycle (``ecert.cards.services`` moves it)."""

    ACTIVE = "active"
    PROVISIONALLY_REPORTED = "provisionally_reported"
    FORMALLY_REPORTED = "formally_reported"
    REPLACED = "replaced"


class Contribution(UUIDBase):
    """One month of contributions; a paid month credits the personal account exactly once."""

    __tablename__ = "contributions"

    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"))
    #: YYYYMM
    month: Mapped[str] = mapped_column(String(6))
    base: Mapped[int] = mapped_column(BigInteger)
    employer_amount: Mapped[int] = mapped_column(BigInteger)
    employee_amount: Mapped[int] = mapped_column(BigInteger)
    account_credit: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[ContributionStatus] = mapped_column(str_enum(ContributionStatus, 16))
    credited: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("person_id", "month", name="uq_contribution_person_month"),
        CheckConstraint("status in ('paid','arrears','back_paid')", name="contribution_status"),
    )


class Card(UUIDBase):
    """A physical social security card and its loss-report state."""

    __tablename__ = "cards"

    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(20), unique=True)
    status: Mapped[CardStatus] = mapped_column(str_enum(CardStatus, 24), default=CardStatus.ACTIVE)
    reported_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    #: A provisional report lapses (the card is restored) at this time unless made formal.
    lapse_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    replaced_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cards.id"))

    __table_args__ = (
        CheckConstraint(
            "status in ('active','provisionally_reported','formally_reported','replaced')",
            name="card_status",
        ),
        Index("ix_cards_person", "person_id"),
    )


class CardEvent(BigIntBase):
    """Append-only history of a card: who did what, from which state to which."""

    __tablename__ = "card_events"

    card_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cards.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[CardStatus | None] = mapped_column(str_enum(CardStatus, 24))
    to_status: Mapped[CardStatus] = mapped_column(str_enum(CardStatus, 24))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
