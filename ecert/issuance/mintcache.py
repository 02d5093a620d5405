"""A worker's memory of what minting a code needs of an e-cert (``MintState``).

A phone asks for a fresh code every minute; the e-cert behind it changes rarely (a new device, a
suspension). Minting from memory is safe because nothing is decided here: verification reads the
e-cert's status, version and the person's suspension from the database, and every change of an
e-cert moves it to a new version (``services.bump_version``), so a code minted from a stale entry
carries the old version and is refused online at once and offline once the feed has the entry.
A change made through this worker's sessions drops the person's entries when its transaction
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
#: ``Session.info`` key of the persons whose e-certs this transaction changed.
_CHANGED = "ecert.mint_changed"
#: Persons remembered at most (each entry ~0.3 kB): least recently used go first.
MAX_PERSONS = 50_000


class MintCache:
    """LRU by person, each entry valid ``ttl_s`` seconds; ``ttl_s`` 0 remembers nothing."""

    def __init__(self, ttl_s: float, size: int = MAX_PERSONS) -> None:
        self._ttl = ttl_s
        self._size = size
        self._persons: OrderedDict[uuid.UUID, dict[str, tuple[float, MintState]]] = OrderedDict()

    def get(self, person_id: uuid.UUID, channel: str) -> MintState | None:
        found = self._persons.get(person_id)
        entry = found.get(channel) if found is not None else None
        if entry is None:
            return None
        if time.monotonic() - entry[0] >= self._ttl:
            return None
        self._persons.move_to_end(person_id)
        return entry[1]

    def put(self, person_id: uuid.UUID, channel: str, state: MintState) -> None:
        if self._ttl <= 0:
            return
        channels = self._persons.get(person_id)
        if channels is None:
            if len(self._persons) >= self._size:
                self._persons.popitem(last=False)
            channels = self._persons[person_id] = {}
        channels[channel] = (time.monotonic(), state)
        self._persons.move_to_end(person_id)

    def forget(self, person_id: uuid.UUID) -> None:
        self._persons.pop(person_id, None)

    def __len__(self) -> int:
        return len(self._persons)


def changed(session: AsyncSession, person_id: uuid.UUID) -> None:
    """Note that this transaction changes the person's e-cert: the worker forgets the person's
    entries when the transaction ends (forgetting after a rollback too is harmless)."""
    if not event.contains(Session, "after_transaction_end", _forget_changed):
        event.listen(Session, "after_transaction_end", _forget_changed)
    session.sync_session.info.setdefault(_CHANGED, set()).add(person_id)


def _forget_changed(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:  # a savepoint: the outer transaction decides
        return
    persons = session.info.pop(_CHANGED, None)
    cache = session.info.get(CACHE_KEY)
    if persons and isinstance(cache, MintCache):
        for person_id in persons:
            cache.forget(person_id)
