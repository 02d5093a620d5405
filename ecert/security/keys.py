"""ecert's own key table, loaded into memory: ES256 keys for QR codes, access tokens and feeds.

``kid`` values are only ever resolved against this table (RFC 8725 §3.10); header-supplied key
material is never used. Private keys are stored encrypted with the PII cipher.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import enum
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ecert.db.models import KeyEvent, SigningKey, utcnow
from ecert.security import repositories
from ecert.security.pii import PiiCipher
from ecert.store import Store, StoreUnavailable

PURPOSES = ("qr", "access", "feed")
#: States whose public key verifies tokens (a ``next`` key is published but signs nothing yet).
VERIFYING_STATES = frozenset({"active", "retiring"})
PUBLISHED_STATES = frozenset({"next", "active", "retiring"})
_CONTEXT = "signing-key"
#: Where the store holds the key ring's version (the highest ``key_events.id``).
VERSION_KEY = "keys:version"
#: A worker asks the store for the version at most this often (not one Redis read a request);
#: ``ecert keys revoke`` waits this long after publishing, so it still returns only once every
#: worker's next request sees the revocation.
VERSION_CHECK_S = 0.2
#: Long enough to outlive any worker's interest; when it lapses workers poll on the short interval.
VERSION_TTL_S = 7 * 86_400


class KeyAction(enum.StrEnum):
    """What a ``key_events`` row records."""

    CREATED = "created"
    ROTATED = "rotated"
    REVOKED = "revoked"


def _b64(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()


def public_jwk(kid: str, public: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The JWK (RFC 7517) of a P-256 public key."""
    numbers = public.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64(numbers.x),
        "y": _b64(numbers.y),
        "kid": kid,
        "use": "sig",
        "alg": "ES256",
    }


def new_kid() -> str:
    """A short random key id (4 base64url characters: QR codes have no room for more)."""
    return secrets.token_urlsafe(3)


def new_key_row(cipher: PiiCipher, purpose: str, state: str) -> SigningKey:
    """Generate a P-256 key and wrap it as a table row (private half encrypted)."""
    private = ec.generate_private_key(ec.SECP256R1())
    kid = new_kid()
    der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    now = utcnow()
    return SigningKey(
        kid=kid,
        purpose=purpose,
        alg="ES256",
        state=state,
        private_cipher=cipher.encrypt(base64.b64encode(der).decode(), context=_CONTEXT),
        public_jwk=public_jwk(kid, private.public_key()),
        activated_at=now if state == "active" else None,
    )


@dataclass(frozen=True)
class LoadedKey:
    """One key as the process holds it."""

    kid: str
    purpose: str
    state: str
    private: ec.EllipticCurvePrivateKey
    public: ec.EllipticCurvePublicKey
    jwk: dict[str, str]
    activated_at: dt.datetime | None
    publish_until: dt.datetime | None


def _private_key(cipher: PiiCipher, row: SigningKey) -> ec.EllipticCurvePrivateKey:
    der = base64.b64decode(cipher.decrypt(row.private_cipher, context=_CONTEXT))
    private = serialization.load_der_private_key(der, password=None)
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise TypeError("signing keys must be EC keys")
    return private


def _load(row: SigningKey, private: ec.EllipticCurvePrivateKey) -> LoadedKey:
    return LoadedKey(
        kid=row.kid,
        purpose=row.purpose,
        state=row.state,
        private=private,
        public=private.public_key(),
        jwk=dict(row.public_jwk),
        activated_at=row.activated_at,
        publish_until=row.publish_until,
    )


class NoSigningKey(Exception):
    """Raised when a purpose has no active key (run ``ecert db upgrade`` / start the app)."""


class KeyRing:
    """In-memory view of the key table, refreshed periodically and on an unknown ``kid``.

    ``version`` is the key table's version when it was loaded; :meth:`due` compares it with the
    version the store holds, so a revocation anywhere reaches this worker on its next request.
    """

    def __init__(
        self,
        cipher: PiiCipher,
        *,
        refresh_every_s: float = 30.0,
        min_refresh_gap_s: float = 2.0,
        fallback_refresh_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cipher = cipher
        self._keys: dict[str, LoadedKey] = {}
        self._loaded_at = float("-inf")
        self._refresh_every = refresh_every_s
        self._min_gap = min_refresh_gap_s
        self._fallback = fallback_refresh_s
        self._store_quiet_until = float("-inf")
        self._version_asked_at = float("-inf")
        self._version_seen: int | None = None
        self._clock = clock
        self.version = 0

    def replace(self, rows: Iterable[SigningKey], version: int | None = None) -> None:
        """Swap in the current table content (read at ``version``, when known)."""
        loaded = {}
        for row in rows:
            previous = self._keys.get(row.kid)
            # Decrypting is the costly part; a known key only gets its new state and times.
            private = previous.private if previous else _private_key(self._cipher, row)
            loaded[row.kid] = _load(row, private)
        self._keys = loaded
        self._loaded_at = self._clock()
        if version is not None:
            self.version = version

    async def refresh(self, session: AsyncSession) -> None:
        # The version first: a change committed between the two reads only causes one more reload.
        version = await ring_version(session)
        self.replace(await repositories.all_signing_keys(session), version)

    @property
    def loaded_at(self) -> float:
        return self._loaded_at

    def stale(self) -> bool:
        return self._clock() - self._loaded_at > self._refresh_every

    async def due(self, store: Store) -> bool:
        """Whether to reload before using a key: the store holds a newer version, or it cannot
        tell (down, or the version lapsed) and the short fallback interval has passed."""
        now = self._clock()
        if now - self._version_asked_at >= VERSION_CHECK_S and now >= self._store_quiet_until:
            self._version_asked_at = now
            try:
                seen = await store.get(VERSION_KEY)
            except StoreUnavailable:
                # Pay the store's timeout once per interval, not on every request while it is down.
                self._store_quiet_until = now + self._fallback
                seen = None
            self._version_seen = int(seen) if seen is not None and seen.isdigit() else None
        if self._version_seen is not None:
            return self._version_seen > self.version or self.stale()
        return now - self._loaded_at > self._fallback

    def may_refresh_for_unknown(self) -> bool:
        """Bounded rate: an attacker sending random ``kid`` values cannot hammer the database."""
        return self._clock() - self._loaded_at > self._min_gap

    def signer(self, purpose: str) -> LoadedKey:
        """The active key of a purpose (the most recently activated, if several)."""
        active = [k for k in self._keys.values() if k.purpose == purpose and k.state == "active"]
        if not active:
            raise NoSigningKey(purpose)
        return max(active, key=lambda k: k.activated_at or dt.datetime.min.replace(tzinfo=dt.UTC))

    def verifier(self, purpose: str, kid: str) -> LoadedKey | None:
        """A key that may verify tokens of ``purpose``; None for unknown, revoked or retired."""
        key = self._keys.get(kid)
        if key is None or key.purpose != purpose or key.state not in VERIFYING_STATES:
            return None
        return key

    def published(self, purpose: str) -> list[LoadedKey]:
        return [
            k for k in self._keys.values() if k.purpose == purpose and k.state in PUBLISHED_STATES
        ]


async def ensure_active_keys(session: AsyncSession, cipher: PiiCipher) -> None:
    """Give every purpose an active key and a published ``next`` key (first start)."""
    present = await repositories.key_purposes_and_states(session)
    for purpose in PURPOSES:
        for state in ("active", "next"):
            if (purpose, state) not in present:
                row = new_key_row(cipher, purpose, state)
                session.add(row)
                _record(session, row.kid, purpose, KeyAction.CREATED)
    await session.flush()


async def ring_version(session: AsyncSession) -> int:
    """The key table's version: the highest key event (0 before the first)."""
    return await repositories.ring_version(session)


def _record(session: AsyncSession, kid: str, purpose: str, action: KeyAction) -> None:
    session.add(KeyEvent(kid=kid, purpose=purpose, action=action.value, at=utcnow()))


async def publish_version(session: AsyncSession, store: Store, *, attempts: int = 1) -> bool:
    """After the key change committed: tell every worker through the store (never the authority:
    a worker that cannot read a version reloads on its short fallback interval). False when the
    store did not take it."""
    version = await ring_version(session)
    for _ in range(attempts):
        with contextlib.suppress(StoreUnavailable):
            await store.set(VERSION_KEY, str(version).encode(), VERSION_TTL_S)
            return True
    return False


async def rotate(
    session: AsyncSession, cipher: PiiCipher, purpose: str, *, overlap_s: int
) -> str | None:
    """One rotation step: next → active → retiring; a new next; expired retiring → retired.

    ``overlap_s`` is how long a retiring key stays published: the longest lifetime of a token it
    signed, plus leeway, plus how long a worker may keep signing with its cached key ring.
    Returns the kid that became active, or None when another process rotated at the same time.
    """
    now = utcnow()
    await repositories.retire_expired_keys(session, purpose, now)
    active = await repositories.keys_in_state(session, purpose, "active")
    nxt = await repositories.oldest_key_in_state(session, purpose, "next")
    for key in active:
        # Conditional update: of two processes rotating together, exactly one moves each key.
        until = now + dt.timedelta(seconds=overlap_s)
        if not await repositories.start_retiring(session, key.id, now, until):
            return None
    if nxt is None:
        nxt = new_key_row(cipher, purpose, "next")
        session.add(nxt)
        await session.flush()
    await repositories.activate_key(session, nxt.id, now)
    session.add(new_key_row(cipher, purpose, "next"))
    _record(session, nxt.kid, purpose, KeyAction.ROTATED)
    await session.flush()
    return nxt.kid


async def revoke(session: AsyncSession, cipher: PiiCipher, kid: str) -> bool:
    """Emergency revocation: unpublished and refused at once.

    In the same transaction a purpose left without an active key gets one (its ``next`` key, or
    a new one), and a new ``next`` is published, so signing never stops. The caller publishes
    the new version (:func:`publish_version`) after the commit.
    """
    row = await repositories.live_key(session, kid)
    if row is None:
        return False
    # Conditional update: of two processes revoking together, exactly one moves the key.
    if not await repositories.revoke_key(session, row.id, row.state, utcnow()):
        return False
    _record(session, kid, row.purpose, KeyAction.REVOKED)
    await _refill(session, cipher, row.purpose)
    await session.flush()
    return True


async def revoke_now(
    sessions: async_sessionmaker[AsyncSession], cipher: PiiCipher, store: Store, kid: str
) -> bool | None:
    """``ecert keys revoke``: revoke in one transaction, then tell every worker before returning.

    False when no live key has this kid; None when the key is revoked but the store could not be
    told (workers then learn within ``key_refresh_s``; the verify path's database check at once).
    """
    async with sessions.begin() as session:
        if not await revoke(session, cipher, kid):
            return False
    async with sessions() as session:
        told = await publish_version(session, store, attempts=3)
    if told:
        # Every worker asks for the version at least this often while it serves requests.
        await asyncio.sleep(VERSION_CHECK_S * 1.5)
    return True if told else None


async def _refill(session: AsyncSession, cipher: PiiCipher, purpose: str) -> None:
    """Give ``purpose`` an active key and a ``next`` key again after a revocation."""
    if not await repositories.has_key_in_state(session, purpose, "active"):
        nxt = await repositories.oldest_key_in_state(session, purpose, "next")
        promoted = None
        if nxt is not None and await repositories.promote_next(session, nxt.id, utcnow()):
            promoted = nxt.kid
        if promoted is None:
            fresh = new_key_row(cipher, purpose, "active")
            session.add(fresh)
            promoted = fresh.kid
        _record(session, promoted, purpose, KeyAction.ROTATED)
    if not await repositories.has_key_in_state(session, purpose, "next"):
        session.add(new_key_row(cipher, purpose, "next"))


async def verifies(session: AsyncSession, purpose: str, kid: str) -> bool:
    """The database's word on a ``kid`` (the authority, when the store cannot be asked)."""
    return await repositories.key_state(session, purpose, kid) in VERIFYING_STATES


def rotation_due(ring: KeyRing, purpose: str, every_days: int) -> bool:
    """Whether the active key of ``purpose`` is older than the configured schedule."""
    if every_days <= 0:
        return False
    try:
        key = ring.signer(purpose)
    except NoSigningKey:
        return True
    if key.activated_at is None:
        return False
    return utcnow() - key.activated_at > dt.timedelta(days=every_days)
