"""E-cert lifecycle: activate on a device, unbind, suspend/resume, mint QR and numeric codes."""

from __future__ import annotations

import datetime as dt
import secrets
import time
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import (
    ECert,
    ECertStatus,
    NumericCode,
    Person,
    RevocationEntry,
    utcnow,
)
from ecert.errors import ECertRevoked, ECertSuspended, NotEnrolled, NotFound
from ecert.issuance import mintcache, repositories
from ecert.issuance.mintcache import MintCache
from ecert.issuance.repositories import MintState
from ecert.qr import codec
from ecert.security import keys
from ecert.security.audit import record_audit
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime
from ecert.suspension import ensure_not_suspended, refuse_if

#: A client should fetch a new code this many seconds before the current one expires.
REFRESH_MARGIN_S = 10


class NoECert(NotFound):
    """Raised when the person has no e-cert on this channel yet."""

    code = "no_ecert"
    title = "No e-cert is activated on this channel"


def new_pseudonym() -> str:
    """12 base64url characters (72 random bits), the only identifier a QR code carries."""
    return secrets.token_urlsafe(9)


def new_number(area: str, prefix: str = "E") -> str:
    """The e-cert's own number: "E" + insured area + 12 random digits; not the card number."""
    return f"{prefix}{area}{secrets.randbelow(10**12):012d}"


def _feed(session: AsyncSession, ecert: ECert, reason: str) -> None:
    """Tell offline scanners: codes of this pseudonym below its current version are dead."""
    session.add(
        RevocationEntry(
            pseudonym=ecert.pseudonym, min_version=ecert.version, status=ecert.status, reason=reason
        )
    )


def bump_version(session: AsyncSession, ecert: ECert, reason: str) -> None:
    """Kill every outstanding code of this e-cert by moving to the next version."""
    mintcache.changed(session, ecert.person_id, ecert.channel)
    if ecert.version >= codec.MAX_VERSION:
        # Versions must stay short enough for the QR; start over under a new pseudonym.
        session.add(
            RevocationEntry(
                pseudonym=ecert.pseudonym,
                min_version=ecert.version + 1,
                status="revoked",
                reason="pseudonym_renewed",
            )
        )
        ecert.pseudonym = new_pseudonym()
        ecert.version = 1
    else:
        ecert.version += 1
    _feed(session, ecert, reason)


def _person_of(principal: Principal) -> uuid.UUID:
    assert principal.person_id is not None  # guaranteed by person_guard
    return principal.person_id


async def claim_ecert(
    session: AsyncSession, person_id: uuid.UUID, channel: str, number: str
) -> tuple[ECert, bool]:
    """The person's e-cert on ``channel``, made (under a new pseudonym) if missing, locked for
    this transaction; and whether this call made it (``repositories.claim_ecert``)."""
    return await repositories.claim_ecert(session, person_id, channel, number, new_pseudonym())


async def activate(
    session: AsyncSession, principal: Principal, device_id: str, device_name: str
) -> ECert:
    """Bind the e-cert to a device; a new device replaces the old binding and kills its codes."""
    person_id = _person_of(principal)
    person = await session.get(Person, person_id)
    if person is None or not await repositories.has_active_enrolment(session, person_id):
        await record_audit(session, principal, person_id, "ecert.activate", "not_enrolled")
        raise NotEnrolled()
    # Checked on the person: a channel the person never used gets no e-cert while suspended.
    await ensure_not_suspended(session, person_id)
    ecert = await repositories.find_ecert(session, person_id, principal.client_id)
    made = False
    if ecert is None:
        ecert, made = await claim_ecert(
            session, person_id, principal.client_id, new_number(person.area)
        )
    if not made:
        if ecert.status == ECertStatus.SUSPENDED:
            raise ECertSuspended("resume the e-cert before activating it on a device")
        if ecert.status == ECertStatus.ACTIVE and ecert.device_id == device_id:
            ecert.device_name = device_name
            return ecert
        ecert.status = ECertStatus.ACTIVE
        bump_version(session, ecert, "rebound")
    ecert.device_id, ecert.device_name, ecert.bound_at = device_id, device_name, utcnow()
    await session.flush()
    await record_audit(
        session,
        principal,
        person_id,
        "ecert.activate",
        "ok",
        {"number": ecert.number, "version": ecert.version},
    )
    return ecert


async def current(session: AsyncSession, principal: Principal) -> ECert:
    ecert = await repositories.find_ecert(session, _person_of(principal), principal.client_id)
    if ecert is None:
        raise NoECert()
    await record_audit(session, principal, ecert.person_id, "ecert.read", "ok")
    return ecert


async def unbind(session: AsyncSession, principal: Principal) -> None:
    ecert = await repositories.find_ecert(session, _person_of(principal), principal.client_id)
    if ecert is None or ecert.status == ECertStatus.REVOKED:
        raise NoECert()
    ecert.status = ECertStatus.REVOKED
    ecert.device_id = ecert.device_name = None
    bump_version(session, ecert, "unbound")
    await record_audit(session, principal, ecert.person_id, "ecert.unbind", "ok")


def _mintable(state: MintState | None) -> MintState:
    """The state, if it may get a code; else the refusal."""
    if state is None:
        raise NoECert()
    refuse_if(state.suspended)
    if state.status == ECertStatus.SUSPENDED:
        raise ECertSuspended()
    if state.status != ECertStatus.ACTIVE:
        raise ECertRevoked()
    return state


async def mint_qr(
    runtime: Runtime, principal: Principal, cache: MintCache
) -> tuple[str, dt.datetime, dt.datetime]:
    """A fresh signed QR token for the caller's active e-cert: (text, expires_at, refresh_after).

    The e-cert comes from the worker's ``MintCache`` (``ecert.issuance.mintcache``: why that is
    safe), else from one read in autocommit (no BEGIN and COMMIT around a lone read).
    """
    person_id = _person_of(principal)
    state = cache.get(person_id, principal.client_id)
    if state is None:
        async with runtime.sessions() as session:
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            state = await repositories.mint_state(session, person_id, principal.client_id)
        if state is not None:
            cache.put(person_id, principal.client_id, state)
    state = _mintable(state)
    if keys.rotation_due(runtime.keys, "qr", runtime.settings.key_rotate_days):
        async with runtime.sessions.begin() as rotating:  # one transaction of its own
            await keys.rotate(rotating, runtime.cipher, "qr", overlap_s=overlap_seconds(runtime))
        await runtime.refresh_keys()
    # No audit row: showing one's own code reads nobody's data; each use is audited at verify.
    return sign_code(runtime, state.pseudonym, state.version)


def sign_code(
    runtime: Runtime, pseudonym: str, version: int
) -> tuple[str, dt.datetime, dt.datetime]:
    """Sign a fresh QR token for an e-cert: (text, expires_at, refresh_after)."""
    settings = runtime.settings
    signer = runtime.keys.signer("qr")
    claims = codec.new_claims(
        settings.issuer_area, pseudonym, version, int(time.time()), settings.qr_ttl_s
    )
    text = codec.encode(claims, signer.private, signer.kid)
    return text, _at(claims.exp), _at(claims.exp - REFRESH_MARGIN_S)


async def mint_numeric(
    session: AsyncSession, runtime: Runtime, principal: Principal
) -> tuple[str, dt.datetime, dt.datetime]:
    """A 28-digit code in the national layout: 424 + 17 + 2 random digits + province + 0000."""
    # Read afresh, not remembered: this path writes the code row anyway.
    state = _mintable(
        await repositories.mint_state(session, _person_of(principal), principal.client_id)
    )
    province = runtime.settings.issuer_area[:2]
    code = f"424{secrets.randbelow(10**19):019d}{province}0000"
    expires = utcnow() + dt.timedelta(seconds=runtime.settings.qr_ttl_s)
    session.add(
        NumericCode(code=code, ecert_id=state.ecert_id, version=state.version, expires_at=expires)
    )
    return code, expires, expires - dt.timedelta(seconds=REFRESH_MARGIN_S)


def overlap_seconds(runtime: Runtime) -> int:
    """How long a retiring QR key stays published (see ``keys.rotate``)."""
    settings = runtime.settings
    return settings.qr_ttl_s + settings.leeway_s + settings.key_refresh_s


def _at(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)
