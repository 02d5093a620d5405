"""The head of the audit chain: one row, the lock that serialises appends and the last link."""

from __future__ import annotations

from advanced_alchemy.base import AdvancedDeclarativeBase
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
