"""The security pieces' queries: institution clients and signing keys as key tooling reads them,
the walk over sealed columns (re-encryption), and the audit log's purge.

Plain async functions taking the caller's session; none commits. (The key ring's and the audit
chain's own statements sit beside them in ``keys.py`` and ``auditchain.py``: they are the hot
paths.)"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Row, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import AuditChainHead, AuditEvent, Client, Person, SigningKey

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
