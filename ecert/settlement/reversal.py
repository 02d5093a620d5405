"""Reversals: full or partial, never more than what is left, exactly once per Idempotency-Key.

Three kinds (docs/settlement.md): neither ``amount`` nor ``lines`` is the full cancel (2208: every
pool gets back what it has not yet got back, usage fully back); ``lines`` is a return that re-prices
(:mod:`ecert.settlement.returns`); ``amount`` alone is the partial reversal below. Amount
reversals and line returns of one settlement do not mix (each refuses after the other); a full
cancel follows either.

A partial reversal refunds the pools (fund, account, mutual aid, cash) in proportion to what each
paid, on running totals: after reversals adding up to ``c`` fen, each pool has got back
``allocate(c)``, so many small reversals return exactly what one large one would, and the last one
returns exactly what remains of each pool. Mutual aid goes back to the relatives' accounts, the
last drawn first (``mutual_aid.refund_mutual_aid``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from ecert import ledger
from ecert.benefits import INPATIENT_TYPES, YearToDate
from ecert.clock import business_date
from ecert.db.models import Reversal, ReversalKind
from ecert.errors import ValidationFailed
from ecert.metrics import REVERSALS
from ecert.security.audit import record_audit
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime
from ecert.settlement import idempotency, mutual_aid, returns
from ecert.settlement.context import designated_institution
from ecert.settlement.exceptions import ReversalModeConflict, ReversalTooLarge
from ecert.settlement.repositories import lock_settlement, was_reversed
from ecert.settlement.schemas import ReversalRequest, ReversalResult
from ecert.settlement.services import owned

#: Each pool: (what it paid, what it has got back) on the settlement row. Ties in rounding go to
#: the earlier pool, so a lone fen goes back to the patient's cash first.
POOLS = {
    "cash": ("cash_paid", "reversed_cash"),
    "account": ("account_paid", "reversed_account"),
    "fund": ("fund_paid", "reversed_fund"),
}
#: The mutual aid pool (its amounts live in ``mutual_aid_draws``, not on the settlement row).
MUTUAL_AID = "account_mutual_aid"


def allocate(cumulative: int, paid: Mapping[str, int]) -> dict[str, int]:
    """What each pool has got back once ``cumulative`` fen of the settlement are reversed.

    Sainte-Laguë (highest averages): fen go one by one to the pool with the highest
    ``paid / (given + ½)``, ties to the earlier pool. Largest remainder is not used on purpose:
    it can take a fen back from a pool as the amount grows (the Alabama paradox), which would be
    a negative refund. This never does; no pool gets more than it paid, and ``allocate(total)``
    is exactly what each paid.
    """
    total = sum(paid.values())
    if not 0 <= cumulative <= total:
        raise ValueError(f"{cumulative} fen is outside 0..{total}")
    if cumulative == 0:
        return dict.fromkeys(paid, 0)
    rank = {pool: -i for i, pool in enumerate(paid)}

    def priority(pool: str, given: int) -> tuple[Fraction, int]:
        return Fraction(2 * paid[pool], 2 * given + 1), rank[pool]

    # Start from each pool's quota rounded half up (a valid Sainte-Laguë answer for some nearby
    # amount), then add or take back single fen: at most about one step per pool, whatever the
    # amounts.
    given = {p: (2 * cumulative * fen + total) // (2 * total) for p, fen in paid.items()}
    while sum(given.values()) < cumulative:
        given[max(paid, key=lambda p: priority(p, given[p]))] += 1
    while sum(given.values()) > cumulative:
        given[min((p for p in paid if given[p]), key=lambda p: priority(p, given[p] - 1))] -= 1
    return given


async def reverse(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    settlement_id: uuid.UUID,
    data: ReversalRequest,
    key: str | None,
) -> tuple[int, dict[str, Any], bool]:
    if data.amount is not None and data.lines is not None:
        raise ValidationFailed("send amount or lines, not both")
    return await idempotency.run_once(
        session,
        runtime,
        principal.client_id,
        key,
        idempotency.fingerprint(f"/v1/settlements/{settlement_id}/reversal", data),
        lambda: _reverse(session, principal, settlement_id, data),
    )


async def _reverse(
    session: AsyncSession, principal: Principal, settlement_id: uuid.UUID, data: ReversalRequest
) -> dict[str, Any]:
    await owned(session, principal, settlement_id)
    await designated_institution(session, principal)  # 2208 is a settlement transaction too
    # Take the settlement's row lock before reading what is left of it.
    await lock_settlement(session, settlement_id)
    s = await owned(session, principal, settlement_id)
    if data.lines is not None:
        return await returns.return_lines(session, principal, s, data)
    if data.amount is not None and s.returned:
        raise ReversalModeConflict()
    remaining = s.total - s.reversed_total
    amount = remaining if data.amount is None else data.amount
    # A 0-fen settlement can still be cancelled, once: the cancel takes its admission back.
    zero_cancel = s.total == 0 and data.amount is None and not await was_reversed(session, s.id)
    if (remaining == 0 and not zero_cancel) or amount > remaining:
        raise ReversalTooLarge(f"{remaining} fen are left to reverse")
    paid = {pool: getattr(s, column) for pool, (column, _) in POOLS.items()}
    already = {pool: getattr(s, column) for pool, (_, column) in POOLS.items()}
    # Mutual aid (家庭共济) is a pool too; what it paid and got back are kept with its draws.
    paid[MUTUAL_AID], already[MUTUAL_AID] = await mutual_aid.refunded_so_far(session, s.id)
    after = s.reversed_total + amount
    # On running totals: with reversals made this way, ``already`` is allocate(reversed_total),
    # so this is allocate(after) − allocate(before). A settlement partly reversed before running
    # totals may have given a pool more; its remainder is then split by what is left.
    shares = {p: fen - already[p] for p, fen in allocate(after, paid).items()}
    if min(shares.values()) < 0:
        shares = allocate(amount, {p: paid[p] - already[p] for p in paid})
    final = amount == remaining
    kind = (ReversalKind.FULL if data.amount is None else ReversalKind.AMOUNT).value
    deductible_left = s.deductible_paid - s.reversed_deductible
    share = after * s.deductible_paid // s.total if s.total else 0  # a 0-fen bill met none
    deductible = max(0, min(deductible_left, share - s.reversed_deductible))
    holders = await mutual_aid.holders_drawn(session, s.id)
    ytd, _ = await ledger.lock_person(session, s.person_id, s.year, s.insurance_type, also=holders)
    refunds = {p: shares.get(p, 0) for p in returns.POOLS}
    await returns.route(session, s, refunds, data.reason)
    basic_fund = shares["fund"] - await returns.reverse_layer(session, s, shares["fund"], final)
    care = "inpatient" if s.med_type in INPATIENT_TYPES else "outpatient"
    changes = {
        f"{care}_fund_paid": max(getattr(ytd, f"{care}_fund_paid") - basic_fund, 0),
        f"{care}_deductible_used": max(getattr(ytd, f"{care}_deductible_used") - deductible, 0),
    }
    if final and care == "inpatient":
        changes["inpatient_admissions"] = max(ytd.inpatient_admissions - 1, 0)
    new_usage: YearToDate = msgspec.structs.replace(ytd, **changes)
    await ledger.store_usage(session, s.person_id, s.year, s.insurance_type, new_usage)
    s.reversed_total += amount
    for pool, (_, column) in POOLS.items():
        setattr(s, column, already[pool] + shares[pool])
    s.reversed_deductible += deductible
    reversal = Reversal(
        settlement_id=s.id,
        institution_code=s.institution_code,
        business_date=business_date(),
        amount=amount,
        fund_refund=shares["fund"],
        account_refund=shares["account"],
        account_mutual_aid_refund=shares[MUTUAL_AID],
        cash_refund=shares["cash"],
        reason=data.reason,
        kind=kind,
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
    REVERSALS.labels(s.med_type).inc()  # here, not in a replay: only a written reversal counts
    result = ReversalResult(
        reversal_id=reversal.id,
        settlement_id=s.id,
        kind=kind,
        amount=amount,
        fund_refund=shares["fund"],
        account_refund=shares["account"],
        account_mutual_aid_refund=shares[MUTUAL_AID],
        cash_refund=shares["cash"],
        refunds=refunds,
        remaining=s.total - s.reversed_total,
    )
    return msgspec.to_builtins(result)  # type: ignore[no-any-return]
