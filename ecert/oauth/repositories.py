"""The client queries. Plain async functions taking the caller's session; none commits."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import ARRAY, Select, String, any_, bindparam, insert, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db import native
from ecert.db.models import Client, Institution, Person, Staff, UsedJti
from ecert.db.upsert import insert_ignore

#: PostgreSQL's SQLSTATE for a unique key refusing a row.
UNIQUE_VIOLATION = "23505"


async def client_by_id(
    session: AsyncSession, client_id: str, *, for_update: bool = False
) -> Client | None:
    query = select(Client).where(Client.client_id == client_id)
    client: Client | None = await session.scalar(query.with_for_update() if for_update else query)
    return client


async def client_active(session: AsyncSession, client_id: str) -> bool | None:
    """``clients.active``; None for an unknown client."""
    active: bool | None = await session.scalar(
        select(Client.active).where(Client.client_id == client_id)
    )
    return active


async def staff_active(session: AsyncSession, login: str) -> bool | None:
    """``staff.active``; None for an unknown login."""
    active: bool | None = await session.scalar(select(Staff.active).where(Staff.login == login))
    return active


class AuthClient(NamedTuple):
    """What the token endpoint needs of an active client (read as columns, not an ORM row)."""

    client_id: str
    kind: str
    secret_hash: str | None
    previous_secret_hash: str | None
    previous_secret_until: dt.datetime | None
    public_key_pem: str | None
    scopes: str
    rate_limit: int | None
    institution_code: str | None


async def active_client(session: AsyncSession, client_id: str) -> AuthClient | None:
    # Natively on PostgreSQL: every grant reads it (ecert.db.native).
    rows = await native.fetch(session, _native_active_client(), {"client_id": client_id})
    return AuthClient(*rows[0]) if rows else None


@functools.cache
def _native_active_client() -> native.Native:
    return native.Native(_active_client())


@functools.cache
def _active_client() -> Select[Any]:
    """Built once: the client and its institution's code in one Core statement."""
    return (
        select(
            Client.client_id,
            Client.kind,
            Client.secret_hash,
            Client.previous_secret_hash,
            Client.previous_secret_until,
            Client.public_key_pem,
            Client.scopes,
            Client.rate_limit,
            Institution.code,
        )
        .outerjoin(Institution, Client.institution_id == Institution.id)
        .where(Client.client_id == bindparam("client_id"), Client.active.is_(True))
    )


async def set_secret_hash(session: AsyncSession, client_id: str, secret_hash: str) -> None:
    """Store a client's secret under a new hash (a legacy or rotated-out hash, on first use)."""
    await session.execute(
        update(Client).where(Client.client_id == client_id).values(secret_hash=secret_hash)
    )


async def client_by_name(session: AsyncSession, name: str) -> Client | None:
    """A client by its display name (names are not unique: the demo's own are)."""
    client: Client | None = await session.scalar(select(Client).where(Client.name == name).limit(1))
    return client


async def all_clients(session: AsyncSession) -> Sequence[Client]:
    """Oldest first."""
    return (await session.scalars(select(Client).order_by(Client.created_at))).all()


async def institution_by_code(session: AsyncSession, code: str) -> Institution | None:
    institution: Institution | None = await session.scalar(
        select(Institution).where(Institution.code == code)
    )
    return institution


class AssertedPerson(NamedTuple):
    """What the JWT-bearer grant needs of the person an assertion names."""

    id: uuid.UUID
    name_cipher: bytes


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _jti_row(issuer: str, jti: str, expires: dt.datetime) -> dict[str, Any]:
    return {"issuer": issuer, "jti": jti, "expires_at": expires}


async def spend_jti(session: AsyncSession, issuer: str, jti: str, expires: dt.datetime) -> bool:
    """Record a single-use assertion id; False when it was already used (the unique key on
    ``(issuer, jti)`` decides, also between concurrent requests)."""
    if not _postgres(session):
        row = _jti_row(issuer, jti, expires)
        used = await insert_ignore(session, UsedJti.__table__, row, returning=UsedJti.id)
        return used is not None
    try:
        await session.execute(_spend_jti(), _jti_row(issuer, jti, expires))
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) == UNIQUE_VIOLATION:
            return False
        raise
    return True


async def spend_jti_find_person(
    session: AsyncSession, issuer: str, jti: str, expires: dt.datetime, id_hashes: list[str]
) -> tuple[bool, AssertedPerson | None]:
    """Spend a person assertion's ``jti`` and find the person it names by ID-number hash: on
    PostgreSQL one statement (the INSERT in a data-modifying CTE, spent whether or not the person
    is found); on SQLite (no DML in CTEs) two. Returns (first use, the person or None)."""
    values = {**_jti_row(issuer, jti, expires), "hashes": id_hashes}
    if not _postgres(session):
        if not await spend_jti(session, issuer, jti, expires):
            return False, None
        found = (await session.execute(_find_person(), values)).first()
        return True, AssertedPerson(found[0], found[1]) if found is not None else None
    try:
        [row] = await native.fetch(session, _spend_and_find(), values)
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) == UNIQUE_VIOLATION:
            return False, None
        raise
    if row[1] is None or row[2] is None:
        return True, None
    return True, AssertedPerson(row[1], row[2])


# Built once each. A plain INSERT, not ON CONFLICT DO NOTHING: SQLAlchemy 2.0 does not cache the
# PostgreSQL dialect's INSERT (sqlalchemy#10445); the unique violation says "used" instead.
@functools.cache
def _spend_jti() -> Any:
    return insert(UsedJti).values(
        issuer=bindparam("issuer"), jti=bindparam("jti"), expires_at=bindparam("expires_at")
    )


@functools.cache
def _find_person() -> Select[tuple[uuid.UUID, bytes]]:
    return select(Person.id, Person.name_cipher).where(
        Person.id_hash.in_(bindparam("hashes", expanding=True))
    )


@functools.cache
def _spend_and_find() -> native.Native:
    """PostgreSQL: the spend and the person in one statement, run natively; the person by
    ``= ANY`` of an array (an expanding IN is re-rendered per execution and cannot be native)."""
    spent = _spend_jti().returning(UsedJti.id).cte("spent")
    person = (
        select(Person.id, Person.name_cipher)
        .where(Person.id_hash == any_(bindparam("hashes", type_=ARRAY(String()))))
        .subquery("person")
    )
    return native.Native(
        select(spent.c.id, person.c.id, person.c.name_cipher).select_from(
            spent.outerjoin(person, true())
        )
    )
