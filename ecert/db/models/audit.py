"""The heads of the audit chains (one row per stripe: the lock that serialises appends to that
chain and its last link), and the anchors that let the chains' oldest rows be purged."""

from __future__ import annotations

import datetime as dt

from advanced_alchemy.base import AdvancedDeclarativeBase, BigIntBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, CheckConstraint, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column


class AuditChainHead(AdvancedDeclarativeBase):
    """Rows 1..64, one per chain (``CHAINS``). An appending transaction locks one of them (one
    UPDATE … RETURNING, a free one if any); a trigger moves it to each new audit row of its chain,
    so ``ecert audit verify`` also sees rows cut off the end of a chain."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int | None] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (CheckConstraint("id BETWEEN 1 AND 64", name="audit_chain_head_stripes"),)


class AuditAnchor(BigIntBase):
    """One per chain and purge batch of the oldest audit rows: the chain's last purged row's id
    and MAC, so that chain verifies from here. MACed under the audit key and chained to the
    previous anchor (of any chain), so an anchor cannot be forged or dropped to hide a deletion
    (ecert/security/auditpurge.py)."""

    __tablename__ = "audit_anchors"

    #: The chain whose rows up to ``through_id`` were purged; NULL for rows written before the
    #: chains existed.
    chain: Mapped[int | None] = mapped_column(SmallInteger)
    through_id: Mapped[int] = mapped_column(BigInteger)
    through_hash: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
    prev_mac: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))
