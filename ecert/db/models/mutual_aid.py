"""Family mutual aid (家庭共济): who lets their personal account pay for whom, and what it paid."""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from ecert.db.models.base import BigIntBase, UUIDBase


class MutualAidRelation(enum.StrEnum):
    """Whom an account holder may authorise: the relative is the holder's …"""

    SPOUSE = "spouse"
    PARENT = "parent"
    CHILD = "child"


class MutualAidAuthorisation(UUIDBase):
    """A holder's account may pay for a relative until ``revoked_at``.

    Revoked rows stay (draws and ledgers name them); a new authorisation of the same pair is a
    new row, so at most one of a pair is live (the partial unique index)."""

    __tablename__ = "mutual_aid_authorisations"

    holder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"))
    relative_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), index=True
    )
    relation: Mapped[str] = mapped_column(String(16))
    #: The channel (client id) through which the holder authorised, and revoked.
    channel: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        CheckConstraint("relation in ('spouse','parent','child')", name="mutual_aid_relation"),
        CheckConstraint("holder_id <> relative_id", name="mutual_aid_not_self"),
        Index(
            "uq_mutual_aid_live_pair",
            "holder_id",
            "relative_id",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )


class MutualAidDraw(BigIntBase):
    """What one settlement drew from one holder's account, in drawing order, and how much of it
    reversals have given back."""

    __tablename__ = "mutual_aid_draws"

    settlement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("settlements.id", ondelete="CASCADE"), index=True
    )
    authorisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mutual_aid_authorisations.id"))
    holder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("persons.id"))
    seq: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        CheckConstraint("amount > 0", name="mutual_aid_draw_positive"),
        CheckConstraint("refunded >= 0 and refunded <= amount", name="mutual_aid_refund_within"),
    )
