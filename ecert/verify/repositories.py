"""Online verify's queries: the holder (e-cert, person, enrolments and every check's input), the
spend of a QR code, and the numeric codes.

Plain async functions taking the caller's session; none commits. Statements are built once a
process (binds, not values): building one costs more Python than running it."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from typing import Any, NamedTuple

from sqlalchemy import (
    ARRAY,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db import native
from ecert.db.models import ECert, EcToken, Enrolment, Institution, NumericCode, Person, QrUse
from ecert.db.upsert import insert_ignore
from ecert.security import auditchain, keys
from ecert.security.repositories import state_of
from ecert.suspension import in_force


class HolderRow(NamedTuple):
    """A holder statement's row, one per enrolment (both statements return these columns)."""

    ecert_id: uuid.UUID
    person_id: uuid.UUID
    ecert_status: str
    version: int
    area: str
    gender: str | None
    birth_date: dt.date | None
    id_cipher: bytes
    name_cipher: bytes
    designated: bool | None
    suspended: bool
    key_state: str | None
    insurance_type: str | None
    enrolment_status: str | None


HOLDER = HolderRow._fields
#: The columns of ``qr_uses`` a spend writes (``spend_many`` takes them as ``u_<name>``).
USE = ("iss", "sub", "jti", "at", "expires_at", "institution_code")


def _holder_columns(institution: Any, kid: Any) -> list[Any]:
    """The holder's columns (``HOLDER``), with the caller's institution and the QR's key
    ``kid`` taken from binds or, in a batch, from the input's columns."""
    designated = (
        select(Institution.designated).where(Institution.code == institution).scalar_subquery()
    )
    return [
        ECert.id,
        ECert.person_id,
        ECert.status,
        ECert.version,
        Person.area,
        Person.gender,
        Person.birth_date,
        Person.id_cipher,
        Person.name_cipher,
        designated,
        in_force(ECert.person_id),
        state_of("qr", kid),
        Enrolment.insurance_type,
        Enrolment.status,
    ]


def _labelled(columns: list[Any]) -> list[Any]:
    return [c.label(name) for c, name in zip(columns, HOLDER, strict=True)]


def _holder(by_pseudonym: bool) -> Select[Any]:
    where = (
        ECert.pseudonym == bindparam("sub") if by_pseudonym else ECert.id == bindparam("ecert_id")
    )
    columns = _holder_columns(bindparam("institution"), bindparam("kid", type_=String()))
    return (
        select(*_labelled(columns))
        .join(Person, Person.id == ECert.person_id)
        .outerjoin(Enrolment, Enrolment.person_id == Person.id)
        .where(where)
    )


@functools.cache
def holder_statement(by_pseudonym: bool, postgres: bool) -> Select[Any]:
    """The holder by QR pseudonym (``sub``) or ``ecert_id``; on PostgreSQL it also locks a free
    audit chain head (``chain``, ``prev`` after the holder's columns; see
    ``auditchain.free_head_cte``)."""
    statement = _holder(by_pseudonym)
    if postgres:
        head = auditchain.free_head_cte()
        statement = statement.add_columns(head.c.chain, head.c.prev).outerjoin(head, true())
    return statement


async def holder_rows(session: AsyncSession, values: dict[str, Any]) -> list[Any]:
    """:func:`holder_statement`'s rows for ``values`` (``institution``, ``kid`` and ``sub`` or
    ``ecert_id``)."""
    statement = holder_statement("sub" in values, session.get_bind().dialect.name == "postgresql")
    return list((await session.execute(statement, values)).all())


#: The arrays :func:`spend_many_statement` takes (``a_<name>``), one element per verify: its
#: position ``n``, the holder's binds, the use's columns (``u_<name>``) and the token's.
SPEND_ARRAYS: dict[str, Any] = {
    "n": Integer(),
    "sub": String(),
    "ver": Integer(),
    "kid": String(),
    "institution": String(),
    **{f"u_{c}": QrUse.__table__.c[c].type for c in USE},
    "token_tail": String(),
    "business_type": String(),
    "token_expires_at": EcToken.__table__.c.expires_at.type,
}


def _spend_select() -> Select[Any]:
    """PostgreSQL, in one autocommitted statement for many verifies: each verify's holder rows,
    led by its position ``n``, and — only when every check passes on them — the code's use and
    the ``ec_token`` (its text ``area || token_tail``), whose text is the last column (NULL when
    a check failed or the code was used already).

    The verifies of one batch spend different codes (``ecert.verify.batches`` holds a second
    scan of a code back for the next batch), so a use row names its verify by its key. The use
    is ``ON CONFLICT DO NOTHING``: of concurrent scans of one code exactly one inserts, only a
    scan that inserted writes a token, and the unique key decides.
    """
    # One row per verify: set-returning functions in one select list run in lockstep.
    given = select(
        *(
            func.unnest(bindparam(f"a_{name}", type_=ARRAY(kind))).label(name)
            for name, kind in SPEND_ARRAYS.items()
        )
    ).cte("given")
    g = given.c
    holder = (
        select(g.n, *_labelled(_holder_columns(g.institution, g.kid)))
        .select_from(given)
        .join(ECert, ECert.pseudonym == g.sub)
        .join(Person, Person.id == ECert.person_id)
        .outerjoin(Enrolment, Enrolment.person_id == Person.id)
        .cte("holder")
    )
    h = holder.c
    passing = (
        select(h.n, h.ecert_id, h.person_id, h.version, h.area)
        .select_from(holder.join(given, given.c.n == h.n))
        .where(
            or_(*(h.key_state == state for state in sorted(keys.VERIFYING_STATES))),
            h.designated.is_(True),
            h.suspended.is_(False),
            h.ecert_status == "active",
            h.version == g.ver,
            h.enrolment_status == "active",
        )
        .distinct(h.n)
        .cte("passing")
    )
    p = passing.c
    chosen = passing.join(given, g.n == p.n)
    used = (
        pg_insert(QrUse)
        .from_select(list(USE), select(*(g[f"u_{c}"] for c in USE)).select_from(chosen))
        .on_conflict_do_nothing()
        .returning(QrUse.iss, QrUse.sub, QrUse.jti)
        .cte("qr_use")
    )
    u = used.c
    token_row = select(
        p.area + g.token_tail,
        p.person_id,
        p.ecert_id,
        g.u_institution_code,
        g.business_type,
        g.token_expires_at,
        p.version,
    ).select_from(chosen.join(used, and_(u.iss == g.u_iss, u.sub == g.u_sub, u.jti == g.u_jti)))
    names = [
        "token",
        "person_id",
        "ecert_id",
        "institution_code",
        "business_type",
        "expires_at",
        "ecert_version",
    ]
    token = (
        pg_insert(EcToken).from_select(names, token_row).returning(EcToken.token).cte("ec_token")
    )
    return select(*holder.c, token.c.token).select_from(
        holder.join(given, g.n == h.n).outerjoin(token, token.c.token == h.area + g.token_tail)
    )


@functools.cache
def spend_many_statement() -> native.Native:
    """:func:`_spend_select` alone."""
    return native.Native(_spend_select())


@functools.cache
def spend_and_append_statement() -> native.Native:
    """:func:`_spend_select` and, in the same autocommitted statement, audit rows appended after
    a writer's last link (``auditchain.after_cte``): the number of rows written leads every row,
    and one row with no verify's columns stands for an empty spend."""
    written = select(func.count().label("written")).select_from(auditchain.after_cte())
    counted = written.subquery("counted")
    spend = _spend_select().subquery("spend")
    return native.Native(
        select(counted.c.written, *spend.c).select_from(counted.outerjoin(spend, true()))
    )


Found = dict[int, tuple[list[HolderRow], str | None]]


def _spend_binds(verifies: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        f"a_{name}": [v[name] if name != "n" else i for i, v in enumerate(verifies)]
        for name in SPEND_ARRAYS
    }


def _found(rows: Any) -> Found:
    """By position ``n`` (the first column), the holder's rows and the token (the last)."""
    found: Found = {}
    for row in rows:
        if row[0] is None:
            continue
        holder = found.setdefault(row[0], ([], None))[0]
        holder.append(HolderRow(*row[1:-1]))
        if row[-1] is not None:
            found[row[0]] = (holder, row[-1])
    return found


async def spend_many(fetch: native.Fetch, verifies: list[dict[str, Any]]) -> Found:
    """:func:`spend_many_statement` for ``verifies`` (each ``SPEND_ARRAYS`` but ``n``), run by
    ``fetch`` (autocommitted): by position, the holder's rows and the new ``ec_token``; a verify
    whose pseudonym matched no e-cert is absent."""
    return _found(await fetch(spend_many_statement(), _spend_binds(verifies)))


async def spend_and_append(
    fetch: native.Fetch, verifies: list[dict[str, Any]], audit: dict[str, Any]
) -> tuple[Found, bool]:
    """:func:`spend_many` and audit rows (``audit``: ``auditchain.after_values``' binds) in one
    statement: the spends' rows, and whether the audit rows were written (all or none)."""
    rows = await fetch(spend_and_append_statement(), _spend_binds(verifies) | audit)
    return _found(row[1:] for row in rows), bool(rows and rows[0][0])


async def insert_use(session: AsyncSession, use: dict[str, Any]) -> bool:
    """SQLite: mark the code used; False when it was already (the unique key decides)."""
    used = await insert_ignore(session, QrUse.__table__, use, returning=QrUse.__table__.c.id)
    return used is not None


async def insert_token(session: AsyncSession, token: dict[str, Any]) -> None:
    await session.execute(insert(EcToken), [token])


async def designated(session: AsyncSession, institution: str | None) -> bool:
    found = await session.scalar(
        select(Institution.designated).where(Institution.code == institution)
    )
    return bool(found)


async def person_of_pseudonym(session: AsyncSession, sub: str) -> uuid.UUID | None:
    found: uuid.UUID | None = await session.scalar(
        select(ECert.person_id).where(ECert.pseudonym == sub)
    )
    return found


async def numeric_code(session: AsyncSession, code: str) -> NumericCode | None:
    found: NumericCode | None = await session.scalar(
        select(NumericCode).where(NumericCode.code == code)
    )
    return found


async def use_numeric_code(
    session: AsyncSession, code_id: uuid.UUID | int, at: dt.datetime
) -> bool:
    """Guarded update: of concurrent scans of one code exactly one sees a row change."""
    used = await session.execute(
        update(NumericCode)
        .where(NumericCode.id == code_id, NumericCode.used_at.is_(None))
        .values(used_at=at)
    )
    return bool(used.rowcount == 1)  # type: ignore[attr-defined]
