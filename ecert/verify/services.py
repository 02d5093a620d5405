"""Online verification: scanned code → checks → single-use mark → institution-bound ec_token."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import secrets
import string
import time
import uuid
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db import native
from ecert.db.models import AuditEvent, utcnow
from ecert.errors import EcertError, ECertRevoked, ECertSuspended, NotDesignated, NotEnrolled
from ecert.identity import age_on, mask_id_number, mask_name
from ecert.persons import open_id_number, open_name
from ecert.qr import codec
from ecert.security import auditchain, keys
from ecert.security.audit import audit_values, concerning, record_audit
from ecert.security.tokens import Principal
from ecert.server.ratelimit import Charge
from ecert.server.runtime import Runtime
from ecert.store import StoreUnavailable
from ecert.suspension import refuse_if
from ecert.verify import batches, repositories
from ecert.verify.schemas import Insurance, VerifiedPerson, VerifyResponse

NUMERIC_CODE = re.compile(r"^424\d{25}$")
FULL_IDENTITY_SCOPE = "identity:full"
_TOKEN_CHARS = string.ascii_lowercase + string.digits
_TAIL = 32
#: Bytes 0..251 → a character each (uniform: 252 is 7 × 36); 252..255 are dropped.
_UNIFORM = bytes.maketrans(
    bytes(range(252)), bytes(ord(_TOKEN_CHARS[b % len(_TOKEN_CHARS)]) for b in range(252))
)
_OVER = bytes(range(252, 256))


@dataclass(frozen=True, slots=True)
class Holder:
    """What a verify needs of the e-cert, its person and enrolments: plain columns, no ORM."""

    #: The e-cert's and the person's columns (the first of the rows, one per enrolment).
    row: repositories.HolderRow
    enrolments: list[tuple[str, str]]
    #: The audit chain the load locked (PostgreSQL), ``None`` when it found none free.
    chain: int | None = None
    prev: str | None = None


async def _claims(runtime: Runtime, session: AsyncSession, text: str) -> tuple[codec.QrClaims, str]:
    """The QR's signed claims: its key known to the ring and not revoked there, signature and
    times checked (the database re-checks the key's state with the holder)."""
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
    return claims, header.kid


async def _mark(runtime: Runtime, charge: Charge | None, claims: codec.QrClaims) -> None:
    """Early reject in the store (the unique key in the database is the authority), with the
    caller's rate-limit charge in the same round trip when the route deferred it."""
    key = f"qr:{claims.iss}:{claims.sub}:{claims.jti}"
    ttl = runtime.settings.qr_ttl_s + 2 * runtime.settings.leeway_s
    if charge is not None:
        first = await charge.take_with_mark(key, ttl)
    else:
        try:
            first = await runtime.store.set_once(key, ttl)
        except StoreUnavailable:
            first = True
    if not first:
        raise codec.QrReplayed()


async def _unmark(runtime: Runtime, claims: codec.QrClaims) -> None:
    """A refused code was not spent: let a later scan (another institution's, the person's once
    the suspension is lifted) use it. Best effort: with the store down the code stays refused
    early until its short life ends, and the person shows a new one."""
    with contextlib.suppress(StoreUnavailable):
        await runtime.store.delete(f"qr:{claims.iss}:{claims.sub}:{claims.jti}")


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def _no_holder(session: AsyncSession, principal: Principal, qr_kid: str | None) -> NoReturn:
    """Why no e-cert came back: the key, the caller, or the pseudonym."""
    if qr_kid is not None and not await keys.verifies(session, "qr", qr_kid):
        raise codec.QrUnknownKey()
    if not await repositories.designated(session, principal.institution_code):
        raise NotDesignated()
    raise ECertRevoked("no e-cert has this pseudonym")


def _check(row: Any, version: int, qr_kid: str | None) -> None:
    """Refuse a holder row that fails a check, in the order the caller learns them."""
    if qr_kid is not None and row.key_state not in keys.VERIFYING_STATES:
        raise codec.QrUnknownKey()
    concerning(row.person_id)  # a refusal from here on is audited against the person
    if not row.designated:
        raise NotDesignated()
    refuse_if(row.suspended)
    if row.ecert_status == "suspended":
        raise ECertSuspended()
    if row.ecert_status != "active" or version != row.version:
        raise ECertRevoked()


def _holder(rows: list[Any], chain: bool = False) -> Holder:
    first = rows[0]
    return Holder(
        row=repositories.HolderRow(*first[: len(repositories.HolderRow._fields)]),
        enrolments=[
            (row.insurance_type, row.enrolment_status)
            for row in rows
            if row.insurance_type is not None
        ],
        chain=first.chain if chain else None,
        prev=first.prev if chain else None,
    )


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
    round trip, checked: the key's state (``qr_kid``), designation and suspension too, so that
    every refusal comes before the code is spent. On PostgreSQL it also locks an audit chain."""
    values: dict[str, Any] = {"institution": principal.institution_code, "kid": qr_kid or ""}
    values |= {"sub": sub} if sub is not None else {"ecert_id": ecert_id}
    rows = await repositories.holder_rows(session, values)
    if not rows:
        await _no_holder(session, principal, qr_kid)
    _check(rows[0], version, qr_kid)
    return _holder(rows, chain=_postgres(session))


async def _ecert_from_numeric(session: AsyncSession, principal: Principal, code: str) -> Holder:
    row = await repositories.numeric_code(session, code)
    if row is None:
        raise codec.QrMalformed("unknown numeric code")
    if row.expires_at < utcnow():
        raise codec.QrExpired()
    holder = await _load_holder(session, principal, version=row.version, ecert_id=row.ecert_id)
    if not await repositories.use_numeric_code(session, row.id, utcnow()):
        raise codec.QrReplayed()
    return holder


def _use(claims: codec.QrClaims, institution: str) -> dict[str, Any]:
    return {
        "iss": claims.iss,
        "sub": claims.sub,
        "jti": claims.jti,
        "at": utcnow(),
        # The code's own expiry: the day partition on PostgreSQL (ecert/db/partitions.py).
        "expires_at": dt.datetime.fromtimestamp(claims.exp, dt.UTC),
        "institution_code": institution,
    }


def spend_values(
    principal: Principal,
    claims: codec.QrClaims,
    kid: str,
    institution: str,
    business_type: str | None,
    expires: dt.datetime,
) -> dict[str, Any]:
    """What the group spend takes for one verify (``repositories.SPEND_ARRAYS`` but ``n``)."""
    values: dict[str, Any] = {f"u_{k}": v for k, v in _use(claims, institution).items()}
    return values | {
        "institution": principal.institution_code,
        "kid": kid,
        "sub": claims.sub,
        "ver": claims.ver,
        "token_tail": _token_tail(),
        "business_type": business_type,
        "token_expires_at": expires,
    }


async def _spend_on_postgres(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    claims: codec.QrClaims,
    kid: str,
    values: dict[str, Any],
) -> tuple[Holder, str]:
    """One autocommitted statement for ``values`` (:func:`spend_values`), shared with the
    verifies waiting beside this one (``ecert.verify.batches``): the holder's checks, the use
    and the ``ec_token``."""
    spends = batches.for_runtime(runtime)
    rows, token = await spends.spend(values)
    if not rows:
        await _no_holder(session, principal, kid)
    _check(rows[0], claims.ver, kid)
    holder = _holder(rows)
    _refuse_unless_enrolled(holder)
    if token is None:
        raise codec.QrReplayed()  # every check passed: another scan used the code first
    return holder, token


def _refuse_unless_enrolled(holder: Holder) -> None:
    if not any(status == "active" for _, status in holder.enrolments):
        raise NotEnrolled()


def _token_tail() -> str:
    """32 random lowercase alphanumerics: random bytes below 252 (= 7 × 36), each mapped to the
    character of its remainder by 36 (uniform and independent), the others dropped — two calls
    in C instead of 32 Python steps."""
    tail = b""
    while len(tail) < _TAIL:
        tail += secrets.token_bytes(_TAIL + 8).translate(_UNIFORM, _OVER)
    return tail[:_TAIL].decode("ascii")


def new_ec_token(area: str) -> str:
    """6-digit area + 32 random lowercase alphanumerics, like the national ecToken."""
    return area + _token_tail()


async def _from_qr(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    text: str,
    business_type: str | None,
    expires: dt.datetime,
    charge: Charge | None,
) -> tuple[Holder, str]:
    """A QR code's holder and its new ``ec_token``, the code spent; the audit row is the
    caller's (on PostgreSQL after the spend, through the worker's group commit)."""
    try:
        claims, kid = await _claims(runtime, session, text)
    except EcertError:
        if charge is not None:
            await charge.take()  # a flood of bad codes is counted too (429 past the limit)
        raise
    try:
        await _mark(runtime, charge, claims)
    except codec.QrReplayed:
        # The refusal's audit row names the person, as when the database refuses the replay.
        person_id = await repositories.person_of_pseudonym(session, claims.sub)
        if person_id is not None:
            concerning(person_id)
        raise
    institution = principal.institution_code or principal.client_id
    try:
        if _postgres(session):
            # The spend runs in the worker's group statement on its own connection
            # (ecert.verify.batches): this session sends nothing unless a refusal is diagnosed.
            values = spend_values(principal, claims, kid, institution, business_type, expires)
            holder, token = await _spend_on_postgres(
                session, runtime, principal, claims, kid, values
            )
            return holder, token
        holder = await _load_holder(
            session, principal, version=claims.ver, sub=claims.sub, qr_kid=kid
        )
        _refuse_unless_enrolled(holder)
        if not await repositories.insert_use(session, _use(claims, institution)):
            raise codec.QrReplayed()
        token = new_ec_token(holder.row.area)
        await repositories.insert_token(
            session, _token(token, holder, institution, business_type, expires)
        )
        return holder, token
    except Exception as exc:
        if not isinstance(exc, codec.QrReplayed):
            await _unmark(runtime, claims)
        raise


def _token(
    token: str, holder: Holder, institution: str, business_type: str | None, expires: dt.datetime
) -> dict[str, Any]:
    return {
        "token": token,
        "person_id": holder.row.person_id,
        "ecert_id": holder.row.ecert_id,
        "institution_code": institution,
        "business_type": business_type,
        "expires_at": expires,
        "ecert_version": holder.row.version,
    }


async def verify(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    text: str,
    business_type: str | None,
    charge: Charge | None = None,
) -> VerifyResponse:
    """``charge``: the route's deferred rate-limit charge (``ecert.server.ratelimit.Charge``),
    taken here with the code's replay mark; None when the caller was charged already."""
    code = text.strip()
    full = FULL_IDENTITY_SCOPE in principal.scopes
    detail = {"business_type": business_type, "full_identity": full}
    expires = utcnow() + dt.timedelta(seconds=runtime.settings.ec_token_ttl_s)
    if NUMERIC_CODE.match(code):
        if charge is not None:
            await charge.take()
        holder = await _ecert_from_numeric(session, principal, code)
        _refuse_unless_enrolled(holder)
        institution = principal.institution_code or principal.client_id
        ec_token = new_ec_token(holder.row.area)
        await repositories.insert_token(
            session, _token(ec_token, holder, institution, business_type, expires)
        )
        if holder.chain is not None:
            await auditchain.take_link(session, holder.chain, holder.prev)
        await record_audit(session, principal, holder.row.person_id, "verify", "ok", detail)
    else:
        holder, ec_token = await _from_qr(
            session, runtime, principal, code, business_type, expires, charge
        )
        audit = audit_values(principal, holder.row.person_id, "verify", "ok", detail)
        if _postgres(session):
            # The spend is committed; the answer waits for its audit row's COMMIT too, carried
            # by the group writer's next statement (ecert.verify.batches), holding no connection
            # of its own meanwhile (one a key refresh checked out goes back).
            await native.release(session)
            await batches.for_runtime(runtime).audit(audit)
        else:
            auditchain.defer(session.sync_session, AuditEvent(**audit))
    name = open_name(runtime.cipher, holder.row.name_cipher)
    number = open_id_number(runtime.cipher, holder.row.id_cipher)
    return VerifyResponse(
        ec_token=ec_token,
        expires_at=expires,
        person=VerifiedPerson(
            name=name if full else mask_name(name),
            id_number=number if full else mask_id_number(number),
            gender=holder.row.gender,
            age=age_on(holder.row.birth_date, dt.date.today()) if holder.row.birth_date else None,
            insured_area=holder.row.area,
        ),
        insurances=[
            Insurance(insurance_type=kind, status=status) for kind, status in holder.enrolments
        ],
    )
