"""Verification and money: single-use marks, ec_tokens, policies, accounts, ledger, settlements."""

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
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ecert.db.models.base import BigIntBase, JsonB, UUIDBase, str_enum, utcnow


class SettlementStatus(enum.StrEnum):
    """A settlement as callers see it, from what has been reversed (not a stored column)."""

    SETTLED = "settled"
    PARTIALLY_REVERSED = "partially_reversed"
    REVERSED = "reversed"


class IdempotencyStatus(enum.StrEnum):
    """An Idempotency-Key's claim: running, then done with its stored answer."""

    IN_PROGRESS = "in_progress"
    DONE = "done"


class QrUse(BigIntBase):
    """A verified QR token; the unique key is what makes a code single-use."""

    __tablename__ = "qr_uses"

    iss: Mapped[str] = mapped_column(String(6))
    sub: Mapped[str] = mapped_column(String(24))
    jti: Mapped[str] = mapped_column(String(16))
    institution_code: Mapped[str] = mapped_column(String(20))
    #: Indexed for ``ecert purge``.
    at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow, index=True)
    #: The QR's own ``exp`` (migration 0013): the partition key on PostgreSQL, fixed by the
    #: signed code, so a replay meets the same unique key (iss, sub, jti, expires_at) there.
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))

    __table_args__ = (UniqueConstraint("iss", "sub", "jti", name="uq_qr_use"),)


class EcToken(BigIntBase):
    """The settlement token a verify returns, bound to one institution for a short time."""

    __tablename__ = "ec_tokens"

    token: Mapped[str] = mapped_column(String(38), unique=True)
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"))
    ecert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ecerts.id", ondelete="CASCADE"))
    institution_code: Mapped[str] = mapped_column(String(20))
    business_type: Mapped[str | None] = mapped_column(String(8))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), index=True)
    #: The e-cert's version at verify: a rebind, unbind or suspension since then kills the token.
    ecert_version: Mapped[int] = mapped_column(Integer)
    #: Set by the one settlement (or visit) the token opens; a guarded update makes it once.
    spent_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))


class PolicyRow(UUIDBase):
    """A benefit policy (docs/import.md format, kept whole in ``body``)."""

    __tablename__ = "policies"

    area: Mapped[str] = mapped_column(String(6))
    insurance_type: Mapped[str] = mapped_column(String(3))
    year: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(16))
    body: Mapped[dict[str, Any]] = mapped_column(JsonB)

    __table_args__ = (
        UniqueConstraint("area", "insurance_type", "year", "category", name="uq_policy_key"),
    )


class Account(UUIDBase):
    """A personal account. The CHECK is the backstop; debits are guarded updates."""

    __tablename__ = "accounts"

    person_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), unique=True
    )
    balance: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (CheckConstraint("balance >= 0", name="account_balance_not_negative"),)


class LedgerEntry(BigIntBase):
    """Append-only account movements; ``amount`` is signed (credits positive)."""

    __tablename__ = "ledger_entries"

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    settlement_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    memo: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)

    __table_args__ = (
        Index("ix_ledger_account_at", "account_id", "at"),
        CheckConstraint("kind in ('credit','debit','reversal','family')", name="ledger_kind"),
    )


class BenefitUsage(UUIDBase):
    """What a person used this year under one insurance type (deductible, fund, admissions)."""

    __tablename__ = "benefit_usage"

    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"))
    year: Mapped[int] = mapped_column(Integer)
    insurance_type: Mapped[str] = mapped_column(String(3))
    outpatient_deductible_used: Mapped[int] = mapped_column(BigInteger, default=0)
    outpatient_fund_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    inpatient_deductible_used: Mapped[int] = mapped_column(BigInteger, default=0)
    inpatient_fund_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    inpatient_admissions: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        UniqueConstraint("person_id", "year", "insurance_type", name="uq_usage_person_year"),
    )


class Settlement(UUIDBase):
    """One settled bill: the split, its explanation as it was computed, and what was reversed."""

    __tablename__ = "settlements"

    institution_code: Mapped[str] = mapped_column(String(20), index=True)
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("persons.id"), index=True)
    ec_token: Mapped[str] = mapped_column(String(38))
    med_type: Mapped[str] = mapped_column(String(4))
    insurance_type: Mapped[str] = mapped_column(String(3))
    year: Mapped[int] = mapped_column(Integer)
    business_date: Mapped[dt.date] = mapped_column(Date, index=True)
    items: Mapped[list[Any]] = mapped_column(JsonB)
    total: Mapped[int] = mapped_column(BigInteger)
    fully_self_paid: Mapped[int] = mapped_column(BigInteger)
    first_self_paid: Mapped[int] = mapped_column(BigInteger)
    deductible_paid: Mapped[int] = mapped_column(BigInteger)
    fund_paid: Mapped[int] = mapped_column(BigInteger)
    account_paid: Mapped[int] = mapped_column(BigInteger)
    cash_paid: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int | None] = mapped_column(BigInteger)
    steps: Mapped[list[Any]] = mapped_column(JsonB)
    reversed_total: Mapped[int] = mapped_column(BigInteger, default=0)
    reversed_fund: Mapped[int] = mapped_column(BigInteger, default=0)
    reversed_account: Mapped[int] = mapped_column(BigInteger, default=0)
    reversed_cash: Mapped[int] = mapped_column(BigInteger, default=0)
    reversed_deductible: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The visit this settles; NULL for a one-shot settlement (docs/settlement.md).
    visit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("visits.id"), index=True)
    #: A visit settlement's fields beyond a one-shot's (over-limit, co-pay, fund parts, lines).
    detail: Mapped[dict[str, Any] | None] = mapped_column(JsonB)
    #: What the bill was priced against (policy, usage before, balance, lines), so that a return
    #: prices what remains exactly as the original was priced; NULL for settlements before 0008.
    pricing: Mapped[dict[str, Any] | None] = mapped_column(JsonB)
    #: Quantities returned so far by line number (decimal strings); NULL: none.
    returned: Mapped[dict[str, str] | None] = mapped_column(JsonB)

    __table_args__ = (
        CheckConstraint("reversed_total <= total", name="settlement_reversal_within_total"),
        Index("ix_settlement_institution_date", "institution_code", "business_date"),
    )


class ReversalKind(enum.StrEnum):
    """How a reversal was asked for: all that is left (2208), an amount, or lines (returns).

    docs/settlement.md describes the three."""

    FULL = "full"
    AMOUNT = "amount"
    LINES = "lines"


class Reversal(UUIDBase):
    """A full or partial reversal of a settlement."""

    __tablename__ = "reversals"

    settlement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("settlements.id"), index=True)
    institution_code: Mapped[str] = mapped_column(String(20))
    business_date: Mapped[dt.date] = mapped_column(Date, index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    fund_refund: Mapped[int] = mapped_column(BigInteger)
    account_refund: Mapped[int] = mapped_column(BigInteger)
    cash_refund: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200))
    account_mutual_aid_refund: Mapped[int] = mapped_column(BigInteger, default=0)
    kind: Mapped[str] = mapped_column(String(8), default=ReversalKind.AMOUNT.value)
    #: A line return's lines: [{line_no, quantity}].
    lines: Mapped[list[Any] | None] = mapped_column(JsonB)

    #: Reconciliation reads a day's reversals per institution (migration 0009).
    __table_args__ = (Index("ix_reversal_institution_date", "institution_code", "business_date"),)


class IdempotencyRecord(BigIntBase):
    """One per (caller, Idempotency-Key): the request's fingerprint and, once done, its answer."""

    __tablename__ = "idempotency_records"

    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[IdempotencyStatus] = mapped_column(
        str_enum(IdempotencyStatus, 16), default=IdempotencyStatus.IN_PROGRESS
    )
    response_status: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(JsonB)
    started_at: Mapped[dt.datetime] = mapped_column(
        DateTimeUTC(timezone=True), default=utcnow, index=True
    )
    #: Random per claim and replaced by a takeover: only the current holder may complete or
    #: release the key (the first holder of a stale claim may still be running).
    fence_token: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_scope_key"),)
