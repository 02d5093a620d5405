"""ecert's own key table, loaded into memory: ES256 keys for QR codes, access tokens and feeds.

``kid`` values are only ever resolved against this table (RFC 8725 §3.10); header-supplied key
material is never used. Private keys are stored encrypted with the PII cipher.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import SigningKey, utcnow
from ecert.security.pii import PiiCipher

PURPOSES = ("qr", "access", "feed")
#: States whose public key verifies tokens (a ``next`` key is published but signs nothing yet).
VERIFYING_STATES = frozenset({"active", "retiring"})
PUBLISHED_STATES = frozenset({"next", "active", "retiring"})
_CONTEXT = "signing-key"


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
    """In-memory view of the key table, refreshed periodically and on an unknown ``kid``."""

    def __init__(
        self,
        cipher: PiiCipher,
        *,
        refresh_every_s: float = 30.0,
        min_refresh_gap_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cipher = cipher
        self._keys: dict[str, LoadedKey] = {}
        self._loaded_at = float("-inf")
        self._refresh_every = refresh_every_s
        self._min_gap = min_refresh_gap_s
        self._clock = clock

    def replace(self, rows: Iterable[SigningKey]) -> None:
        """Swap in the current table content."""
        loaded = {}
        for row in rows:
            previous = self._keys.get(row.kid)
            # Decrypting is the costly part; a known key only gets its new state and times.
            private = previous.private if previous else _private_key(self._cipher, row)
            loaded[row.kid] = _load(row, private)
        self._keys = loaded
        self._loaded_at = self._clock()

    async def refresh(self, session: AsyncSession) -> None:
        rows = (await session.scalars(select(SigningKey))).all()
        self.replace(rows)

    def stale(self) -> bool:
        return self._clock() - self._loaded_at > self._refresh_every

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
    rows = (await session.execute(select(SigningKey.purpose, SigningKey.state))).all()
    present = {(purpose, state) for purpose, state in rows}
    for purpose in PURPOSES:
        for state in ("active", "next"):
            if (purpose, state) not in present:
                session.add(new_key_row(cipher, purpose, state))
    await session.flush()


async def rotate(
    session: AsyncSession, cipher: PiiCipher, purpose: str, *, overlap_s: int
) -> str | None:
    """One rotation step: next → active → retiring; a new next; expired retiring → retired.

    ``overlap_s`` is how long a retiring key stays published: the longest lifetime of a token it
    signed, plus leeway, plus how long a worker may keep signing with its cached key ring.
    Returns the kid that became active, or None when another process rotated at the same time.
    """
    now = utcnow()
    await session.execute(
        update(SigningKey)
        .where(
            SigningKey.purpose == purpose,
            SigningKey.state == "retiring",
            SigningKey.publish_until <= now,
        )
        .values(state="retired")
    )
    active = (
        await session.scalars(
            select(SigningKey).where(SigningKey.purpose == purpose, SigningKey.state == "active")
        )
    ).all()
    nxt = await session.scalar(
        select(SigningKey)
        .where(SigningKey.purpose == purpose, SigningKey.state == "next")
        .order_by(SigningKey.created_at)
        .limit(1)
    )
    for key in active:
        # Conditional update: of two processes rotating together, exactly one moves each key.
        moved = await session.execute(
            update(SigningKey)
            .where(SigningKey.id == key.id, SigningKey.state == "active")
            .values(
                state="retiring",
                retiring_at=now,
                publish_until=now + dt.timedelta(seconds=overlap_s),
            )
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            return None
    if nxt is None:
        nxt = new_key_row(cipher, purpose, "next")
        session.add(nxt)
        await session.flush()
    await session.execute(
        update(SigningKey).where(SigningKey.id == nxt.id).values(state="active", activated_at=now)
    )
    session.add(new_key_row(cipher, purpose, "next"))
    await session.flush()
    return nxt.kid


async def revoke(session: AsyncSession, kid: str) -> bool:
    """Emergency revocation: unpublished and refused at once (after each worker's next refresh)."""
    result = await session.execute(
        update(SigningKey)
        .where(SigningKey.kid == kid, SigningKey.state != "revoked")
        .values(state="revoked", revoked_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


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
