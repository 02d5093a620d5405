"""Staff passwords: Argon2id hashes, hashed and checked off the event loop in a bounded pool.

A person chooses a staff password, so unlike a client secret it needs a slow hash; each check
costs ~64 MiB and tens of milliseconds, so it runs on a couple of threads and a flood of sign-ins
gets 503 instead of a queue that grows without bound.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ecert.errors import ServiceUnavailable

#: Threads for Argon2; the event loop never runs a hash.
THREADS = 2
#: Hashes in flight (running or queued); past this, sign-in answers 503 at once.
QUEUE = 16

_hasher = PasswordHasher()
#: A real hash of a random value: unknown logins cost the same time as known ones.
_DUMMY = _hasher.hash("ecert-no-such-staff")


class _Pool:
    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="staff-argon2")
        self.in_flight = 0


_pool = _Pool()


def hash_password(password: str) -> str:
    """For the CLI (no event loop)."""
    return _hasher.hash(password)


def _matches(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


async def check_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (None: an unknown login, checked all the same)."""
    if _pool.in_flight >= QUEUE:
        raise ServiceUnavailable("too many sign-ins in progress", retry_after=1)
    _pool.in_flight += 1
    try:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_pool.executor, _matches, stored, password)
    finally:
        _pool.in_flight -= 1
