"""A worker's memory of what minting a code needs of an e-cert (``MintState``).

A phone asks for a fresh code every minute; the e-cert behind it changes rarely (a new device, a
suspension). Minting from memory is safe because nothing is decided here: verification reads the
e-cert's status, version and the person's suspension from the database, and every change of an
e-cert moves it to a new version (``services.bump_version``), so a code minted from a stale entry
carries the old version and is refused online at once and offline once the feed has the entry.
A change made through this worker's sessions drops the e-cert's entry when its transaction
ends; other workers' entries expire after ``ECERT_MINT_CACHE_S``. docs/security.md ("The e-cert
behind a code is remembered for minting").
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from ecert.issuance.repositories import MintState

#: ``Session.info`` key of the worker's cache (set by ``create_app``).
CACHE_KEY = "ecert.mint_cache"
#: ``Session.info`` key of the (person, channel) e-certs this transaction changed.
_CHANGED = "ecert.mint_changed"
#: E-certs remembered at most (~0.5 kB each: ~25 MB a worker when full); least recently used
#: go first.
MAX_ENTRIES = 50_000

Key = tuple[uuid.UUID, str]


class MintCache:
    """LRU by (person, channel), each entry valid ``ttl_s`` seconds; ``ttl_s`` 0 remembers
    nothing."""

    def __init__(self, ttl_s: float, size: int = MAX_ENTRIES) -> None:
        self._ttl = ttl_s
        self._size = size
        self._entries: OrderedDict[Key, tuple[float, MintState]] = OrderedDict()

    def get(self, person_id: uuid.UUID, channel: str) -> MintState | None:
        key = (person_id, channel)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if time.monotonic() - entry[0] >= self._ttl:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, person_id: uuid.UUID, channel: str, state: MintState) -> None:
        if self._ttl <= 0:
            return
        key = (person_id, channel)
        self._entries[key] = (time.monotonic(), state)
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def forget(self, person_id: uuid.UUID, channel: str) -> None:
        self._entries.pop((person_id, channel), None)

    def __len__(self) -> int:
        return len(self._entries)


def changed(session: AsyncSession, person_id: uuid.UUID, channel: str) -> None:
    """Note that this transaction changes the person's e-cert on ``channel``: the worker forgets
    it when the transaction ends (forgetting after a rollback too is harmless)."""
    if not event.contains(Session, "after_transaction_end", _forget_changed):
        event.listen(Session, "after_transaction_end", _forget_changed)
    session.sync_session.info.setdefault(_CHANGED, set()).add((person_id, channel))


def _forget_changed(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:  # a savepoint: the outer transaction decides
        return
    changes = session.info.pop(_CHANGED, None)
    cache = session.info.get(CACHE_KEY)
    if changes and isinstance(cache, MintCache):
        for person_id, channel in changes:
            cache.forget(person_id, channel)
