"""Staff accounts (``ecert staff …``) and the console's sign-in, with lockout.

Sign-in failures are counted in their own transaction and lock the login for
:data:`LOCK_MINUTES` after :data:`LOCK_AFTER` in a row; each refusal is audited under the login
tried (``staff:<login>``), like every other refusal.
"""

from __future__ import annotations

import datetime as dt

import pyotp
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.agency import repositories
from ecert.clock import utcnow
from ecert.db.models import Staff, StaffRole
from ecert.errors import Conflict, Forbidden, NotFound, Unauthorized
from ecert.security import staff as marks
from ecert.security.audit import acting, record_audit
from ecert.security.passwords import check_password, hash_password
from ecert.security.tokens import Principal, mint_access_token
from ecert.server.runtime import Runtime

LOCK_AFTER = 5
LOCK_MINUTES = 15
#: A console session lasts this long; then the clerk signs in again.
SESSION_S = 30 * 60
_TOTP_CONTEXT = "staff.totp"


class SignInFailed(Unauthorized):
    """Raised for a wrong login, password or TOTP code (which one is not said)."""

    code = "staff_sign_in_failed"
    title = "Wrong login, password or code"


class StaffLocked(Forbidden):
    """Raised while a login is locked after repeated failures."""

    code = "staff_locked"
    title = "Too many failed sign-ins: try again later"


class StaffExists(Conflict):
    """Raised by ``ecert staff add`` for a login already taken."""

    code = "staff_exists"
    title = "A member of staff has this login"


def principal(member: Staff) -> Principal:
    return Principal(
        client_id=marks.PREFIX + member.login,
        kind="agency",
        staff_role=member.role,
        staff_name=member.name,
    )


async def sign_in(
    session: AsyncSession, runtime: Runtime, login: str, password: str, totp: str | None
) -> tuple[Staff, str]:
    """Check the credentials; return the member and a session token for the cookie."""
    acting(marks.PREFIX + login, "agency")  # a refusal is audited under the login tried
    member = await repositories.staff_by_login(session, login)
    now = utcnow()
    if member is not None and member.locked_until is not None and member.locked_until > now:
        raise StaffLocked(retry_after=int((member.locked_until - now).total_seconds()) + 1)
    ok = await check_password(member.password_hash if member else None, password)
    if ok and member is not None and member.totp_cipher is not None:
        secret = runtime.cipher.decrypt(member.totp_cipher, context=_TOTP_CONTEXT)
        ok = totp is not None and pyotp.TOTP(secret).verify(totp, valid_window=1)
    if not ok or member is None or not member.active:
        await repositories.note_failed_sign_in(
            runtime.sessions,
            login,
            lock_after=LOCK_AFTER,
            lock_until=now + dt.timedelta(minutes=LOCK_MINUTES),
        )
        raise SignInFailed()
    await repositories.clear_failures(session, member)
    who = principal(member)
    await record_audit(session, who, None, "staff.sign_in", "ok")
    token = mint_access_token(runtime.keys, runtime.settings, who, ttl_s=SESSION_S)
    return member, token


async def add(
    session: AsyncSession,
    runtime: Runtime,
    login: str,
    name: str,
    role: StaffRole,
    password: str,
    *,
    totp: bool,
) -> str | None:
    """Register a member; returns the TOTP provisioning URI when ``totp`` is asked for."""
    if await repositories.staff_by_login(session, login) is not None:
        raise StaffExists()
    secret = pyotp.random_base32() if totp else None
    session.add(
        Staff(
            login=login,
            name=name,
            role=role.value,
            password_hash=hash_password(password),
            totp_cipher=None
            if secret is None
            else runtime.cipher.encrypt(secret, context=_TOTP_CONTEXT),
            active=True,
            failed_logins=0,
        )
    )
    if secret is None:
        return None
    return pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name="ecert agency")


async def _member(session: AsyncSession, login: str) -> Staff:
    member = await repositories.staff_by_login(session, login)
    if member is None:
        raise NotFound("no member of staff has this login")
    return member


async def set_active(session: AsyncSession, login: str, active: bool) -> None:
    (await _member(session, login)).active = active


async def reset(session: AsyncSession, login: str, password: str) -> None:
    """A new password; also lifts a lockout."""
    member = await _member(session, login)
    member.password_hash = hash_password(password)
    member.failed_logins, member.locked_until = 0, None
