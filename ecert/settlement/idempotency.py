"""Idempotency-Key handling, as in the IETF draft and Stripe's API.

The key is claimed first by one statement committed on its own (autocommit: a plain INSERT, a
held key being a unique violation), so a concurrent duplicate sees it at once
(409 while the first runs); the work and the stored answer then commit together in the request's
transaction, here, before the key is done with; a failed attempt (a failed COMMIT too: a dropped
connection) releases the key so the client can retry.

A claim older than ``STALE_AFTER`` is presumed dead and taken over, but its first holder may still
be running. Each claim therefore carries a random fencing token that a takeover replaces, and
storing the answer is a guarded update on the holder's own token in the same transaction as the
money write: the first holder's update then matches nothing, it raises, and its work rolls back.
(If the first holder's update comes first, its row lock holds the takeover off until it commits,
and the takeover then finds the key done.) Release is fenced the same way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.engine import reads_only
from ecert.db.models import IdempotencyStatus, utcnow
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime
from ecert.settlement.exceptions import (
    IdempotencyClaimLost,
    IdempotencyConflict,
    IdempotencyInProgress,
    IdempotencyKeyRequired,
)
from ecert.settlement.repositories import StoredAnswer
from ecert.settlement.repositories import idempotency as repositories

#: Tries to give a key back over a dropped connection (each on a fresh one from the pool).
GIVE_BACK_ATTEMPTS = 3
#: An attempt that has held its key this long is presumed dead (crashed worker) and taken over.
STALE_AFTER = dt.timedelta(seconds=60)

_log = structlog.get_logger("ecert.settlement")


@dataclass(frozen=True)
class Claim:
    record_id: int
    #: This claim's fencing token (see the module docstring).
    token: str
    #: The stored (status, body) when this is a retry of a finished request.
    replay: tuple[int, dict[str, Any]] | None = None


@dataclass(frozen=True)
class Answer:
    """A claim's answer for a write that stores it itself, in its own statement, fenced on the
    claim's token as :func:`complete` is (``repositories.write``): ``body`` builds it from the
    settlement's id and split."""

    claimed: Claim
    status: int
    body: Callable[[Any, Any], dict[str, Any]]

    def stored(self, *of: Any) -> StoredAnswer:
        return StoredAnswer(self.claimed.record_id, self.claimed.token, self.status, self.body(*of))


def fingerprint(path: str, body: msgspec.Struct) -> str:
    return hashlib.sha256(path.encode() + b"\n" + msgspec.json.encode(body)).hexdigest()


async def claim(runtime: Runtime, scope: str, key: str | None, request_hash: str) -> Claim:
    if not key or len(key) > 255 or not key.isprintable():
        raise IdempotencyKeyRequired()
    token = secrets.token_urlsafe(16)
    record_id = await _insert_claim(runtime, scope, key, request_hash, token)
    if record_id is not None:
        return Claim(int(record_id), token)
    async with runtime.sessions.begin() as session:
        record = await repositories.record_of(session, scope, key)
        if record is None:  # released between our insert and this read: try once more
            raise IdempotencyInProgress()
        if record.request_hash != request_hash:
            raise IdempotencyConflict()
        if record.status == "done" and record.response is not None:
            return Claim(record.id, "", (record.response_status or 200, record.response))
        if record.started_at > utcnow() - STALE_AFTER:
            raise IdempotencyInProgress()
        if not await repositories.take_over(session, record.id, record.started_at, token):
            raise IdempotencyInProgress()
        return Claim(record.id, token)


async def _insert_claim(
    runtime: Runtime, scope: str, key: str, request_hash: str, token: str
) -> int | None:
    """Insert the claim, committed at once (autocommit: one round trip, no BEGIN and COMMIT),
    so a concurrent duplicate sees it; None when the key is held already."""
    values = {
        "scope": scope,
        "key": key,
        "request_hash": request_hash,
        "status": IdempotencyStatus.IN_PROGRESS,
        "started_at": utcnow(),
        "fence_token": token,
    }
    try:
        async with runtime.sessions() as session:
            await reads_only(session)  # one statement that commits on its own
            return await repositories.insert_claim(session, values)
    except DBAPIError as exc:
        if exc.connection_invalidated:
            # The INSERT may have committed before the connection dropped: take it back (fenced
            # on our own token), or a retry would be told "in progress" until STALE_AFTER.
            await _give_back(runtime, repositories.delete_claim_of, scope, key, token)
        raise


async def complete(
    session: AsyncSession, claimed: Claim, status: int, response: dict[str, Any]
) -> None:
    """Store the answer in the request's own transaction, with the work it describes; raise if
    the claim was taken over meanwhile, so that the caller's work rolls back."""
    if not await repositories.store_answer(
        session, claimed.record_id, claimed.token, status, response
    ):
        raise IdempotencyClaimLost()


async def release(runtime: Runtime, claimed: Claim) -> None:
    """Give the key back after a failed attempt (nothing was written), unless it was taken over."""
    await _give_back(runtime, repositories.delete_claim, claimed.record_id, claimed.token)


async def _give_back(runtime: Runtime, delete: Callable[..., Awaitable[None]], *args: Any) -> None:
    """Run a claim's ``delete`` in a transaction of its own, on a fresh connection again when
    the connection drops (the failure that brought us here is often that one: a restarted or
    killed database connection). If every attempt fails the key frees itself after
    ``STALE_AFTER``; the caller's own error is what the client sees, not this one."""
    for attempt in range(GIVE_BACK_ATTEMPTS):
        try:
            async with runtime.sessions.begin() as session:
                await delete(session, *args)
            return
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            if attempt == GIVE_BACK_ATTEMPTS - 1:
                _log.warning("idempotency key left claimed until it goes stale")


async def run_once(
    session: AsyncSession,
    runtime: Runtime,
    scope: str,
    key: str | None,
    request_hash: str,
    work: Callable[[], Awaitable[dict[str, Any]]],
    *,
    status: int = 201,
) -> tuple[int, dict[str, Any], bool]:
    """Do ``work`` once per key: (status, body, replayed). The answer commits with the work; a
    failure, the COMMIT's included, rolls the work back and releases the key."""

    async def unstored(_: Claim) -> tuple[dict[str, Any], bool]:
        return await work(), False

    return await run_once_storing(
        session, runtime, scope, key, request_hash, unstored, status=status
    )


async def run_once_storing(
    session: AsyncSession,
    runtime: Runtime,
    scope: str,
    key: str | None,
    request_hash: str,
    work: Callable[[Claim], Awaitable[tuple[dict[str, Any], bool]]],
    *,
    status: int = 201,
) -> tuple[int, dict[str, Any], bool]:
    """:func:`run_once` for ``work`` that may store the answer itself (:class:`Answer`), in its
    own write: it returns the body and whether it did.

    The request's transaction commits here, so that a failed COMMIT (a dropped connection) gives
    the key back and answers 503 like any failure. Committed after the handler instead (the edge's
    ``commit_before_2xx``), the 503 left the key held, and every retry was told "in progress"
    until the claim went stale (``STALE_AFTER``)."""
    claimed = await claim(runtime, scope, key, request_hash)
    if claimed.replay is not None:
        return (*claimed.replay, True)
    try:
        body, stored = await work(claimed)
        if not stored:
            await complete(session, claimed, status, body)
        await session.commit()
    except BaseException:
        await session.rollback()
        await release(runtime, claimed)
        raise
    return status, body, False


async def run_once_for(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    key: str | None,
    path: str,
    body: msgspec.Struct,
    work: Callable[[], Awaitable[dict[str, Any]]],
) -> tuple[int, dict[str, Any], bool]:
    """:func:`run_once` for a client's POST: keys scoped to the client, the request fingerprinted
    by its path and body (the same key on another path or body is a conflict)."""
    return await run_once(session, runtime, principal.client_id, key, fingerprint(path, body), work)
