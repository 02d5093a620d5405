"""The head of the audit chain (one row: the lock that serialises appends and the last link),
and the anchors that let the chain's oldest rows be purged."""

from __future__ import annotations

import datetime as dt

from advanced_alchemy.base import AdvancedDeclarativeBase, BigIntBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column


class AuditChainHead(AdvancedDeclarativeBase):
    """Row 1 only. Appenders lock it (one UPDATE … RETURNING); a trigger moves it to each new
    audit row, so ``ecert audit verify`` also sees rows cut off the end of the log."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int | None] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (CheckConstraint("id = 1", name="audit_chain_head_one_row"),)


class AuditAnchor(BigIntBase):
    """One per purge batch of the oldest audit rows: the last purged row's id and MAC, so the
    chain verifies from here. MACed under the audit key and chained to the previous anchor, so
    an anchor cannot be forged or dropped to hide a deletion (ecert/security/auditpurge.py)."""

    __tablename__ = "audit_anchors"

    through_id: Mapped[int] = mapped_column(BigInteger)
    through_hash: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
    prev_mac: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))
