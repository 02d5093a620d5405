"""The imports' writes: batched upserts of enrolments, contributions and institutions, the
guarded claim of months to credit, and (below) PostgreSQL's set-based contributions merge.

PostgreSQL's set-based contributions merge: ``COPY`` a batch into a staging table, then one
statement merges it and credits the newly paid months, exactly once.

Why the statement looks the way it does: PostgreSQL 15 has no ``RETURNING old.*``, so a merged
row cannot say whether *this* statement changed ``credited``. Instead each staged row carries a
fresh id: a returned row with the staged id was inserted by this statement (an update keeps the
existing id), and a new row is inserted already ``credited`` when it is paid — nobody else can
have credited a row that did not exist. A month that existed uncredited and is now paid (arrears
→ back_paid) is claimed by a guarded update in a second statement, only when the first one
reports such months (rare: re-imports find them credited).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ecert import ledger
from ecert.db.models import Contribution, ContributionStatus, Enrolment, Institution
from ecert.db.upsert import bulk_upsert, raw_connection, upsert

STAGE = "import_contributions_stage"
#: The staged columns, in ``COPY`` order; ``line``: the file's, last one wins within a batch.
#: The id is the staging table's default, drawn by the server (uuid4 in Python cost ~3 µs a row).
STAGED = (
    "line",
    "person_id",
    "month",
    "base",
    "employer_amount",
    "employee_amount",
    "account_credit",
    "status",
)
_CREDITABLE = "account_credit > 0 AND status IN ('paid', 'back_paid')"
_FIELDS = "base, employer_amount, employee_amount, account_credit, status"

_CREATE = text(
    f"CREATE TEMPORARY TABLE {STAGE} (id uuid DEFAULT gen_random_uuid(), line integer, "
    "person_id uuid, month text, base bigint, employer_amount bigint, employee_amount bigint, "
    "account_credit bigint, status text) ON COMMIT DROP"
)

_MERGE = text(
    f"""
    WITH merged AS (
        INSERT INTO contributions (id, person_id, month, {_FIELDS}, credited,
                                   created_at, updated_at)
        SELECT DISTINCT ON (person_id, month)
               id, person_id, month, {_FIELDS}, {_CREDITABLE}, :now, :now
        FROM {STAGE}
        ORDER BY person_id, month, line DESC
        ON CONFLICT (person_id, month) DO UPDATE SET
            base = excluded.base, employer_amount = excluded.employer_amount,
            employee_amount = excluded.employee_amount, account_credit = excluded.account_credit,
            status = excluded.status, updated_at = excluded.updated_at
        RETURNING id, person_id, month, account_credit, status, credited
    ),
    claimed AS (
        SELECT m.person_id, m.month, m.account_credit
        FROM merged m JOIN {STAGE} s ON s.id = m.id
        WHERE m.credited
    ),
    {ledger.credit_claimed_sql("claimed")}
    SELECT count(*) FROM merged WHERE NOT credited AND {_CREDITABLE}
    """  # noqa: S608 - names are this module's constants
)

#: Months that existed uncredited and are now paid: the guarded update claims each once (a
#: concurrent import waits on the row lock, then finds ``credited`` true and skips it).
_CLAIM = text(
    f"""
    WITH claimed AS (
        UPDATE contributions c SET credited = true
        FROM {STAGE} s
        WHERE c.person_id = s.person_id AND c.month = s.month
          AND NOT c.credited AND c.account_credit > 0 AND c.status IN ('paid', 'back_paid')
        RETURNING c.person_id, c.month, c.account_credit
    ),
    {ledger.credit_claimed_sql("claimed")}
    SELECT count(*) FROM claimed
    """  # noqa: S608 - names are this module's constants
)


async def merge_contributions(
    session: AsyncSession, records: Sequence[tuple[Any, ...]], now: dt.datetime
) -> None:
    """Merge staged rows (``STAGED`` order) and credit newly paid months."""
    if not records:
        return
    await session.execute(_CREATE)
    connection = await raw_connection(session)
    await connection.copy_records_to_table(STAGE, records=records, columns=STAGED)
    pending = (await session.execute(_MERGE, {"now": now})).scalar_one()
    if pending:
        await session.execute(_CLAIM, {"now": now})


def staged(line: int, person_id: uuid.UUID, row: Any) -> tuple[Any, ...]:
    """One ``STAGED`` record from a validated contribution row."""
    return (
        line,
        person_id,
        row.month,
        row.base,
        row.employer_amount,
        row.employee_amount,
        row.account_credit,
        row.status,
    )


async def upsert_enrolments(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await bulk_upsert(
        session,
        Enrolment.__table__,
        rows,
        keys=("person_id", "insurance_type"),
        update=("area", "employer", "status", "start_date", "end_date", "updated_at"),
    )


async def upsert_contributions(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """The portable path (SQLite): months land without crediting (see :func:`claim_credits`)."""
    await bulk_upsert(
        session,
        Contribution.__table__,
        rows,
        keys=("person_id", "month"),
        update=(
            "base",
            "employer_amount",
            "employee_amount",
            "account_credit",
            "status",
            "updated_at",
        ),
    )


async def claim_credits(
    session: AsyncSession, person_ids: set[uuid.UUID]
) -> Sequence[Row[tuple[uuid.UUID, str, int]]]:
    """(person, month, amount) of the paid months not yet credited, now marked credited.

    One guarded update: a concurrent or repeated import of the same month finds ``credited``
    already true and claims nothing."""
    return (
        await session.execute(
            update(Contribution)
            .where(
                Contribution.person_id.in_(person_ids),
                Contribution.credited.is_(False),
                Contribution.account_credit > 0,
                Contribution.status.in_((ContributionStatus.PAID, ContributionStatus.BACK_PAID)),
            )
            .values(credited=True)
            .returning(Contribution.person_id, Contribution.month, Contribution.account_credit)
        )
    ).all()


async def upsert_institutions(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await upsert(
        session,
        Institution.__table__,
        rows,
        keys=("code",),
        update=("name", "kind", "level", "area", "designated", "updated_at"),
    )
