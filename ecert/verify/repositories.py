"""Online verify's queries: the holder (e-cert, person, enrolments and every check's input), the
spend of a QR code, and the numeric codes.

Plain async functions taking the caller's session; none commits. Statements are built once a
process (binds, not values): building one costs more Python than running it."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from typing import Any, NamedTuple

from sqlalchemy import Select, String, bindparam, insert, or_, select, true, update
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
#: The columns of ``qr_uses`` a spend writes (``spend_qr`` takes them as ``u_<name>``).
USE = ("iss", "sub", "jti", "at", "expires_at", "institution_code")


def _holder(by_pseudonym: bool) -> Select[Any]:
    designated = (
        select(Institution.designated)
        .where(Institution.code == bindparam("institution"))
        .scalar_subquery()
    )
    where = (
        ECert.pseudonym == bindparam("sub") if by_pseudonym else ECert.id == bindparam("ecert_id")
    )
    columns = [
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
        state_of("qr", bindparam("kid", type_=String())),
        Enrolment.insurance_type,
        Enrolment.status,
    ]
    return (
        select(*(c.label(name) for c, name in zip(columns, HOLDER, strict=True)))
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


@functools.cache
def spend_statement() -> native.Native:
    """PostgreSQL, in one autocommitted statement: the holder's rows, and — only when every check
    passes on them — the code's use and the ``ec_token`` (its text ``area || token_tail``),
    whose text is the last column (NULL when a check failed or the code was used already).

    The use is ``ON CONFLICT DO NOTHING``: of concurrent scans of one code exactly one inserts,
    and only a scan that inserted writes a token (the unique key decides, as before).
    """
    holder = _holder(by_pseudonym=True).cte("holder")
    h = holder.c
    passing = (
        select(h.ecert_id, h.person_id, h.version, h.area)
        .where(
            or_(*(h.key_state == state for state in sorted(keys.VERIFYING_STATES))),
            h.designated.is_(True),
            h.suspended.is_(False),
            h.ecert_status == "active",
            h.version == bindparam("ver"),
            h.enrolment_status == "active",
        )
        .limit(1)
        .cte("passing")
    )
    use_columns = QrUse.__table__.c
    used = (
        pg_insert(QrUse)
        .from_select(
            list(USE),
            select(*(bindparam(f"u_{c}", type_=use_columns[c].type) for c in USE)).select_from(
                passing
            ),
        )
        .on_conflict_do_nothing()
        .returning(QrUse.id)
        .cte("qr_use")
    )
    p = passing.c
    token_row = select(
        p.area + bindparam("token_tail", type_=String()),
        p.person_id,
        p.ecert_id,
        bindparam("u_institution_code", type_=String()),
        bindparam("business_type", type_=String()),
        bindparam("token_expires_at", type_=EcToken.__table__.c.expires_at.type),
        p.version,
    ).select_from(passing.join(used, true()))
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
    written = select(token.c.token).scalar_subquery()
    return native.Native(select(*holder.c, written.label("token")).select_from(holder))


async def spend_qr(
    session: AsyncSession, values: dict[str, Any]
) -> tuple[list[HolderRow], str | None]:
    """:func:`spend_statement` (PostgreSQL) for ``values``: the holder's rows, and the new
    ``ec_token`` (None when a check failed or another scan used the code first)."""
    rows = await native.fetch(session, spend_statement(), values)
    token = rows[0][-1] if rows else None
    return [HolderRow(*row[:-1]) for row in rows], token


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
