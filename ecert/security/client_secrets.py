"""Client secrets at rest: HMAC-SHA256 under a server key; old Argon2 hashes checked off the loop.

A client secret is 256 random bits, so it needs no slow hash: a keyed hash cannot be brute-forced
without the key, and costs microseconds, so the unauthenticated token endpoint cannot be made to
burn CPU on the event loop. The key is derived with HKDF from the existing hash key (the one that
finds people by ID number): no new key material to deploy or back up, the same "as stable as the
data" lifetime, and a separate ``info`` label, so a secret's digest can never be mistaken for (or
compared with) an ID-number lookup hash.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ecert.errors import ServiceUnavailable

PREFIX = "hmac-sha256$"
#: Legacy Argon2 checks (64 MiB each) run on at most this many threads, never on the loop.
LEGACY_THREADS = 2
#: Checks in flight (running or queued); past this the token endpoint answers 503 at once.
LEGACY_QUEUE = 32

_argon2 = PasswordHasher()


class _LegacyPool:
    """A few threads for Argon2 and a count of checks in flight (read and written on the loop)."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=LEGACY_THREADS, thread_name_prefix="argon2")
        self.in_flight = 0


_legacy = _LegacyPool()


@lru_cache(maxsize=8)
def derive_key(hash_key: bytes) -> bytes:
    """The client-secret key: HKDF-SHA256 of the hash key with its own label."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"ecert client secret v1"
    ).derive(hash_key)


def hash_secret(key: bytes, secret: str) -> str:
    """What ``clients.secret_hash`` stores for a secret."""
    return PREFIX + hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()


def keyed_match(key: bytes, stored: str | None, secret: str) -> bool:
    """Constant-time check of a keyed hash; an absent hash is checked against a dummy value."""
    real = stored is not None and stored.startswith(PREFIX)
    expected = stored if real and stored is not None else PREFIX + "0" * 64
    return hmac.compare_digest(expected, hash_secret(key, secret)) and real


def is_legacy(stored: str | None) -> bool:
    return stored is not None and stored.startswith("$argon2")


def _argon2_matches(stored: str, secret: str) -> bool:
    try:
        return _argon2.verify(stored, secret)
    except (VerificationError, InvalidHashError):
        return False


async def legacy_match(stored: str, secret: str) -> bool:
    """Check an Argon2 hash from before keyed hashes, in the small bounded pool."""
    if _legacy.in_flight >= LEGACY_QUEUE:
        raise ServiceUnavailable("too many client authentications in progress", retry_after=1)
    _legacy.in_flight += 1
    try:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_legacy.executor, _argon2_matches, stored, secret)
    finally:
        _legacy.in_flight -= 1
