"""Settlement's hot-path SQL: one statement that reads and locks what pricing needs, one that
writes what booking writes (PostgreSQL), and the same rows one by one on SQLite. None commits.

Statements are built once a process (``functools.cache``): building one costs more Python than
running it, and SQLAlchemy reuses the compiled form. The PostgreSQL dialect's
``INSERT … ON CONFLICT`` is never cached by SQLAlchemy 2.0 (sqlalchemy#10445), so the one upsert
the load needs (the usage row) is plain SQL text inside the Core statement.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    Uuid,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ecert import ledger
from ecert.benefits import YearToDate
from ecert.db.models import (
    Account,
    AuditEvent,
    BenefitUsage,
    ECert,
    EcToken,
    Enrolment,
    IdempotencyRecord,
    Institution,
    LedgerEntry,
    Person,
    PolicyRow,
    Settlement,
)
from ecert.security import auditchain
from ecert.settlement.exceptions import EcTokenSpent, IdempotencyClaimLost
from ecert.suspension import in_force

#: The year-to-date counters, in the order the load returns them.
USAGE_FIELDS = tuple(f.name for f in msgspec.structs.fields(YearToDate))


@dataclass(frozen=True, slots=True)
class PersonRow:
    id: uuid.UUID
    area: str
    gender: str | None
    birth_date: dt.date | None
    category: str


@dataclass(frozen=True, slots=True)
class InstitutionRow:
    code: str
    area: str
    level: str
    kind: str
    designated: bool


@dataclass(frozen=True, slots=True)
class EnrolmentRow:
    insurance_type: str
    area: str


@dataclass(frozen=True, slots=True)
class Locked:
    """The person's usage row and account as locked and read by the load (PostgreSQL)."""

    usage_id: uuid.UUID
    usage: YearToDate
    account_id: uuid.UUID | None
    balance: int | None


@dataclass(frozen=True, slots=True)
class Loaded:
    """One ``ec_token`` with everything its checks and pricing need, as plain values."""

    token_id: int
    institution_code: str
    expires_at: dt.datetime
    spent: bool
    token_version: int
    ecert_status: str | None
    ecert_version: int | None
    suspended: bool
    person: PersonRow
    institution: InstitutionRow | None
    #: The basic enrolment (310 before 390), None when the person has none active.
    enrolment: EnrolmentRow | None
    #: PostgreSQL: ``(policy id, row version)`` of the policy in force, for the worker's cache.
    policy_version: tuple[uuid.UUID, str] | None
    locked: Locked | None
    #: PostgreSQL: the audit chain head the load locked after the person's rows, ``(chain, its
    #: last link)``; None when every head was busy (the write then takes one).
    head: tuple[int, str] | None = None


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


#: The basic schemes, literal in the SQL (no expanding bind). Their order of preference is
#: their sort order (310 before 390), which the statements' ORDER BY relies on.
_BASIC = ledger.BASIC_TYPES


#: Constants are literal SQL here: nothing to bind and convert per execution.
_ONE: ColumnElement[int] = literal_column("1", Integer())


def _now() -> Any:
    return bindparam("now", type_=LedgerEntry.__table__.c.at.type)


def _basic(column: Any) -> Any:
    """The person's basic enrolment's ``column`` (310 before 390: they sort that way)."""
    return (
        select(column)
        .where(
            Enrolment.person_id == EcToken.person_id,
            Enrolment.status == literal_column("'active'"),
            or_(*(Enrolment.insurance_type == literal_column(f"'{t}'") for t in _BASIC)),
        )
        .order_by(Enrolment.insurance_type)
        .limit(_ONE)
        .correlate(EcToken)  # also from inside the policy's lateral subquery
        .scalar_subquery()
    )


#: PostgreSQL: lock (creating it if needed) the basic usage row of the token's person, only for
#: a live token of the caller's institution. The first lock a money write takes (then accounts).
_LOCK_USAGE = f"""
INSERT INTO benefit_usage (id, person_id, year, insurance_type, {", ".join(USAGE_FIELDS)},
                           created_at, updated_at)
SELECT :usage_id, t.person_id, :year, b.insurance_type, 0, 0, 0, 0, 0, :now, :now
FROM ec_tokens t
CROSS JOIN LATERAL (
    SELECT e.insurance_type FROM enrolments e
    WHERE e.person_id = t.person_id AND e.status = 'active' AND e.insurance_type IN ('310', '390')
    ORDER BY e.insurance_type LIMIT 1
) b
WHERE t.token = :token AND t.institution_code = :institution AND t.spent_at IS NULL
ON CONFLICT (person_id, year, insurance_type) DO UPDATE SET year = excluded.year
RETURNING id, person_id, {", ".join(USAGE_FIELDS)}
"""  # noqa: S608 - the column names are our own


@functools.cache
def _load_statement(postgres: bool) -> Select[Any]:
    columns: list[Any] = [
        EcToken.id,
        EcToken.institution_code,
        EcToken.expires_at,
        EcToken.spent_at,
        EcToken.ecert_version,
        ECert.status,
        ECert.version,
        in_force(EcToken.person_id),
        Person.id,
        Person.area,
        Person.gender,
        Person.birth_date,
        Person.category,
        Institution.code,
        Institution.area,
        Institution.level,
        Institution.kind,
        Institution.designated,
        _basic(Enrolment.insurance_type),
        _basic(Enrolment.area),
    ]
    statement = (
        select(*columns)
        .join(Person, Person.id == EcToken.person_id)
        .outerjoin(ECert, ECert.id == EcToken.ecert_id)
        .outerjoin(Institution, Institution.code == EcToken.institution_code)
        .where(EcToken.token == bindparam("token", type_=String()))
    )
    if not postgres:
        return statement
    usage = (
        text(_LOCK_USAGE)
        .bindparams(
            bindparam("usage_id", type_=Uuid()),
            bindparam("year", type_=Integer()),
            _now(),
            bindparam("token", type_=String()),
            bindparam("institution", type_=String()),
        )
        .columns(
            literal_column("id", Uuid()),
            literal_column("person_id", Uuid()),
            *(literal_column(f, BigInteger()) for f in USAGE_FIELDS),
        )
        .cte("usage_lock")
    )
    # Referencing the usage CTE orders the locks: the usage row first, then the account.
    account = (
        update(Account)
        .where(Account.person_id.in_(select(usage.c.person_id)))
        # Every column default set here: a CTE's DML gets no Python-side defaults.
        .values(balance=Account.balance, updated_at=_now())
        .returning(Account.id, Account.balance)
        .cte("account_lock")
    )
    policy = (
        select(PolicyRow.id, literal_column("policies.xmin::text").label("version"))
        .where(
            PolicyRow.area == _basic(Enrolment.area),
            PolicyRow.insurance_type == _basic(Enrolment.insurance_type),
            PolicyRow.year <= bindparam("year", type_=Integer()),
            PolicyRow.category == Person.category,
        )
        .order_by(PolicyRow.year.desc())
        .limit(_ONE)
        .lateral("policy")
    )
    # Reading both lock CTEs orders the chain after them (the account's count only orders).
    locked_first = and_(
        exists(select(usage.c.id)),
        select(func.count()).select_from(account).scalar_subquery() >= literal_column("0"),
    )
    head = auditchain.free_head_cte(locked_first)
    return (
        statement.add_columns(
            policy.c.id,
            policy.c.version,
            usage.c.id,
            *(usage.c[f] for f in USAGE_FIELDS),
            account.c.id,
            account.c.balance,
            head.c.chain,
            head.c.prev,
        )
        .outerjoin(policy, true())
        .outerjoin(usage, true())
        .outerjoin(account, true())
        .outerjoin(head, true())
    )


async def load(
    session: AsyncSession, token: str, institution: str, year: int, now: dt.datetime
) -> Loaded | None:
    """The token's row with its person, e-cert, institution, basic enrolment and suspension in
    one round trip; on PostgreSQL the same statement locks (creating it if needed) the person's
    basic usage row and account and names the policy in force by its row version."""
    postgres = _postgres(session)
    values: dict[str, Any] = {"token": token}
    if postgres:
        values |= {"usage_id": uuid.uuid4(), "year": year, "now": now, "institution": institution}
    row = (await session.execute(_load_statement(postgres), values)).first()
    if row is None:
        return None
    institution_row = None
    if row[13] is not None:
        institution_row = InstitutionRow(row[13], row[14], row[15], row[16], bool(row[17]))
    enrolment = EnrolmentRow(row[18], row[19]) if row[18] is not None else None
    policy_version, locked, head = None, None, None
    if postgres:
        if row[20] is not None:
            policy_version = (row[20], row[21])
        if row[22] is not None:
            usage = YearToDate(**dict(zip(USAGE_FIELDS, row[23:28], strict=True)))
            balance = None if row[29] is None else int(row[29])
            locked = Locked(row[22], usage, row[28], balance)
        if row[30] is not None:
            head = (int(row[30]), str(row[31]))
    return Loaded(
        token_id=row[0],
        institution_code=row[1],
        expires_at=row[2],
        spent=row[3] is not None,
        token_version=row[4],
        ecert_status=row[5],
        ecert_version=row[6],
        suspended=bool(row[7]),
        person=PersonRow(row[8], row[9], row[10], row[11], row[12]),
        institution=institution_row,
        enrolment=enrolment,
        policy_version=policy_version,
        locked=locked,
        head=head,
    )


async def policy_body(session: AsyncSession, policy_id: uuid.UUID) -> dict[str, Any]:
    """A policy's body by id (a worker's cache miss)."""
    body = await session.scalar(select(PolicyRow.body).where(PolicyRow.id == policy_id))
    return dict(body or {})


# --- the write ---------------------------------------------------------------------------------

#: The settlement columns the write sets (every one, so the statement never varies).
SETTLEMENT_COLUMNS = (
    "id",
    "institution_code",
    "person_id",
    "ec_token",
    "med_type",
    "insurance_type",
    "year",
    "business_date",
    "items",
    "total",
    "fully_self_paid",
    "first_self_paid",
    "deductible_paid",
    "fund_paid",
    "account_paid",
    "cash_paid",
    "balance_after",
    "steps",
    "reversed_total",
    "reversed_fund",
    "reversed_account",
    "reversed_cash",
    "reversed_deductible",
    "visit_id",
    "detail",
    "pricing",
    "created_at",
    "updated_at",
)


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """An Idempotency-Key's answer to store with the write, fenced on the claim's token as
    ``idempotency.complete`` is."""

    record_id: int
    token: str
    status: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Booking:
    """What one booking writes (besides mutual-aid draws and a layer's usage)."""

    settlement: dict[str, Any]
    person_id: uuid.UUID
    year: int
    insurance_type: str
    usage_after: YearToDate
    #: Fen debited from the person's own account (0: none).
    debit: int
    memo: str
    #: The ``ec_token`` row this settlement spends (None: a visit's, spent at its opening).
    token_id: int | None
    now: dt.datetime
    #: PostgreSQL: the audit row, chained (``auditchain.link``) on the chain the load locked.
    audit: dict[str, Any] | None = None
    #: PostgreSQL: the Idempotency-Key's answer, stored by the same statement.
    answer: StoredAnswer | None = None


def _bind(name: str, column: Any) -> Any:
    return bindparam(name, type_=column.type)


def _count(cte: Any) -> Any:
    return select(func.count()).select_from(cte).scalar_subquery()


@functools.cache
def _write_statement(spend: bool, audit: bool, answer: bool) -> Select[Any]:
    """PostgreSQL: spend the token (guarded), insert the settlement, debit the account with its
    ledger row, store the usage, and then either insert the audit row on the chain the load
    locked (``audit``) or lock a free chain head, and store the Idempotency-Key's answer
    (``answer``), in one statement. Every write hangs off the settlement row, which is inserted
    only if the token was spent (``spend``). Columns: settlements, ledger rows, audit rows and
    answers written (counts), then the chain head locked here (NULLs with ``audit``)."""
    table = Settlement.__table__
    binds = [_bind(f"s_{c}", table.c[c]) for c in SETTLEMENT_COLUMNS]
    if spend:
        spent = (
            update(EcToken)
            .where(EcToken.id == bindparam("w_token", type_=BigInteger()))
            .where(EcToken.spent_at.is_(None))
            .values(spent_at=_now())
            .returning(EcToken.id)
            .cte("spent")
        )
        source = select(*binds).select_from(spent)
    else:
        source = select(*binds)
    settlement = (
        insert(Settlement)
        # Every column given: no Python-side defaults (nor the ORM's insert sentinel) added.
        .from_select(list(SETTLEMENT_COLUMNS), source, include_defaults=False)
        .returning(table.c.id)
        .cte("settlement")
    )
    written = exists(select(settlement.c.id))
    debit = bindparam("w_debit", type_=BigInteger())
    account = (
        update(Account)
        .where(Account.person_id == bindparam("w_person", type_=Uuid()))
        .where(Account.balance >= debit, debit > literal_column("0"), written)
        .values(balance=Account.balance - debit, updated_at=_now())
        .returning(Account.id, Account.balance)
        .cte("debit")
    )
    ledger_table = LedgerEntry.__table__
    entry = (
        insert(LedgerEntry)
        .from_select(
            ["account_id", "kind", "amount", "balance_after", "settlement_id", "memo", "at"],
            select(
                account.c.id,
                literal_column("'debit'"),
                -debit,
                account.c.balance,
                bindparam("s_id", type_=Uuid()),
                bindparam("w_memo", type_=String()),
                _now(),
            ),
            include_defaults=False,
        )
        .returning(ledger_table.c.id)
        .cte("debit_entry")
    )
    usage_table = BenefitUsage.__table__
    usage = (
        update(BenefitUsage)
        .where(
            usage_table.c.person_id == bindparam("w_person", type_=Uuid()),
            usage_table.c.year == bindparam("w_year", type_=Integer()),
            usage_table.c.insurance_type == bindparam("w_insurance", type_=String()),
            written,
        )
        .values(
            {f: bindparam(f"u_{f}", type_=usage_table.c[f].type) for f in USAGE_FIELDS}
            | {"updated_at": _now()}
        )
        .returning(usage_table.c.id)
        .cte("usage_store")
    )
    stored = exists(select(usage.c.id))  # everything above written
    columns = [_count(settlement), _count(entry)]
    if audit:
        audit_table = AuditEvent.__table__
        row = (
            insert(AuditEvent)
            .from_select(
                list(auditchain.COLUMNS),
                select(*(_bind(f"a_{c}", audit_table.c[c]) for c in auditchain.COLUMNS)).where(
                    stored
                ),
                include_defaults=False,
            )
            .returning(audit_table.c.id)
            .cte("audit_row")
        )
        columns.append(_count(row))
    else:
        columns.append(literal_column("0", Integer()))
    if answer:
        claims = IdempotencyRecord.__table__.c
        done = (
            update(IdempotencyRecord)
            .where(
                claims.id == bindparam("i_record", type_=BigInteger()),
                claims.fence_token == bindparam("i_token", type_=String()),
                claims.status == literal_column("'in_progress'"),
                stored,
            )
            .values(
                status=literal_column("'done'"),
                response_status=bindparam("i_status", type_=Integer()),
                response=bindparam("i_body", type_=claims.response.type),
            )
            .returning(claims.id)
            .cte("answer")
        )
        columns.append(_count(done))
    else:
        columns.append(literal_column("0", Integer()))
    if audit:
        return select(*columns)
    # No chain from the load: take one last, after every row lock above (as
    # ``auditchain.defer`` does): a transaction never waits for a row while holding a chain.
    head = auditchain.free_head_cte(stored)
    return select(
        *columns, select(head.c.chain).scalar_subquery(), select(head.c.prev).scalar_subquery()
    )


async def write(session: AsyncSession, booking: Booking) -> tuple[int, str] | None:
    """Write a booking in the caller's transaction; :class:`EcTokenSpent` when another
    settlement spent the token first, ``IdempotencyClaimLost`` when the answer's claim was taken
    over. PostgreSQL: one statement, and when the
    booking brings no audit row, the audit chain head it locked (``None``: none was free).
    SQLite, one writer at a time: the same rows one by one (no audit row, no answer: the
    caller's)."""
    if not _postgres(session):
        await _write_rows(session, booking)
        return None
    values: dict[str, Any] = {f"s_{c}": v for c, v in booking.settlement.items()}
    values |= {f"u_{f}": getattr(booking.usage_after, f) for f in USAGE_FIELDS}
    values |= {
        # Not named after a column: an UPDATE takes a parameter named like one as a SET value.
        "w_person": booking.person_id,
        "w_year": booking.year,
        "w_insurance": booking.insurance_type,
        "w_debit": booking.debit,
        "w_memo": booking.memo,
        "now": booking.now,
    }
    if booking.token_id is not None:
        values["w_token"] = booking.token_id
    if booking.audit is not None:
        values |= {f"a_{c}": booking.audit.get(c) for c in auditchain.COLUMNS}
    answer = booking.answer
    if answer is not None:
        values |= {
            "i_record": answer.record_id,
            "i_token": answer.token,
            "i_status": answer.status,
            "i_body": answer.body,
        }
    statement = _write_statement(
        booking.token_id is not None, booking.audit is not None, answer is not None
    )
    row = (await session.execute(statement, values)).one()
    if row[0] != 1:
        raise EcTokenSpent()
    if booking.debit and row[1] != 1:
        raise ledger.InsufficientBalance()  # never with the account locked: the guard's backstop
    if answer is not None and row[3] != 1:
        raise IdempotencyClaimLost()
    if booking.audit is not None:
        return None
    return None if row[4] is None else (int(row[4]), str(row[5]))


async def _write_rows(session: AsyncSession, booking: Booking) -> None:
    if booking.token_id is not None:
        spent = await session.execute(
            update(EcToken)
            .where(EcToken.id == booking.token_id, EcToken.spent_at.is_(None))
            .values(spent_at=booking.now)
        )
        if spent.rowcount != 1:  # type: ignore[attr-defined]
            raise EcTokenSpent()
    await session.execute(insert(Settlement), [booking.settlement])
    if booking.debit:
        await ledger.move(
            session,
            booking.person_id,
            -booking.debit,
            kind="debit",
            settlement_id=booking.settlement["id"],
            memo=booking.memo,
        )
    await ledger.store_usage(
        session, booking.person_id, booking.year, booking.insurance_type, booking.usage_after
    )
