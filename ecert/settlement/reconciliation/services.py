"""Reconcile an institution's business day: totals, the 3201 check, the 3202 detail stream.

A settlement counts on its business day; a reversal counts on the business day of the reversal
(as on the national platform), whatever the day of the bill it reverses, under that bill's
medical and insurance type. Amounts are net: settlements − reversals. Counts stay apart.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ecert.settlement.reconciliation import repositories
from ecert.settlement.reconciliation.repositories import Filters, Runner
from ecert.settlement.reconciliation.schemas import (
    ClearingType,
    DetailLine,
    Figures,
    Reconciliation,
    ReconciliationCheck,
    ReconciliationLine,
    ReconciliationResult,
    Totals,
)

#: med_type → national clearing type: outpatient kinds (general, chronic/special, maternity
#: outpatient) clear as 11, admissions (general, maternity) as 21, pharmacy purchases as 41;
#: any other type as 99.
CLEARING_TYPES: dict[str, ClearingType] = {
    "11": "11",
    "14": "11",
    "51": "11",
    "21": "21",
    "52": "21",
    "41": "41",
}
#: Rows per query of the detail stream (one short transaction each).
BATCH = 500


def clearing_type(med_type: str) -> ClearingType:
    return CLEARING_TYPES.get(med_type, "99")


def filters(clearing: ClearingType | None, insurance: str | None) -> Filters:
    """Conditions on the settlement (a reversal is filtered by the bill it reverses)."""
    if clearing == "99":
        return repositories.settlement_filters(other_than=list(CLEARING_TYPES), insurance=insurance)
    med_types = None
    if clearing is not None:
        med_types = [m for m, c in CLEARING_TYPES.items() if c == clearing]
    return repositories.settlement_filters(med_types=med_types, insurance=insurance)


async def reconcile(
    session: AsyncSession,
    code: str,
    day: dt.date,
    clearing: ClearingType | None = None,
    insurance: str | None = None,
) -> Reconciliation:
    """The day report (docs/settlement.md): totals apart, ``net`` amounts, and every line."""
    where = filters(clearing, insurance)
    s, r = await repositories.day_totals(session, code, day, where)
    net = Totals(
        count=s.count,  # settlements: reversals are counted apart
        total=s.total - r.total,
        fund_paid=s.fund_paid - r.fund_paid,
        account_paid=s.account_paid - r.account_paid,
        cash_paid=s.cash_paid - r.cash_paid,
    )
    details = [
        ReconciliationLine(
            kind=line.kind,
            id=line.id,
            settlement_id=line.settlement_id,
            at=line.at,
            total=line.total,
            fund_paid=line.fund_paid,
            account_paid=line.account_paid,
            cash_paid=line.cash_paid,
        )
        for kind in ("settlement", "reversal")
        async for batch in _batches(repositories.runner(session), kind, code, day, where)
        for line in batch
    ]
    return Reconciliation(
        date=day, institution_code=code, settlements=s, reversals=r, net=net, details=details
    )


async def check(
    session: AsyncSession, code: str, data: ReconciliationCheck
) -> ReconciliationResult:
    """The 3201 check: our net figures for the day against the institution's."""
    s, r = await repositories.day_totals(
        session, code, data.date, filters(data.clearing_type, data.insurance_type)
    )
    ours = Figures(
        settlement_count=s.count,
        reversal_count=r.count,
        total=s.total - r.total,
        fund_paid=s.fund_paid - r.fund_paid,
        account_paid=s.account_paid - r.account_paid,
    )
    theirs = Figures(
        settlement_count=data.settlement_count,
        reversal_count=data.reversal_count,
        total=data.total,
        fund_paid=data.fund_paid,
        account_paid=data.account_paid,
    )
    differences = msgspec.convert(
        {
            key: None if value is None else getattr(ours, key) - value
            for key, value in msgspec.structs.asdict(theirs).items()
        },
        Figures,
    )
    matched = all(not value for value in msgspec.structs.astuple(differences))
    return ReconciliationResult(
        result="match" if matched else "mismatch",
        date=data.date,
        institution_code=code,
        clearing_type=data.clearing_type,
        insurance_type=data.insurance_type,
        ours=ours,
        theirs=theirs,
        differences=differences,
    )


async def detail_stream(
    sessions: async_sessionmaker[AsyncSession],
    code: str,
    day: dt.date,
    clearing: ClearingType | None = None,
    insurance: str | None = None,
) -> AsyncIterator[bytes]:
    """JSON Lines of the day's settlements, then its reversals, a batch at a time: each batch is
    one short read of its own (keyset on time and id), so a slow reader holds no transaction and
    the day is never held in memory."""
    where = filters(clearing, insurance)
    run = repositories.fresh_session_runner(sessions)
    for kind in ("settlement", "reversal"):
        async for batch in _batches(run, kind, code, day, where):
            yield b"".join(msgspec.json.encode(line) + b"\n" for line in batch)


async def _batches(
    run: Runner, kind: str, code: str, day: dt.date, where: Filters
) -> AsyncIterator[list[DetailLine]]:
    size = BATCH
    after: tuple[dt.datetime, uuid.UUID] | None = None
    query = repositories.settlement_lines if kind == "settlement" else repositories.reversal_lines
    while True:
        rows = await run(query(code, day, where, after).limit(size))
        if not rows:
            return
        yield [_line(kind, row) for row in rows]
        if len(rows) < size:
            return
        after = (rows[-1].at, rows[-1].id)


def _line(kind: str, row: Any) -> DetailLine:
    return DetailLine(
        kind="settlement" if kind == "settlement" else "reversal",
        clearing_type=clearing_type(row.med_type),
        **row._asdict(),
    )
