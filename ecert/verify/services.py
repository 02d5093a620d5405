"""Online verification: scanned code → checks → single-use mark → institution-bound ec_token."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import string
import time
from collections.abc import Sequence

from sqlalchemy import ColumnElement, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import contains_eager

from ecert import qrtoken
from ecert.db.models import (
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
from ecert.persons import person_id_number, person_name
from ecert.runtime import Runtime
from ecert.security import keys
from ecert.security.audit import concerning, record_audit
from ecert.security.tokens import Principal
from ecert.store import StoreUnavailable
from ecert.suspension import in_force, refuse_if
from ecert.verify.schemas import Insurance, VerifiedPerson, VerifyResponse

NUMERIC_CODE = re.compile(r"^424\d{25}$")
FULL_IDENTITY_SCOPE = "identity:full"
_TOKEN_CHARS = string.ascii_lowercase + string.digits


async def _ecert_from_qr(
    session: AsyncSession, runtime: Runtime, principal: Principal, text: str
) -> ECert:
    jws, header = qrtoken.open_code(text)
    key = runtime.keys.verifier("qr", header.kid)
    if key is None and runtime.keys.may_refresh_for_unknown():
        await runtime.keys.refresh(session)
        key = runtime.keys.verifier("qr", header.kid)
    if key is None:
        raise qrtoken.QrUnknownKey()
    settings = runtime.settings
    claims = qrtoken.decode_jws(
        jws,
        key.public,
        now=int(time.time()),
        leeway_s=settings.leeway_s,
        issuers={settings.issuer_area},
    )
    # The database is the authority on revoked keys, whether or not the store could tell us:
    # the holder's load also reads the key's state (no extra round trip).
    ecert = await _load_holder(
        session, principal, ECert.pseudonym == claims.sub, claims.ver, qr_kid=header.kid
    )
    # Early reject in the store; the unique key in the database is the authority.
    try:
        first = await runtime.store.set_once(
            f"qr:{claims.iss}:{claims.sub}:{claims.jti}", settings.qr_ttl_s + 2 * settings.leeway_s
        )
    except StoreUnavailable:
        first = True
    if not first:
        raise qrtoken.QrReplayed()
    # The unique key decides: of concurrent scans of one code exactly one inserts a row.
    used = await insert_ignore(
        session,
        QrUse.__table__,
        {
            "iss": claims.iss,
            "sub": claims.sub,
            "jti": claims.jti,
            "at": utcnow(),
            "expires_at": dt.datetime.fromtimestamp(claims.exp, dt.UTC),
            "institution_code": principal.institution_code or principal.client_id,
        },
        returning=QrUse.__table__.c.id,
    )
    if used is None:
        raise qrtoken.QrReplayed()
    return ecert


async def _load_holder(
    session: AsyncSession,
    principal: Principal,
    where: ColumnElement[bool],
    version: int,
    *,
    qr_kid: str | None = None,
) -> ECert:
    """The e-cert, its person and enrolments in one round trip (the hot path), checked.

    The same statement says whether the QR key still verifies (``qr_kid``), whether the caller's
    institution is designated and whether the person is suspended, so that every refusal comes
    before the code is spent.
    """
    designated = (
        select(Institution.designated)
        .where(Institution.code == principal.institution_code)
        .scalar_subquery()
    )
    key_state = keys.state_of("qr", qr_kid) if qr_kid is not None else literal(None)
    statement = (
        select(ECert, Person, designated, in_force(ECert.person_id), key_state)
        .join(Person, Person.id == ECert.person_id)
        .outerjoin(Person.enrolments)
        .options(contains_eager(Person.enrolments))
        .where(where)
    )
    rows = (await session.execute(statement)).unique().all()  # all: one row per enrolment
    if not rows:
        if qr_kid is not None and not await keys.verifies(session, "qr", qr_kid):
            raise qrtoken.QrUnknownKey()
        if not await session.scalar(select(designated)):
            raise NotDesignated()
        raise ECertRevoked("no e-cert has this pseudonym")
    ecert, _, is_designated, suspended, state = rows[0]
    if qr_kid is not None and state not in keys.VERIFYING_STATES:
        raise qrtoken.QrUnknownKey()
    concerning(ecert.person_id)  # a refusal from here on is audited against the person
    if not is_designated:
        raise NotDesignated()
    refuse_if(suspended)
    if ecert.status == "suspended":
        raise ECertSuspended()
    if ecert.status != "active" or version != ecert.version:
        raise ECertRevoked()
    return ecert  # type: ignore[no-any-return]


async def _ecert_from_numeric(session: AsyncSession, principal: Principal, code: str) -> ECert:
    row = await session.scalar(select(NumericCode).where(NumericCode.code == code))
    if row is None:
        raise qrtoken.QrMalformed("unknown numeric code")
    if row.expires_at < utcnow():
        raise qrtoken.QrExpired()
    ecert = await _load_holder(session, principal, ECert.id == row.ecert_id, row.version)
    # Guarded update: of concurrent scans of one code exactly one sees a row change.
    used = await session.execute(
        update(NumericCode)
        .where(NumericCode.id == row.id, NumericCode.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise qrtoken.QrReplayed()
    return ecert


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
    if NUMERIC_CODE.match(code):
        ecert = await _ecert_from_numeric(session, principal, code)
    else:
        ecert = await _ecert_from_qr(session, runtime, principal, code)
    person = await session.get(Person, ecert.person_id)  # loaded with the e-cert: no query
    assert person is not None
    enrolments: Sequence[Enrolment] = person.enrolments
    if not any(e.status == "active" for e in enrolments):
        raise NotEnrolled()
    expires = utcnow() + dt.timedelta(seconds=runtime.settings.ec_token_ttl_s)
    token = new_ec_token(person.area)
    session.add(
        EcToken(
            token=token,
            person_id=person.id,
            ecert_id=ecert.id,
            institution_code=principal.institution_code or principal.client_id,
            business_type=business_type,
            expires_at=expires,
            ecert_version=ecert.version,
        )
    )
    full = FULL_IDENTITY_SCOPE in principal.scopes
    name = person_name(runtime.cipher, person)
    number = person_id_number(runtime.cipher, person)
    await record_audit(
        session,
        principal,
        person.id,
        "verify",
        "ok",
        {"business_type": business_type, "full_identity": full},
    )
    return VerifyResponse(
        ec_token=token,
        expires_at=expires,
        person=VerifiedPerson(
            name=name if full else mask_name(name),
            id_number=number if full else mask_id_number(number),
            gender=person.gender,
            age=age_on(person.birth_date, dt.date.today()) if person.birth_date else None,
            insured_area=person.area,
        ),
        insurances=[
            Insurance(insurance_type=e.insurance_type, status=e.status) for e in enrolments
        ],
    )
