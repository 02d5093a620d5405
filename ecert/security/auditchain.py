"""The audit chains: every audit row carries the previous row's MAC on its chain, so a deleted or
changed row breaks its chain at the next one, and ``ecert audit verify`` names it.

``row_hash = HMAC-SHA256(audit key, canonical row bytes (with the chain number) + prev_hash)``.
There are ``CHAINS`` (64) chains, one ``audit_chain_head`` row each: the flush that adds audit rows
first locks one head with an ``UPDATE … RETURNING`` (the one extra statement; on PostgreSQL a free
one, ``SKIP LOCKED``, so concurrent transactions append side by side instead of one after another;
on SQLite, one writer anyway, always chain 1), and a trigger moves that head to each inserted row
of its chain. The lock is held to the commit, so no chain forks.

The oldest rows may be purged only together with anchors (``ecert.security.auditpurge``, one per
chain): the walk of a chain then starts after its newest anchor, and the anchors' own MAC chain
shows a forged or dropped anchor.

This module is the repository of the audit tables (``audit_events``, ``audit_chain_head``,
``audit_anchors``): their statements live here, beside the MAC rules they must follow, rather
than in ``repositories.py`` (only the purge's bulk reads and deletes sit there).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from sqlalchemy import (
    ARRAY,
    CTE,
    ColumnElement,
    SmallInteger,
    Table,
    Text,
    bindparam,
    event,
    exists,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy import cast as cast_
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.sql.dml import Insert, ReturningUpdate

from ecert.clock import utcnow
from ecert.config import Settings
from ecert.db import native
from ecert.db.held import HeldConnection
from ecert.db.models import AuditAnchor, AuditChainHead, AuditEvent
from ecert.security.pii import PiiCipher

#: ``prev_hash`` of the first chained row.
GENESIS = "0" * 64
#: ``Session.info`` key of the audit key; sessions without it refuse to write audit rows.
AUDIT_KEY = "ecert.audit_key"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: How many chains appends spread over (``audit_chain_head`` rows 1..CHAINS; migrations 0005, 0017).
CHAINS = 64


def derive_key(settings: Settings, cipher: PiiCipher) -> bytes:
    """``ECERT_AUDIT_KEY``, or a key derived from the hash key (its own label: not the same key)."""
    if settings.audit_key:
        key = base64.urlsafe_b64decode(settings.audit_key + "=" * (-len(settings.audit_key) % 4))
        if len(key) < 32:
            raise ValueError("ECERT_AUDIT_KEY must be at least 32 bytes (base64url)")
        return key
    return hmac.new(cipher.hash_key, b"ecert audit chain v1", hashlib.sha256).digest()


def audit_key(runtime: Any) -> bytes:
    """The audit key of a :class:`ecert.server.runtime.Runtime`."""
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
    event.listen(Session, "after_transaction_end", _release_chain)


def row_mac(key: bytes, row: AuditEvent, prev_hash: str) -> str:
    """The MAC of a row: its fields in a fixed order (JSON, sorted keys) and the previous MAC."""
    names = ("at", "chain", "actor", "actor_kind", "person_id", "action", "outcome")
    fields = {name: getattr(row, name) for name in (*names, "request_id", "detail")}
    return _mac(key, fields, prev_hash)


def _mac(key: bytes, row: Mapping[str, Any], prev_hash: str) -> str:
    at = row["at"] if row["at"].tzinfo else row["at"].replace(tzinfo=dt.UTC)
    person_id = row.get("person_id")
    fields = [
        1,
        row["chain"],
        (at - _EPOCH) // dt.timedelta(microseconds=1),
        row["actor"],
        row["actor_kind"],
        str(person_id) if person_id else None,
        row["action"],
        row["outcome"],
        row.get("request_id"),
        row.get("detail"),
    ]
    canonical = msgspec.json.encode(fields, order="sorted")
    return hmac.new(key, canonical + prev_hash.encode(), hashlib.sha256).hexdigest()


def free_head_cte(after: ColumnElement[bool] | None = None) -> CTE:
    """PostgreSQL, for a hot path's first statement: lock a free chain head in the same round
    trip as the path's own read (``audit_head.chain``, ``audit_head.prev``; no row when every
    head is busy, then :func:`take_link` waits for one). Data-modifying CTEs run whether or not
    the outer query reads them; the lock lasts to the transaction's end as with :func:`defer`.

    Taking the chain first is safe from deadlocks: a transaction that waits for a chain holds no
    other lock yet, and a path that takes its chain first waits afterwards only for rows (single-
    use marks) that no chain-holder waiting on it can hold. ``after``: a condition reading the
    statement's row-locking CTEs, so that the chain is taken after their locks (settle).
    """
    return (_lock_free() if after is None else _free(after)).cte("audit_head")


@functools.cache
def _lock_free() -> ReturningUpdate[tuple[int, str]]:
    """PostgreSQL: lock a head no other transaction holds (``SKIP LOCKED``): ``(chain, prev)``.
    Built once, on the table (Core): an ORM UPDATE pays for synchronising the session first."""
    return _free(None)


def _free(after: ColumnElement[bool] | None) -> ReturningUpdate[tuple[int, str]]:
    table = cast(Table, AuditChainHead.__table__)
    heads = table.c
    free = select(heads.id)
    if after is not None:
        free = free.where(after)
    chosen = free.order_by(func.random()).limit(1).with_for_update(skip_locked=True)
    return (
        update(table)
        .where(heads.id == chosen.scalar_subquery())
        .values(last_hash=heads.last_hash)
        .returning(heads.id.label("chain"), heads.last_hash.label("prev"))
    )


async def take_link(session: AsyncSession, chain: int | None, prev: str | None) -> tuple[int, str]:
    """The chain a :func:`free_head_cte` locked (kept for the rest of the transaction), or, when it
    found none free, one waited for as :func:`defer` would."""
    if chain is not None and prev is not None:
        session.info[_HELD] = chain
        return chain, prev
    return await session.run_sync(_lock_head)


async def lock_for_append(session: AsyncSession) -> tuple[int, str]:
    """Lock a chain's head to the end of the transaction: ``(chain, its last link)``, for a
    writer that inserts its chained rows itself (:func:`link`) inside ``native.transaction``.

    As :func:`_lock_head`: on PostgreSQL a free head, else wait for a random one; on SQLite (or
    with no heads yet, a wiped database) through the session."""
    if session.get_bind().dialect.name == "postgresql":
        got = await native.fetch(session, _native_lock_free(), {})
        if not got:  # every head busy: wait for one
            chain = random.randint(1, CHAINS)  # noqa: S311 - spreading waiters, not a secret
            got = [
                (chain, *row)
                for row in await native.fetch(session, _native_lock(), {"chain": chain})
            ]
        if got:
            return int(got[0][0]), str(got[0][1])
        await native.fetch(session, _native_seed(), {})
        return await lock_for_append(session)
    return await session.run_sync(_lock_head)


@functools.cache
def _native_lock_free() -> native.Native:
    return native.Native(_lock_free())


@functools.cache
def _native_lock() -> native.Native:
    return native.Native(_lock())


@functools.cache
def _native_seed() -> native.Native:
    values = [{"id": c, "last_id": None, "last_hash": GENESIS} for c in range(1, CHAINS + 1)]
    return native.Native(
        pg_insert(AuditChainHead)
        .values(values)
        .on_conflict_do_nothing()
        .returning(AuditChainHead.id)
    )


def link(session: AsyncSession, chain: int, prev: str, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` (an ``audit_events`` insert's values) chained after ``prev``: for a writer that
    inserts its audit rows in its own statements instead of through :func:`defer`. Several rows
    chain one after another (``prev`` = the previous row's ``row_hash``) when they are inserted
    in that order under the same lock; the trigger moves the head to each, and a later
    :func:`defer` in the transaction reads the head as usual."""
    return _linked(key_of(session), chain, prev, row)


def key_of(session: AsyncSession) -> bytes:
    """The audit key ``session`` chains its rows with (:func:`session_info`)."""
    key: bytes | None = session.info.get(AUDIT_KEY)
    if key is None:
        raise RuntimeError("this session has no audit key: audit rows would not be chained")
    return key


async def insert_linked(session: AsyncSession, chain: int, prev: str, row: dict[str, Any]) -> None:
    """Insert ``row`` chained after ``prev`` (see :func:`link`) in a statement of its own."""
    await session.execute(_insert(), [link(session, chain, prev, row)])


def _linked(key: bytes, chain: int, prev: str, row: dict[str, Any]) -> dict[str, Any]:
    row = {**row, "at": row.get("at") or utcnow(), "chain": chain, "prev_hash": prev}
    row["row_hash"] = _mac(key, row, prev)
    return row


#: The columns :func:`append` writes (``ecert.security.audit.audit_values`` and the chain's three).
COLUMNS = (
    "at",
    "actor",
    "actor_kind",
    "person_id",
    "action",
    "outcome",
    "request_id",
    "detail",
    "chain",
    "prev_hash",
    "row_hash",
)


@functools.cache
def _native_insert() -> native.Native:
    columns = AuditEvent.__table__.c
    return native.Native(
        insert(AuditEvent).values({c: bindparam(c, type_=columns[c].type) for c in COLUMNS})
    )


#: A chain and its last link, as a batch writer last left them (its guess for the next batch).
Hint = tuple[int, str]


async def append(session: AsyncSession, rows: list[dict[str, Any]]) -> Hint:
    """``rows`` as consecutive links of one chain, in this transaction: the head's lock, then
    the rows (``ecert.db.native``, not the ORM: a batch of one is a lookup's or a verify's whole
    audit cost, four round trips whose client CPU is now the driver's). Returns the chain and
    its new last link."""
    chain, prev = await lock_for_append(session)
    linked = _links(key_of(session), chain, prev, rows)
    await native.execute_many(session, _native_insert(), linked)
    return chain, linked[-1]["row_hash"]


async def append_alone(
    sessions: async_sessionmaker[AsyncSession], rows: list[dict[str, Any]]
) -> tuple[bytes, Hint]:
    """:func:`append` in a transaction of its own, for a group writer whose rows could not
    follow its last link: the sessions' audit key (for :func:`append_after` next time) and the
    chain's new last link."""
    async with sessions() as session, native.transaction(session):
        return key_of(session), await append(session, rows)


async def append_after(
    held: HeldConnection, key: bytes, rows: list[dict[str, Any]], hint: Hint
) -> Hint | None:
    """PostgreSQL, one autocommitted statement on a writer's own connection (no BEGIN, lock or
    COMMIT round trips): ``rows`` chained with ``key`` as the next links of ``hint``'s chain,
    but only if its head is free and its last link is still ``hint``'s — what this writer left
    there last time, unless another writer appended since. Returns the chain's new last link,
    or None (nothing written) when the head was busy or had moved: then :func:`append`.

    The head is locked (``FOR UPDATE SKIP LOCKED``, its link re-checked on the locked row) before
    a row is inserted, and stays locked to the statement's end, so the chain cannot fork: the
    same rule as :func:`append`, checked in one statement instead of read first."""
    values, after = after_values(key, rows, hint)
    return after if await append_bound(held, values) else None


async def append_bound(held: HeldConnection, values: dict[str, Any]) -> bool:
    """:func:`append_after`'s statement for binds :func:`after_values` made: whether written."""
    [(written,)] = await held.fetch(_native_append_after(), values)
    return bool(written)


def after_values(key: bytes, rows: list[dict[str, Any]], hint: Hint) -> tuple[dict[str, Any], Hint]:
    """The binds of :func:`after_cte` for ``rows`` chained after ``hint``, and the chain's last
    link once they are written."""
    chain, prev = hint
    linked = _links(key, chain, prev, rows)
    values: dict[str, Any] = {"chain": chain, "prev": prev}
    for column in _ARRAYED:
        values[f"a_{column}"] = [row[column] for row in linked]
    values["a_detail"] = [json.dumps(row["detail"]) for row in linked]
    return values, (chain, linked[-1]["row_hash"])


def _links(key: bytes, chain: int, prev: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    linked = []
    for row in rows:
        row = _linked(key, chain, prev, row)
        linked.append({c: row.get(c) for c in COLUMNS})
        prev = row["row_hash"]
    return linked


#: The columns :func:`append_after` binds as arrays of their own type (``detail`` goes as JSON
#: text, ``chain`` as one value).
_ARRAYED = tuple(c for c in COLUMNS if c not in ("detail", "chain"))


@functools.cache
def _native_append_after() -> native.Native:
    return native.Native(select(func.count()).select_from(after_cte()))


def after_cte() -> CTE:
    """:func:`append_after`'s insert (binds :func:`after_values`), a CTE returning each written
    row's id: for a statement of :func:`append_after` alone, or carried by another group
    writer's statement (``ecert.verify.batches``) — its rows written, or none, with it."""
    heads = cast(Table, AuditChainHead.__table__)
    events = cast(Table, AuditEvent.__table__)
    free = (
        select(heads.c.id)
        .where(heads.c.id == bindparam("chain"), heads.c.last_hash == bindparam("prev"))
        .with_for_update(skip_locked=True)
        .cte("free")
    )
    # One row per array element: set-returning functions in one select list run in lockstep.
    unnested: dict[str, ColumnElement[Any]] = {
        column: func.unnest(bindparam(f"a_{column}", type_=ARRAY(_array_item(events, column))))
        for column in _ARRAYED
    }
    unnested["detail"] = cast_(func.unnest(bindparam("a_detail", type_=ARRAY(Text()))), JSONB())
    unnested["chain"] = bindparam("chain", type_=SmallInteger())
    rows = select(*(unnested[c].label(c) for c in COLUMNS)).where(exists(select(free.c.id)))
    inserted = pg_insert(events).from_select(list(COLUMNS), rows).returning(events.c.id)
    return inserted.cte("written")


def _array_item(events: Table, column: str) -> Any:
    """The element type of ``column``'s array: the column's own, but a plain UUID for the
    person (asyncpg takes ``uuid.UUID`` values in a ``uuid[]``)."""
    return UUID(as_uuid=True) if column == "person_id" else events.c[column].type


@functools.cache
def _insert() -> Insert:
    return insert(cast(Table, AuditEvent.__table__))


#: ``Session.info`` key of the audit rows waiting for the commit.
_PENDING = "ecert.audit_pending"
#: ``Session.info`` key of the chain the session's transaction holds (locked to its end).
_HELD = "ecert.audit_chain"


def defer(session: Session, row: AuditEvent) -> None:
    """Write ``row`` when the session commits, after everything else the transaction writes.

    The chain lock is then taken last and held only for the final flush and the COMMIT: no
    transaction waits for a row lock while holding it (no deadlock through the chain), and
    appends stay serialised for as short a time as possible.
    """
    install()
    session.info.setdefault(_PENDING, []).append(row)


def deferred(session: Session) -> bool:
    """Whether :func:`defer` left rows for this session's commit to write."""
    return bool(session.info.get(_PENDING))


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


def _release_chain(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the outermost transaction ended: its locks are gone
        session.info.pop(_HELD, None)


def _chain(session: Session, _: UOWTransaction, __: Any) -> None:
    rows = [obj for obj in session.new if isinstance(obj, AuditEvent)]
    if not rows:
        return
    key = session.info.get(AUDIT_KEY)
    if key is None:
        raise RuntimeError("this session has no audit key: audit rows would not be chained")
    if session.connection().get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        raise RuntimeError("audit rows need a transaction: the chain lock must last to commit")
    chain, prev = _lock_head(session)
    # The unit of work inserts in the order the rows were added; chain them in that order.
    for row in sorted(rows, key=lambda r: inspect(r).insert_order or 0):
        row.at = row.at or utcnow()
        row.chain = chain
        row.prev_hash = prev
        row.row_hash = prev = row_mac(key, row, prev)


@functools.cache
def _lock() -> Any:
    return (
        update(AuditChainHead)
        .where(AuditChainHead.id == bindparam("chain"))
        # A no-op change: the point is the row lock, held to commit, and the last link.
        .values(last_hash=AuditChainHead.last_hash)
        .returning(AuditChainHead.last_hash)
    )


def _lock_head(session: Session) -> tuple[int, str]:
    """Lock a chain's head to the commit: ``(chain, its last link)``. A transaction that holds
    one already (an earlier flush) keeps it: holding two could deadlock."""
    # On the connection, in Core: nothing of the ORM's (no session state to synchronise).
    chain, last = _lock_chain(session.connection(), session.info.get(_HELD))
    session.info[_HELD] = chain
    return chain, last


def _lock_chain(connection: Connection, held: int | None) -> tuple[int, str]:
    """Lock chain ``held``'s head, or when None: on PostgreSQL a head no other transaction holds
    (``SKIP LOCKED``), else wait for a random one; on SQLite (one writer at a time anyway)
    chain 1. ``(chain, its last link)``, locked to the transaction's end."""
    postgres = connection.dialect.name == "postgresql"
    if held is None and postgres:
        got = connection.execute(_lock_free()).first()
        if got is not None:
            return int(got[0]), str(got[1])
    # Every head busy (or SQLite, or held): wait for one.
    chain = held if held is not None else random.randint(1, CHAINS) if postgres else 1  # noqa: S311
    last = connection.execute(_lock(), {"chain": chain}).scalar()
    if last is None:
        # No heads yet (a wiped test database): seed them. Concurrent seeders: one wins.
        values = [{"id": c, "last_id": None, "last_hash": GENESIS} for c in range(1, CHAINS + 1)]
        insert = pg_insert if postgres else sqlite_insert
        connection.execute(insert(AuditChainHead).values(values).on_conflict_do_nothing())
        last = connection.execute(_lock(), {"chain": chain}).scalar_one()
    return chain, str(last)


@dataclass(frozen=True)
class Break:
    """Where a chain breaks: the first row that does not check out, and why."""

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
        anchor.chain,
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
    """Walk every chain; ``None`` when every link and MAC holds and each head's row is on it.

    One pass in id order, following each chain from ``GENESIS`` or its newest anchor. The heads
    are read first, and each chain's walk must pass its head's row (rows appended meanwhile are
    further links; a head whose row is missing means rows were cut off the chain's end). Rows
    written before the chains existed (no chain, no ``row_hash``) may only precede every chained
    row. Of several breaks, the lowest row id is named.
    """
    heads = {head.id: head for head in (await session.scalars(select(AuditChainHead))).all()}
    found = await anchors(session)
    broken = check_anchors(key, found)
    if broken is not None:
        return broken
    newest = {anchor.chain: anchor for anchor in found if anchor.chain is not None}
    walks: dict[int, _Walk] = {}
    for chain in set(range(1, CHAINS + 1)) | set(heads):
        anchor, head = newest.get(chain), heads.get(chain)
        start = (None, GENESIS) if anchor is None else (anchor.through_id, anchor.through_hash)
        end = (None, GENESIS) if head is None else (head.last_id, head.last_hash)
        walks[chain] = _Walk(start, end)
    chained = False
    rows = select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=1000)
    async for row in await session.stream_scalars(rows):
        if on_row is not None:
            on_row()
        broken = _check(key, row, walks, chained=chained)
        if broken is not None:
            break
        chained = chained or row.chain is not None
        session.expunge(row)
    ends = [
        Break(w.end[0], "the log ends before the head: rows at its end were deleted")
        for w in walks.values()
        # Complete (every row up to its head's id was read) but its head's row was not met.
        if not w.reached
        and (broken is None or (w.end[0] is not None and w.end[0] < (broken.row_id or 0)))
    ]
    if broken is not None:
        ends.append(broken)
    if not ends:
        return None
    return min(ends, key=lambda b: (b.row_id is None, b.row_id or 0))


class _Walk:
    """One chain's walk: where it is (last row id, its MAC) and whether it met its head's row."""

    def __init__(self, start: tuple[int | None, str], end: tuple[int | None, str]) -> None:
        self.at, self.end = start, end
        self.reached = start == end

    def step(self, row_id: int, row_hash: str) -> None:
        self.at = (row_id, row_hash)
        self.reached = self.reached or self.at == self.end


def _check(key: bytes, row: AuditEvent, walks: dict[int, _Walk], *, chained: bool) -> Break | None:
    """Check ``row`` against its chain's walk so far (moved on when it holds)."""
    if row.chain is None:
        if row.row_hash is not None:
            return Break(row.id, "chained but on no chain (changed)")
        if chained:
            return Break(row.id, "not chained, after chained rows (changed)")
        return None
    walk = walks.get(row.chain)
    if walk is None:
        return Break(row.id, f"on chain {row.chain}, which does not exist (changed)")
    last_id, prev = walk.at
    if last_id is not None and row.id <= last_id:
        return None  # at or before the chain's anchor: purged meanwhile
    if row.prev_hash != prev:
        after = f"row {last_id}" if last_id is not None else "the chain's start"
        return Break(row.id, f"does not follow {after} on chain {row.chain}: a row was deleted")
    if row.row_hash is None or not hmac.compare_digest(row_mac(key, row, prev), row.row_hash):
        return Break(row.id, "its fields do not match its MAC (changed)")
    walk.step(row.id, row.row_hash)
    return None
