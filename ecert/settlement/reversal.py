"""Reversals: full or partial, never more than what is left, exactly once per Idempotency-Key.

A partial reversal refunds the fund, the account and the cash part in proportion to the original
split (what rounding leaves over goes to cash first); the last reversal refunds exactly what
remains of each, so a settlement reversed in pieces nets to zero fen for fen.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.benefits import INPATIENT_TYPES, YearToDate
from ecert.clock import business_date
from ecert.db.models import Reversal, Settlement
from ecert.runtime import Runtime
from ecert.security.audit import record_audit
from ecert.security.tokens import Principal
from ecert.settlement import accounts, idempotency
from ecert.settlement.exceptions import ReversalTooLarge
from ecert.settlement.schemas import ReversalRequest, ReversalResult
from ecert.settlement.services import owned

POOLS = ("cash", "account", "fund")


def allocate(
    amount: int, original: dict[str, int], left: dict[str, int], total: int
) -> dict[str, int]:
    """Split ``amount`` over the pools in proportion to ``original``, within what is ``left``."""
    if amount == sum(left.values()):
        return dict(left)
    shares = {p: min(left[p], amount * original[p] // total) for p in POOLS}
    rest = amount - sum(shares.values())
    for pool in POOLS:
        extra = min(rest, left[pool] - shares[pool])
        shares[pool] += extra
        rest -= extra
    return shares


async def reverse(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    settlement_id: uuid.UUID,
    data: ReversalRequest,
    key: str | None,
) -> tuple[int, dict[str, Any], bool]:
    claimed = await idempotency.claim(
        runtime,
        principal.client_id,
        key,
        idempotency.fingerprint(f"/v1/settlements/{settlement_id}/reversal", data),
    )
    if claimed.replay is not None:
        return (*claimed.replay, True)
    try:
        body = await _reverse(session, principal, settlement_id, data)
        await idempotency.complete(session, claimed, 201, body)
    except BaseException:
        await session.rollback()
        await idempotency.release(runtime, claimed)
        raise
    return 201, body, False


async def _reverse(
    session: AsyncSession, principal: Principal, settlement_id: uuid.UUID, data: ReversalRequest
) -> dict[str, Any]:
    await owned(session, principal, settlement_id)
    # Take the settlement's row lock before reading what is left of it.
    await session.execute(
        update(Settlement)
        .where(Settlement.id == settlement_id)
        .values(reversed_total=Settlement.reversed_total)
    )
    s = await owned(session, principal, settlement_id)
    remaining = s.total - s.reversed_total
    amount = remaining if data.amount is None else data.amount
    if remaining == 0 or amount > remaining:
        raise ReversalTooLarge(f"{remaining} fen are left to reverse")
    left = {
        "fund": s.fund_paid - s.reversed_fund,
        "account": s.account_paid - s.reversed_account,
        "cash": s.cash_paid - s.reversed_cash,
    }
    original = {"fund": s.fund_paid, "account": s.account_paid, "cash": s.cash_paid}
    refund = allocate(amount, original, left, s.total)
    final = amount == remaining
    deductible_left = s.deductible_paid - s.reversed_deductible
    deductible = (
        deductible_left if final else min(deductible_left, amount * s.deductible_paid // s.total)
    )
    ytd, _ = await accounts.lock_person(session, s.person_id, s.year, s.insurance_type)
    if refund["account"]:
        await accounts.move(
            session,
            s.person_id,
            refund["account"],
            kind="reversal",
            settlement_id=s.id,
            memo=data.reason,
        )
    care = "inpatient" if s.med_type in INPATIENT_TYPES else "outpatient"
    changes = {
        f"{care}_fund_paid": max(getattr(ytd, f"{care}_fund_paid") - refund["fund"], 0),
        f"{care}_deductible_used": max(getattr(ytd, f"{care}_deductible_used") - deductible, 0),
    }
    if final and care == "inpatient":
        changes["inpatient_admissions"] = max(ytd.inpatient_admissions - 1, 0)
    new_usage: YearToDate = msgspec.structs.replace(ytd, **changes)
    await accounts.store_usage(session, s.person_id, s.year, s.insurance_type, new_usage)
    s.reversed_total += amount
    s.reversed_fund += refund["fund"]
    s.reversed_account += refund["account"]
    s.reversed_cash += refund["cash"]
    s.reversed_deductible += deductible
    reversal = Reversal(
        settlement_id=s.id,
        institution_code=s.institution_code,
        business_date=business_date(),
        amount=amount,
        fund_refund=refund["fund"],
        account_refund=refund["account"],
        cash_refund=refund["cash"],
        reason=data.reason,
    )
    session.add(reversal)
    await session.flush()
    await record_audit(
        session,
        principal,
        s.person_id,
        "settlement.reverse",
        "ok",
        {"settlement_id": str(s.id), "amount": amount},
    )
    result = ReversalResult(
        reversal_id=reversal.id,
        settlement_id=s.id,
        amount=amount,
        fund_refund=refund["fund"],
        account_refund=refund["account"],
        cash_refund=refund["cash"],
        remaining=s.total - s.reversed_total,
    )
    return msgspec.to_builtins(result)  # type: ignore[no-any-return]
