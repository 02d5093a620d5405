"""The ledger's queries: personal accounts (guarded movements with ledger rows, locks),
year-to-date usage, policies, the catalogue, and what mutual aid may draw on.

Plain async functions taking the caller's session; none commits."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from typing import Any

import msgspec
from sqlalchemy import BigInteger, Uuid, column, select, update, values
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.benefits import Policy, YearToDate
from ecert.db.models import (
    Account,
    BenefitUsage,
    CatalogueEntry,
    LedgerEntry,
    MutualAidAuthorisation,
    Person,
    PolicyRow,
    utcnow,
)
from ecert.db.upsert import bulk_insert, dialect_insert, insert_ignore, upsert
from ecert.ledger.catalogue import Entry
from ecert.ledger.exceptions import InsufficientBalance

#: Categories whose scheme has a personal account that may pay for relatives (mutual aid).
HOLDER_CATEGORIES = ("employee", "retired")

USAGE_FIELDS = tuple(f.name for f in msgspec.structs.fields(YearToDate))


async def ensure_account(session: AsyncSession, person_id: uuid.UUID) -> None:
    await insert_ignore(
        session,
        Account.__table__,
        {"id": uuid.uuid4(), "person_id": person_id, "balance": 0},
    )


async def move(
    session: AsyncSession,
    person_id: uuid.UUID,
    amount: int,
    *,
    kind: str,
    settlement_id: uuid.UUID | None = None,
    memo: str | None = None,
) -> int:
    """Add ``amount`` (negative to debit) with a guard, write the ledger row; new balance."""
    guard = Account.balance + amount >= 0
    result = await session.execute(
        update(Account)
        .where(Account.person_id == person_id, guard)
        .values(balance=Account.balance + amount)
        .returning(Account.id, Account.balance)
    )
    row = result.one_or_none()
    if row is None:
        raise InsufficientBalance()
    account_id, balance = row
    session.add(
        LedgerEntry(
            account_id=account_id,
            kind=kind,
            amount=amount,
            balance_after=balance,
            settlement_id=settlement_id,
            memo=memo,
        )
    )
    return int(balance)


async def credit(session: AsyncSession, person_id: uuid.UUID, amount: int, memo: str) -> int:
    """A monthly (or any) credit to the personal account, creating the account if needed."""
    await ensure_account(session, person_id)
    return await move(session, person_id, amount, kind="credit", memo=memo)


async def credit_many(
    session: AsyncSession, credits: dict[uuid.UUID, list[tuple[int, str]]]
) -> None:
    """Credits for many people (amount, memo each): one balance update a person, and the ledger
    rows in one batched insert — the import's hot path."""
    if not credits:
        return
    await upsert(
        session,
        Account.__table__,
        [
            {
                "id": uuid.uuid4(),
                "person_id": p,
                "balance": 0,
                "created_at": utcnow(),
                "updated_at": utcnow(),
            }
            for p in credits
        ],
        keys=("person_id",),
        update=(),
    )
    totals = {p: sum(amount for amount, _ in items) for p, items in credits.items()}
    moved = await _add_balances(session, totals)
    entries = []
    for person_id, items in credits.items():
        account_id, balance = moved[person_id]
        running = balance - totals[person_id]
        for amount, memo in items:
            running += amount
            entries.append(
                {
                    "account_id": account_id,
                    "kind": "credit",
                    "amount": amount,
                    "balance_after": running,
                    "settlement_id": None,
                    "memo": memo,
                    "at": utcnow(),
                }
            )
    await bulk_insert(session, LedgerEntry.__table__, entries)


def credit_claimed_sql(claimed: str) -> str:
    """PostgreSQL: CTEs that credit the rows of the CTE named ``claimed`` (``person_id, month,
    account_credit``, each row claimed exactly once by the caller's statement) — one balance
    upsert a person, taken in person order (two imports of overlapping people wait, never
    deadlock), and one ``credit`` ledger row a month with its running balance. Append to a
    ``WITH`` list; ``claimed`` is the caller's own name, never input."""
    return f"""
    credit_totals AS (
        SELECT person_id, sum(account_credit) AS total FROM {claimed} GROUP BY person_id
    ),
    credit_accounts AS (
        INSERT INTO accounts (id, person_id, balance, created_at, updated_at)
        SELECT gen_random_uuid(), person_id, total, :now, :now
        FROM credit_totals ORDER BY person_id
        ON CONFLICT (person_id) DO UPDATE
        SET balance = accounts.balance + excluded.balance, updated_at = excluded.updated_at
        RETURNING id, person_id, balance
    ),
    credit_entries AS (
        INSERT INTO ledger_entries (account_id, kind, amount, balance_after, memo, at)
        SELECT a.id, 'credit', c.account_credit,
               a.balance - t.total
                 + sum(c.account_credit) OVER (PARTITION BY c.person_id ORDER BY c.month),
               'contribution ' || c.month, :now
        FROM {claimed} c
        JOIN credit_totals t USING (person_id)
        JOIN credit_accounts a USING (person_id)
        ORDER BY c.person_id, c.month
    )"""  # noqa: S608 - ``claimed`` is a CTE name of our own


async def _add_balances(
    session: AsyncSession, totals: dict[uuid.UUID, int]
) -> dict[uuid.UUID, tuple[uuid.UUID, int]]:
    """Add each person's total to their balance: {person: (account id, new balance)}.

    PostgreSQL: the rows are locked in person order first (two imports crediting overlapping
    people cannot deadlock), then one ``UPDATE … FROM (VALUES …)`` moves them all. SQLite, which
    writes one transaction at a time anyway, takes one update a person.
    """
    if session.get_bind().dialect.name != "postgresql":
        moved = {}
        for person_id, total in totals.items():
            row = (
                await session.execute(
                    update(Account)
                    .where(Account.person_id == person_id)
                    .values(balance=Account.balance + total)
                    .returning(Account.id, Account.balance)
                )
            ).one()
            moved[person_id] = (row[0], int(row[1]))
        return moved
    people = list(totals)
    await session.execute(
        select(Account.id)
        .where(Account.person_id.in_(people))
        .order_by(Account.person_id)
        .with_for_update()
    )
    amounts = values(column("person_id", Uuid), column("total", BigInteger), name="amounts").data(
        [(p, totals[p]) for p in people]
    )
    rows = await session.execute(
        update(Account)
        .where(Account.person_id == amounts.c.person_id)
        .values(balance=Account.balance + amounts.c.total)
        .returning(Account.person_id, Account.id, Account.balance)
    )
    return {person_id: (account_id, int(balance)) for person_id, account_id, balance in rows}


async def lock_person(
    session: AsyncSession,
    person_id: uuid.UUID,
    year: int,
    insurance: str,
    *,
    also: Collection[uuid.UUID] = (),
) -> tuple[YearToDate, int | None]:
    """Serialise a person's money writes and read what they change: (year-to-date usage, account
    balance or None without an account). Each statement takes its row lock (PostgreSQL) or the
    database write lock (SQLite) and returns the latest committed values, so two round trips
    both lock and read.

    ``also``: other people's accounts the caller will move (mutual aid). Every money write takes
    its own usage row first and then accounts in person order, so two settlements drawing on
    overlapping family accounts wait for each other and never deadlock."""
    ytd = await lock_usage(session, person_id, year, insurance)
    if also:
        await session.execute(
            select(Account.id)
            .where(Account.person_id.in_({person_id, *also}))
            .order_by(Account.person_id)
            .with_for_update()
        )
    balance = await session.scalar(
        update(Account)
        .where(Account.person_id == person_id)
        .values(balance=Account.balance)
        .returning(Account.balance)
    )
    return ytd, None if balance is None else int(balance)


async def lock_usage(
    session: AsyncSession, person_id: uuid.UUID, year: int, insurance: str
) -> YearToDate:
    """Lock (creating it if needed) and read one usage row. A layer above the cap keeps its
    usage under its own insurance type, locked after the basic row (``lock_person``) by the
    same person's money writes only, so the order is always basic row, accounts, layer row."""
    statement = dialect_insert(session, BenefitUsage.__table__).values(
        id=uuid.uuid4(), person_id=person_id, year=year, insurance_type=insurance
    )
    usage_row = (
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["person_id", "year", "insurance_type"],
                set_={"year": statement.excluded.year},
            ).returning(*(BenefitUsage.__table__.c[f] for f in USAGE_FIELDS))
        )
    ).one()
    return YearToDate(**dict(zip(USAGE_FIELDS, usage_row, strict=True)))


async def usage(
    session: AsyncSession, person_id: uuid.UUID, year: int, insurance: str
) -> YearToDate:
    row = await session.scalar(
        select(BenefitUsage)
        .where(
            BenefitUsage.person_id == person_id,
            BenefitUsage.year == year,
            BenefitUsage.insurance_type == insurance,
        )
        .execution_options(populate_existing=True)
    )
    if row is None:
        return YearToDate()
    return YearToDate(**{f: getattr(row, f) for f in USAGE_FIELDS})


async def store_usage(
    session: AsyncSession, person_id: uuid.UUID, year: int, insurance: str, value: YearToDate
) -> None:
    await session.execute(
        update(BenefitUsage)
        .where(
            BenefitUsage.person_id == person_id,
            BenefitUsage.year == year,
            BenefitUsage.insurance_type == insurance,
        )
        .values(**msgspec.structs.asdict(value))
    )


async def balance(session: AsyncSession, person_id: uuid.UUID) -> int | None:
    """The account balance; None when the person has no personal account."""
    value = await session.scalar(
        select(Account.balance)
        .where(Account.person_id == person_id)
        .execution_options(populate_existing=True)
    )
    return None if value is None else int(value)


async def upsert_policies(session: AsyncSession, policies: Iterable[dict[str, Any]]) -> int:
    """Validate and store policies (docs/import.md), replacing the same area/type/year/category."""
    rows = []
    for raw in policies:
        policy = msgspec.convert(raw, Policy)
        rows.append(
            {
                "id": uuid.uuid4(),
                "area": policy.area,
                "insurance_type": policy.insurance_type,
                "year": policy.year,
                "category": policy.category,
                "body": raw,
            }
        )
    await upsert(
        session,
        PolicyRow.__table__,
        rows,
        keys=("area", "insurance_type", "year", "category"),
        update=("body",),
    )
    return len(rows)


async def find_policy(
    session: AsyncSession, area: str, insurance: str, year: int, category: str
) -> Policy | None:
    """The policy in force in ``year``: the newest imported for a year up to it (a new year's
    bills are priced by last year's policy until this year's is imported)."""
    body = await session.scalar(
        select(PolicyRow.body)
        .where(
            PolicyRow.area == area,
            PolicyRow.insurance_type == insurance,
            PolicyRow.year <= year,
            PolicyRow.category == category,
        )
        .order_by(PolicyRow.year.desc())
        .limit(1)
    )
    return None if body is None else msgspec.convert(body, Policy)


# --- the catalogue -----------------------------------------------------------------------------


def _entry(row: CatalogueEntry) -> Entry:
    return Entry(
        list_code=row.list_code,
        item_class=row.item_class,  # type: ignore[arg-type]  # the table's CHECK
        valid_from=row.valid_from,
        first_self_pay_ratio=row.first_self_pay_ratio,
        price_cap=row.price_cap,
        valid_to=row.valid_to,
        gender=row.gender,  # type: ignore[arg-type]
        min_age=row.min_age,
        max_age=row.max_age,
        med_types=frozenset(row.med_types.split(",")) if row.med_types else None,
    )


async def catalogue_entries(
    session: AsyncSession, codes: Iterable[str]
) -> dict[str, list[Entry]] | None:
    """Each code's entries ({} for a code not in the catalogue); None: no catalogue loaded."""
    wanted = sorted(set(codes))
    rows = (
        await session.scalars(select(CatalogueEntry).where(CatalogueEntry.list_code.in_(wanted)))
    ).all()
    if not rows and await session.scalar(select(CatalogueEntry.id).limit(1)) is None:
        return None
    found: dict[str, list[Entry]] = {code: [] for code in wanted}
    for row in rows:
        found[row.list_code].append(_entry(row))
    return found


async def upsert_catalogue(session: AsyncSession, rows: Iterable[dict[str, Any]]) -> None:
    """Store catalogue rows (import format), replacing the same code and start date."""
    now = utcnow()
    values = {
        (r["list_code"], r["valid_from"]): {
            "id": uuid.uuid4(),
            **r,
            "created_at": now,
            "updated_at": now,
        }
        for r in rows
    }
    columns = [c for c in next(iter(values.values()), {}) if c not in ("id", "created_at")]
    await upsert(
        session,
        CatalogueEntry.__table__,
        list(values.values()),
        keys=("list_code", "valid_from"),
        update=[c for c in columns if c not in ("list_code", "valid_from")],
    )


# --- what mutual aid may draw on ---------------------------------------------------------------


async def mutual_aid_sources(
    session: AsyncSession, relative_id: uuid.UUID
) -> list[MutualAidAuthorisation]:
    """The live authorisations that may pay for the relative, in drawing order (oldest first);
    a holder who is no longer an employee or retiree is skipped."""
    return list(
        (
            await session.scalars(
                select(MutualAidAuthorisation)
                .join(Person, Person.id == MutualAidAuthorisation.holder_id)
                .where(
                    MutualAidAuthorisation.relative_id == relative_id,
                    MutualAidAuthorisation.revoked_at.is_(None),
                    Person.category.in_(HOLDER_CATEGORIES),
                )
                .order_by(MutualAidAuthorisation.created_at, MutualAidAuthorisation.id)
            )
        ).all()
    )


async def holder_balances(
    session: AsyncSession, holders: Iterable[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """The holders' balances as committed now (after ``lock_person(also=…)``: locked)."""
    wanted = set(holders)
    if not wanted:
        return {}
    rows = await session.execute(
        select(Account.person_id, Account.balance).where(Account.person_id.in_(wanted))
    )
    return {person_id: int(balance) for person_id, balance in rows}


async def mutual_aid_available(session: AsyncSession, relative_id: uuid.UUID) -> int:
    """What the authorising accounts hold together (previews and estimates: nothing locked)."""
    sources = await mutual_aid_sources(session, relative_id)
    found = await holder_balances(session, (a.holder_id for a in sources))
    return sum(found.values())
