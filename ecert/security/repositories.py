"""The security pieces' queries: institution clients, the signing keys (the key ring's loads,
rotation and revocation, and key tooling's reads), the walk over sealed columns (re-encryption),
and the audit log's purge.

Plain async functions taking the caller's session; none commits. (The audit chain's own
statements sit in ``auditchain.py``, the audit tables' repository: they are its hot path.)"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    ScalarSelect,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import AuditChainHead, AuditEvent, Client, KeyEvent, Person, SigningKey

AUDIT_TRIGGER = "audit_events_append_only"


async def institution_client(session: AsyncSession, client_id: str) -> Client | None:
    """An institution client by id, enabled or not."""
    client: Client | None = await session.scalar(
        select(Client).where(Client.client_id == client_id, Client.kind == "institution")
    )
    return client


async def signing_keys(session: AsyncSession) -> Sequence[SigningKey]:
    """Every signing key, oldest first."""
    return (await session.scalars(select(SigningKey).order_by(SigningKey.created_at))).all()


async def all_signing_keys(session: AsyncSession) -> Sequence[SigningKey]:
    """Every signing key, in no order (the key ring's load)."""
    return (await session.scalars(select(SigningKey))).all()


async def key_purposes_and_states(session: AsyncSession) -> set[tuple[str, str]]:
    """Each (purpose, state) some signing key has."""
    rows = (await session.execute(select(SigningKey.purpose, SigningKey.state))).all()
    return {(purpose, state) for purpose, state in rows}


async def ring_version(session: AsyncSession) -> int:
    """The highest key event (0 before the first)."""
    return int(await session.scalar(select(func.max(KeyEvent.id))) or 0)


async def retire_expired_keys(session: AsyncSession, purpose: str, now: dt.datetime) -> None:
    """Retiring keys of ``purpose`` published until ``now`` or earlier become retired."""
    await session.execute(
        update(SigningKey)
        .where(
            SigningKey.purpose == purpose,
            SigningKey.state == "retiring",
            SigningKey.publish_until <= now,
        )
        .values(state="retired")
    )


async def keys_in_state(session: AsyncSession, purpose: str, state: str) -> Sequence[SigningKey]:
    return (
        await session.scalars(
            select(SigningKey).where(SigningKey.purpose == purpose, SigningKey.state == state)
        )
    ).all()


async def oldest_key_in_state(session: AsyncSession, purpose: str, state: str) -> SigningKey | None:
    key: SigningKey | None = await session.scalar(
        select(SigningKey)
        .where(SigningKey.purpose == purpose, SigningKey.state == state)
        .order_by(SigningKey.created_at)
        .limit(1)
    )
    return key


async def has_key_in_state(session: AsyncSession, purpose: str, state: str) -> bool:
    found = await session.scalar(
        select(SigningKey.id)
        .where(SigningKey.purpose == purpose, SigningKey.state == state)
        .limit(1)
    )
    return found is not None


async def start_retiring(
    session: AsyncSession, key_id: uuid.UUID, now: dt.datetime, publish_until: dt.datetime
) -> bool:
    """Active → retiring, if the key is still active (of two rotations, exactly one moves it)."""
    moved = await session.execute(
        update(SigningKey)
        .where(SigningKey.id == key_id, SigningKey.state == "active")
        .values(state="retiring", retiring_at=now, publish_until=publish_until)
    )
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


async def activate_key(session: AsyncSession, key_id: uuid.UUID, now: dt.datetime) -> None:
    await session.execute(
        update(SigningKey).where(SigningKey.id == key_id).values(state="active", activated_at=now)
    )


async def promote_next(session: AsyncSession, key_id: uuid.UUID, now: dt.datetime) -> bool:
    """Next → active, if the key is still next (a concurrent revocation may have promoted it)."""
    moved = await session.execute(
        update(SigningKey)
        .where(SigningKey.id == key_id, SigningKey.state == "next")
        .values(state="active", activated_at=now)
    )
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


async def live_key(session: AsyncSession, kid: str) -> SigningKey | None:
    """The key of ``kid`` unless it is revoked."""
    key: SigningKey | None = await session.scalar(
        select(SigningKey).where(SigningKey.kid == kid, SigningKey.state != "revoked")
    )
    return key


async def revoke_key(
    session: AsyncSession, key_id: uuid.UUID, state: str, now: dt.datetime
) -> bool:
    """Revoke the key if it is still in ``state`` (of two revocations, exactly one moves it)."""
    result = await session.execute(
        update(SigningKey)
        .where(SigningKey.id == key_id, SigningKey.state == state)
        .values(state="revoked", revoked_at=now)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def state_of(purpose: str, kid: str | ColumnElement[str]) -> ScalarSelect[str]:
    """A key's state as a scalar subquery, for a hot path to read with its other rows."""
    return (
        select(SigningKey.state)
        .where(SigningKey.kid == kid, SigningKey.purpose == purpose)
        .scalar_subquery()
    )


async def key_state(session: AsyncSession, purpose: str, kid: str) -> str | None:
    state: str | None = await session.scalar(select(state_of(purpose, kid)))
    return state


async def row_count(session: AsyncSession, model: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def sealed_page(
    session: AsyncSession, model: Any, column: str, after: Any, size: int
) -> Sequence[Row[Any]]:
    """(id, blob) of the next ``size`` rows after ``after`` (a primary key, or None) that hold a
    sealed value in ``column``, in id order."""
    col = getattr(model, column)
    # Nullable columns (a client without a gateway key) have nothing to seal.
    query = select(model.id, col).where(col.is_not(None)).order_by(model.id).limit(size)
    if after is not None:
        query = query.where(model.id > after)
    return (await session.execute(query)).all()


async def reseal(
    session: AsyncSession, model: Any, column: str, pk: Any, blob: bytes, fresh: bytes
) -> int:
    """Replace ``blob`` by ``fresh`` if the row still holds ``blob``; rows changed (0 or 1)."""
    col = getattr(model, column)
    result = await session.execute(
        update(model).where(model.id == pk, col == blob).values({column: fresh})
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def signing_key_blobs(session: AsyncSession) -> list[bytes]:
    return list(await session.scalars(select(SigningKey.private_cipher)))


async def recent_person_blobs(session: AsyncSession, sample: int) -> list[bytes]:
    """The sealed ID numbers and names of the ``sample`` most recently changed people."""
    recent = select(Person.id_cipher, Person.name_cipher).order_by(Person.updated_at.desc())
    blobs: list[bytes] = []
    for id_blob, name_blob in (await session.execute(recent.limit(sample))).all():
        blobs += [id_blob, name_blob]
    return blobs


async def newest_chain_head(session: AsyncSession) -> int | None:
    """The highest id any audit chain's head has reached; None before the first row."""
    newest = await session.scalar(select(func.max(AuditChainHead.last_id)))
    return None if newest is None else int(newest)


async def first_audit_id_since(session: AsyncSession, cutoff: dt.datetime) -> int | None:
    young = await session.scalar(select(func.min(AuditEvent.id)).where(AuditEvent.at >= cutoff))
    return None if young is None else int(young)


async def last_audit_id_through(session: AsyncSession, bound: int) -> int | None:
    last = await session.scalar(select(func.max(AuditEvent.id)).where(AuditEvent.id <= bound))
    return None if last is None else int(last)


async def audit_count_through(session: AsyncSession, through: int) -> int:
    statement = select(func.count()).select_from(AuditEvent).where(AuditEvent.id <= through)
    return int(await session.scalar(statement) or 0)


async def lock_audit_log(session: AsyncSession) -> None:
    """PostgreSQL: wait for the appends in flight and hold new ones off until commit."""
    await session.execute(text("LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE"))


async def audit_batch_end(session: AsyncSession, through: int, size: int) -> int | None:
    """The id of the ``size``-th row (or the last) of the log up to ``through``."""
    ids = select(AuditEvent.id).where(AuditEvent.id <= through).order_by(AuditEvent.id)
    last = await session.scalar(select(func.max(ids.limit(size).subquery().c.id)))
    return None if last is None else int(last)


def audit_through(last: int) -> ColumnElement[bool]:
    return AuditEvent.id <= last


async def audit_chains_through(session: AsyncSession, last: int) -> Sequence[Row[Any]]:
    """(chain, its last id, its row count) of each chain among the rows ``id <= last``."""
    return (
        await session.execute(
            select(AuditEvent.chain, func.max(AuditEvent.id), func.count())
            .where(audit_through(last))
            .group_by(AuditEvent.chain)
        )
    ).all()


async def delete_audit_through(session: AsyncSession, last: int, *, postgres: bool) -> int:
    """Delete the rows ``id <= last``; on PostgreSQL with the append-only trigger switched off
    for this transaction only (``ALTER TABLE`` is transactional; only the table's owner may)."""
    if postgres:
        await session.execute(text(f"ALTER TABLE audit_events DISABLE TRIGGER {AUDIT_TRIGGER}"))
    result = await session.execute(
        delete(AuditEvent).where(audit_through(last)).execution_options(synchronize_session=False)
    )
    if postgres:
        await session.execute(text(f"ALTER TABLE audit_events ENABLE TRIGGER {AUDIT_TRIGGER}"))
    return int(getattr(result, "rowcount", 0) or 0)
