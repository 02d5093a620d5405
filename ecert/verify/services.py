"""Online verification: scanned code → checks → single-use mark → institution-bound ec_token."""

from __future__ import annotations

import datetime as dt
import functools
import re
import secrets
import string
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, String, bindparam, func, insert, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import (
    AuditEvent,
    ECert,
    EcToken,
    Enrolment,
    Institution,
    NumericCode,
    Person,
    QrUse,
    utcnow,
)
from ecert.db.upsert import insert_ignore
from ecert.errors import ECertRevoked, ECertSuspended, NotDesignated, NotEnrolled
from ecert.identity import age_on, mask_id_number, mask_name
from ecert.persons import open_id_number, open_name
from ecert.qr import codec
from ecert.security import auditchain, keys
from ecert.security.audit import audit_values, concerning, record_audit
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime
from ecert.store import StoreUnavailable
from ecert.suspension import in_force, refuse_if
from ecert.verify.schemas import Insurance, VerifiedPerson, VerifyResponse

NUMERIC_CODE = re.compile(r"^424\d{25}$")
FULL_IDENTITY_SCOPE = "identity:full"
_TOKEN_CHARS = string.ascii_lowercase + string.digits
UNIQUE_VIOLATION = "23505"


@dataclass(frozen=True, slots=True)
class Holder:
    """What a verify needs of the e-cert, its person and enrolments: plain columns, no ORM."""

    ecert_id: uuid.UUID
    person_id: uuid.UUID
    version: int
    area: str
    gender: str | None
    birth_date: dt.date | None
    id_cipher: bytes
    name_cipher: bytes
    enrolments: list[tuple[str, str]]
    #: The audit chain the load locked (PostgreSQL), ``None`` when it found none free.
    chain: int | None = None
    prev: str | None = None


async def _ecert_from_qr(
    session: AsyncSession, runtime: Runtime, principal: Principal, text: str
) -> tuple[Holder, codec.QrClaims]:
    jws, header = codec.open_code(text)
    key = runtime.keys.verifier("qr", header.kid)
    if key is None and runtime.keys.may_refresh_for_unknown():
        await runtime.keys.refresh(session)
        key = runtime.keys.verifier("qr", header.kid)
    if key is None:
        raise codec.QrUnknownKey()
    settings = runtime.settings
    claims = codec.decode_jws(
        jws,
        key.public,
        now=int(time.time()),
        leeway_s=settings.leeway_s,
        issuers={settings.issuer_area},
    )
    # The database is the authority on revoked keys, whether or not the store could tell us:
    # the holder's load also reads the key's state (no extra round trip).
    holder = await _load_holder(
        session, principal, version=claims.ver, sub=claims.sub, qr_kid=header.kid
    )
    # Early reject in the store; the unique key in the database is the authority.
    try:
        first = await runtime.store.set_once(
            f"qr:{claims.iss}:{claims.sub}:{claims.jti}", settings.qr_ttl_s + 2 * settings.leeway_s
        )
    except StoreUnavailable:
        first = True
    if not first:
        raise codec.QrReplayed()
    return holder, claims


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@functools.cache
def _holder_statement(by_pseudonym: bool, postgres: bool) -> Select[Any]:
    """Built once a process (binds, not values): building a statement costs more Python than
    running it, and a compiled statement is reused from SQLAlchemy's cache."""
    designated = (
        select(Institution.designated)
        .where(Institution.code == bindparam("institution"))
        .scalar_subquery()
    )
    columns: list[Any] = [
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
        keys.state_of("qr", bindparam("kid", type_=String())),
        Enrolment.insurance_type,
        Enrolment.status,
    ]
    where = (
        ECert.pseudonym == bindparam("sub") if by_pseudonym else ECert.id == bindparam("ecert_id")
    )
    statement = (
        select(*columns)
        .join(Person, Person.id == ECert.person_id)
        .outerjoin(Enrolment, Enrolment.person_id == Person.id)
        .where(where)
    )
    if postgres:
        head = auditchain.free_head_cte()
        statement = statement.add_columns(head.c.chain, head.c.prev).outerjoin(head, true())
    return statement


async def _load_holder(
    session: AsyncSession,
    principal: Principal,
    *,
    version: int,
    sub: str | None = None,
    ecert_id: uuid.UUID | None = None,
    qr_kid: str | None = None,
) -> Holder:
    """The e-cert (by QR pseudonym ``sub`` or by ``ecert_id``), its person and enrolments in one
    round trip (the hot path), checked.

    The same statement says whether the QR key still verifies (``qr_kid``), whether the caller's
    institution is designated and whether the person is suspended, so that every refusal comes
    before the code is spent; on PostgreSQL it also locks an audit chain (the audit row is then
    written with the path's other rows, not in two statements of its own at the commit).
    """
    statement = _holder_statement(sub is not None, _postgres(session))
    values: dict[str, Any] = {"institution": principal.institution_code, "kid": qr_kid or ""}
    values |= {"sub": sub} if sub is not None else {"ecert_id": ecert_id}
    rows = (await session.execute(statement, values)).all()  # all: one row per enrolment
    if not rows:
        if qr_kid is not None and not await keys.verifies(session, "qr", qr_kid):
            raise codec.QrUnknownKey()
        designated = select(Institution.designated).where(
            Institution.code == principal.institution_code
        )
        if not await session.scalar(designated):
            raise NotDesignated()
        raise ECertRevoked("no e-cert has this pseudonym")
    first = rows[0]
    ecert_id, person_id, status, current_version = first[0], first[1], first[2], first[3]
    is_designated, suspended, state = first[9], first[10], first[11]
    if qr_kid is not None and state not in keys.VERIFYING_STATES:
        raise codec.QrUnknownKey()
    concerning(person_id)  # a refusal from here on is audited against the person
    if not is_designated:
        raise NotDesignated()
    refuse_if(suspended)
    if status == "suspended":
        raise ECertSuspended()
    if status != "active" or version != current_version:
        raise ECertRevoked()
    return Holder(
        ecert_id=ecert_id,
        person_id=person_id,
        version=current_version,
        area=first[4],
        gender=first[5],
        birth_date=first[6],
        id_cipher=first[7],
        name_cipher=first[8],
        enrolments=[(row[12], row[13]) for row in rows if row[12] is not None],
        chain=first[14] if len(first) > 14 else None,
        prev=first[15] if len(first) > 14 else None,
    )


async def _ecert_from_numeric(session: AsyncSession, principal: Principal, code: str) -> Holder:
    row = await session.scalar(select(NumericCode).where(NumericCode.code == code))
    if row is None:
        raise codec.QrMalformed("unknown numeric code")
    if row.expires_at < utcnow():
        raise codec.QrExpired()
    holder = await _load_holder(session, principal, version=row.version, ecert_id=row.ecert_id)
    # Guarded update: of concurrent scans of one code exactly one sees a row change.
    used = await session.execute(
        update(NumericCode)
        .where(NumericCode.id == row.id, NumericCode.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise codec.QrReplayed()
    return holder


async def _spend_qr(
    session: AsyncSession,
    claims: codec.QrClaims,
    institution: str,
    token: dict[str, Any],
    audit: dict[str, Any],
    holder: Holder,
) -> None:
    """Mark the code used, store the ec_token and the audit row; :class:`QrReplayed` if another
    scan used the code first (the unique key decides: of concurrent scans exactly one inserts).

    On PostgreSQL one statement (data-modifying CTEs: the token and the audit row are inserted
    only if the use was); on SQLite (one writer, no DML in CTEs) the same rows one by one.
    """
    use = {
        "iss": claims.iss,
        "sub": claims.sub,
        "jti": claims.jti,
        "at": utcnow(),
        # The code's own expiry: the day partition on PostgreSQL (ecert/db/partitions.py).
        "expires_at": dt.datetime.fromtimestamp(claims.exp, dt.UTC),
        "institution_code": institution,
    }
    if not _postgres(session):
        used = await insert_ignore(session, QrUse.__table__, use, returning=QrUse.__table__.c.id)
        if used is None:
            raise codec.QrReplayed()
        await session.execute(insert(EcToken), [token])
        auditchain.defer(session.sync_session, AuditEvent(**audit))
        return
    chain, prev = await auditchain.take_link(session, holder.chain, holder.prev)
    audit = auditchain.link(session, chain, prev, audit)
    values = {f"u_{k}": v for k, v in use.items()}
    values |= {f"t_{k}": v for k, v in token.items()}
    values |= {f"a_{k}": v for k, v in audit.items()}
    try:
        spent = (await session.execute(_spend_statement(), values)).one()
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) == UNIQUE_VIOLATION:
            raise codec.QrReplayed() from None  # of concurrent scans, another one was first
        raise
    if spent[0] != 1:
        raise codec.QrReplayed()


#: The columns :func:`_spend_statement` writes (``verify`` passes exactly these).
_USE = ("iss", "sub", "jti", "at", "expires_at", "institution_code")
_TOKEN = (
    "token",
    "person_id",
    "ecert_id",
    "institution_code",
    "business_type",
    "expires_at",
    "ecert_version",
)
_AUDIT = (
    "actor",
    "actor_kind",
    "person_id",
    "action",
    "outcome",
    "request_id",
    "detail",
    "at",
    "chain",
    "prev_hash",
    "row_hash",
)


@functools.cache
def _spend_statement() -> Select[Any]:
    """PostgreSQL: the use, the token and the audit row in one statement, built once."""
    table = QrUse.__table__
    # A plain INSERT, not ON CONFLICT DO NOTHING: SQLAlchemy 2.0 does not cache the PostgreSQL
    # dialect's INSERT (sqlalchemy#10445), which cost a compile of this statement per verify.
    # A second use of the code is a unique violation instead (the transaction is lost anyway).
    used = (
        insert(QrUse)
        .values({c: bindparam(f"u_{c}", type_=table.c[c].type) for c in _USE})
        .returning(table.c.id)
        .cte("qr_use")
    )
    token = _insert_after(EcToken, "t_", _TOKEN, used, "ec_token")
    audit = _insert_after(AuditEvent, "a_", _AUDIT, used, "audit_row")
    return select(
        select(func.count()).select_from(token).scalar_subquery(),
        select(func.count()).select_from(audit).scalar_subquery(),
    )


def _insert_after(model: Any, prefix: str, names: tuple[str, ...], after: Any, name: str) -> Any:
    """``INSERT … SELECT <binds> FROM after RETURNING id``: a row only if ``after`` has one."""
    table = model.__table__
    row = select(*(bindparam(prefix + n, type_=table.c[n].type) for n in names))
    return (
        insert(table)
        .from_select(list(names), row.select_from(after))
        .returning(table.c.id)
        .cte(name)
    )


def new_ec_token(area: str) -> str:
    """6-digit area + 32 random lowercase alphanumerics, like the national ecToken."""
    return area + "".join(secrets.choice(_TOKEN_CHARS) for _ in range(32))


async def verify(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    text: str,
    business_type: str | None,
) -> VerifyResponse:
    code = text.strip()
    claims = None
    if NUMERIC_CODE.match(code):
        holder = await _ecert_from_numeric(session, principal, code)
    else:
        holder, claims = await _ecert_from_qr(session, runtime, principal, code)
    if not any(status == "active" for _, status in holder.enrolments):
        raise NotEnrolled()
    expires = utcnow() + dt.timedelta(seconds=runtime.settings.ec_token_ttl_s)
    institution = principal.institution_code or principal.client_id
    ec_token = new_ec_token(holder.area)
    token: dict[str, Any] = {
        "token": ec_token,
        "person_id": holder.person_id,
        "ecert_id": holder.ecert_id,
        "institution_code": institution,
        "business_type": business_type,
        "expires_at": expires,
        "ecert_version": holder.version,
    }
    full = FULL_IDENTITY_SCOPE in principal.scopes
    audit = audit_values(
        principal,
        holder.person_id,
        "verify",
        "ok",
        {"business_type": business_type, "full_identity": full},
    )
    if claims is not None:
        await _spend_qr(session, claims, institution, token, audit, holder)
    else:
        await session.execute(insert(EcToken), [token])
        if holder.chain is not None:
            await auditchain.take_link(session, holder.chain, holder.prev)
        await record_audit(session, principal, holder.person_id, "verify", "ok", audit["detail"])
    name = open_name(runtime.cipher, holder.name_cipher)
    number = open_id_number(runtime.cipher, holder.id_cipher)
    return VerifyResponse(
        ec_token=ec_token,
        expires_at=expires,
        person=VerifiedPerson(
            name=name if full else mask_name(name),
            id_number=number if full else mask_id_number(number),
            gender=holder.gender,
            age=age_on(holder.birth_date, dt.date.today()) if holder.birth_date else None,
            insured_area=holder.area,
        ),
        insurances=[
            Insurance(insurance_type=kind, status=status) for kind, status in holder.enrolments
        ],
    )
