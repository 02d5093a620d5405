"""The audit chain: every audit row carries the previous row's MAC, so a deleted or changed row
breaks the chain at the next one, and ``ecert audit verify`` names it.

``row_hash = HMAC-SHA256(audit key, canonical row bytes + prev_hash)``. Appends are serialised by
the one-row ``audit_chain_head`` table: the flush that adds audit rows first locks it with an
``UPDATE … RETURNING`` (the one extra statement; on SQLite that UPDATE takes the single write
lock), and a trigger moves the head to each inserted row. The lock is held to the commit.

The oldest rows may be purged only together with an anchor (``ecert.security.auditpurge``): the
walk then starts after the newest anchor, whose own MAC chain shows a forged or dropped anchor.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import event, func, inspect, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction

from ecert.clock import utcnow
from ecert.config import Settings
from ecert.db.models import AuditAnchor, AuditChainHead, AuditEvent
from ecert.security.pii import PiiCipher

#: ``prev_hash`` of the first chained row.
GENESIS = "0" * 64
#: ``Session.info`` key of the audit key; sessions without it refuse to write audit rows.
AUDIT_KEY = "ecert.audit_key"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def derive_key(settings: Settings, cipher: PiiCipher) -> bytes:
    """``ECERT_AUDIT_KEY``, or a key derived from the hash key (its own label: not the same key)."""
    if settings.audit_key:
        key = base64.urlsafe_b64decode(settings.audit_key + "=" * (-len(settings.audit_key) % 4))
        if len(key) < 32:
            raise ValueError("ECERT_AUDIT_KEY must be at least 32 bytes (base64url)")
        return key
    return hmac.new(cipher.hash_key, b"ecert audit chain v1", hashlib.sha256).digest()


def audit_key(runtime: Any) -> bytes:
    """The audit key of a :class:`ecert.runtime.Runtime`."""
    return derive_key(runtime.settings, runtime.cipher)


def session_info(key: bytes) -> dict[str, Any]:
    """``info`` for a session maker whose sessions chain the audit rows they add."""
    install()
    return {AUDIT_KEY: key}


def install() -> None:
    """Hook the chain into every Session, once a process (not at import: no import side effects).

    Every Session, not a subclass: advanced-alchemy's plugin builds its sessions from its own
    sync session maker. Sessions carry the key in ``info`` (:func:`session_info`).
    """
    if event.contains(Session, "before_flush", _chain):
        return
    event.listen(Session, "before_flush", _chain)
    event.listen(Session, "before_commit", _write_pending)
    event.listen(Session, "after_soft_rollback", _drop_pending)


def row_mac(key: bytes, row: AuditEvent, prev_hash: str) -> str:
    """The MAC of a row: its fields in a fixed order (JSON, sorted keys) and the previous MAC."""
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=dt.UTC)
    fields = [
        1,
        (at - _EPOCH) // dt.timedelta(microseconds=1),
        row.actor,
        row.actor_kind,
        str(row.person_id) if row.person_id else None,
        row.action,
        row.outcome,
        row.request_id,
        row.detail,
    ]
    canonical = msgspec.json.encode(fields, order="sorted")
    return hmac.new(key, canonical + prev_hash.encode(), hashlib.sha256).hexdigest()


#: ``Session.info`` key of the audit rows waiting for the commit.
_PENDING = "ecert.audit_pending"


def defer(session: Session, row: AuditEvent) -> None:
    """Write ``row`` when the session commits, after everything else the transaction writes.

    The chain lock is then taken last and held only for the final flush and the COMMIT: no
    transaction waits for a row lock while holding it (no deadlock through the chain), and
    appends stay serialised for as short a time as possible.
    """
    install()
    session.info.setdefault(_PENDING, []).append(row)


def _write_pending(session: Session) -> None:
    rows = session.info.pop(_PENDING, None)
    if not rows:
        return
    session.flush()  # the transaction's own writes first: their row locks before the chain's
    session.add_all(rows)
    session.flush()


def _drop_pending(session: Session, _: Any) -> None:
    if not session.in_transaction():  # the whole transaction, not a savepoint, rolled back
        session.info.pop(_PENDING, None)


def _chain(session: Session, _: UOWTransaction, __: Any) -> None:
    rows = [obj for obj in session.new if isinstance(obj, AuditEvent)]
    if not rows:
        return
    key = session.info.get(AUDIT_KEY)
    if key is None:
        raise RuntimeError("this session has no audit key: audit rows would not be chained")
    if session.connection().get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        raise RuntimeError("audit rows need a transaction: the chain lock must last to commit")
    prev = _lock_head(session)
    # The unit of work inserts in the order the rows were added; chain them in that order.
    for row in sorted(rows, key=lambda r: inspect(r).insert_order or 0):
        row.at = row.at or utcnow()
        row.prev_hash = prev
        row.row_hash = prev = row_mac(key, row, prev)


def _lock_head(session: Session) -> str:
    lock = (
        update(AuditChainHead)
        .where(AuditChainHead.id == 1)
        # A no-op change: the point is the row lock, held to commit, and the last link.
        .values(last_hash=AuditChainHead.last_hash)
        .returning(AuditChainHead.last_hash)
    )
    last = session.execute(lock).scalar()
    if last is not None:
        return str(last)
    # No head yet (a wiped test database): start one. Concurrent starters: one wins, both lock.
    values = {"id": 1, "last_id": None, "last_hash": GENESIS}
    if session.get_bind().dialect.name == "postgresql":
        session.execute(pg_insert(AuditChainHead).values(values).on_conflict_do_nothing())
    else:
        session.execute(sqlite_insert(AuditChainHead).values(values).on_conflict_do_nothing())
    return str(session.execute(lock).scalar_one())


@dataclass(frozen=True)
class Break:
    """Where the chain breaks: the first row that does not check out, and why."""

    row_id: int | None
    reason: str

    def __str__(self) -> str:
        where = f"row {self.row_id}" if self.row_id is not None else "the chain's end"
        return f"{where}: {self.reason}"


def anchor_mac(key: bytes, anchor: AuditAnchor) -> str:
    """The MAC of an anchor: its fields and the previous anchor's MAC (``GENESIS`` at first)."""
    at = anchor.at if anchor.at.tzinfo else anchor.at.replace(tzinfo=dt.UTC)
    fields = [
        "anchor",
        1,
        anchor.through_id,
        anchor.through_hash,
        anchor.rows,
        (at - _EPOCH) // dt.timedelta(microseconds=1),
    ]
    canonical = msgspec.json.encode(fields)
    return hmac.new(key, canonical + anchor.prev_mac.encode(), hashlib.sha256).hexdigest()


async def anchors(session: AsyncSession) -> list[AuditAnchor]:
    return list((await session.scalars(select(AuditAnchor).order_by(AuditAnchor.id))).all())


def check_anchors(key: bytes, found: list[AuditAnchor]) -> Break | None:
    """Every anchor follows the previous one (MAC link, rising ``through_id``) and is intact."""
    prev_mac, through = GENESIS, 0
    for anchor in found:
        if anchor.prev_mac != prev_mac or anchor.through_id <= through:
            return Break(anchor.through_id, "an audit anchor before it was deleted or reordered")
        if not hmac.compare_digest(anchor_mac(key, anchor), anchor.mac):
            return Break(anchor.through_id, "its audit anchor does not match its MAC (forged)")
        prev_mac, through = anchor.mac, anchor.through_id
    return None


async def count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


async def verify(
    session: AsyncSession, key: bytes, on_row: Callable[[], None] | None = None
) -> Break | None:
    """:func:`walk`, once more if a purge added an anchor meanwhile (its rows vanished mid-walk)."""
    before = len(await anchors(session))
    found = await walk(session, key, on_row)
    if found is not None and len(await anchors(session)) != before:
        found = await walk(session, key, on_row)
    return found


async def walk(
    session: AsyncSession, key: bytes, on_row: Callable[[], None] | None = None
) -> Break | None:
    """Walk the chain in id order; ``None`` when every link and MAC holds and the head agrees.

    The head is read first and the walk ends at its row: rows appended meanwhile are left for the
    next run. Rows written before the chain existed (no ``row_hash``) may only precede the first
    chained row.
    """
    head = await session.get(AuditChainHead, 1)
    end_id, end_hash = (head.last_id, head.last_hash) if head is not None else (None, GENESIS)
    walk = select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=1000)
    if end_id is not None:
        walk = walk.where(AuditEvent.id <= end_id)
    prev: str | None = None
    last_id: int | None = None
    found = await anchors(session)
    broken = check_anchors(key, found)
    if broken is not None:
        return broken
    if found:  # the rows up to the newest anchor were purged: the walk starts after it
        newest = found[-1]
        walk = walk.where(AuditEvent.id > newest.through_id)
        prev = None if newest.through_hash == GENESIS else newest.through_hash
        last_id = newest.through_id
    async for row in await session.stream_scalars(walk):
        if on_row is not None:
            on_row()
        if row.row_hash is None:
            if prev is not None:
                return Break(row.id, "not chained, after chained rows (changed)")
            continue
        expected = GENESIS if prev is None else prev
        if row.prev_hash != expected:
            after = f"row {last_id}" if last_id is not None else "the chain's start"
            return Break(row.id, f"does not follow {after}: a row before it was deleted")
        if not hmac.compare_digest(row_mac(key, row, expected), row.row_hash):
            return Break(row.id, "its fields do not match its MAC (changed)")
        prev, last_id = row.row_hash, row.id
        session.expunge(row)
    if (prev or GENESIS) != end_hash or last_id != end_id:
        return Break(end_id, "the log ends before the head: rows at its end were deleted")
    return None
