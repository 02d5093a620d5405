"""PII key maintenance: re-seal cipher columns with the active key, resumably.

Each walk (this one, and ``ecert.persons.rehash_batch`` for lookup hashes) goes through a table in
primary-key order, one batch per call, so the CLI commits each batch and a run that stops half-way
simply starts again: rows already under the active key are skipped without decryption. Each row is
written only if it still holds what was read (compare-and-set), so a concurrent change by the
service is never overwritten with an older value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import Client, Person, SigningKey
from ecert.security.pii import PiiCipher, sealed_kid

#: (model, cipher column, associated-data context) of ecert's own encrypted columns; the
#: person columns are ``ecert.persons.SEALED_COLUMNS`` (personal data has one owner).
CIPHER_COLUMNS: tuple[tuple[Any, str, str], ...] = (
    (SigningKey, "private_cipher", "signing-key"),
    (Client, "gateway_key_cipher", "client.gateway-key"),
)


@dataclass
class Batch:
    """One step of a walk: rows looked at, rows changed, and where the next step starts."""

    seen: int
    changed: int
    last: Any


async def count(session: AsyncSession, model: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def reencrypt_batch(
    session: AsyncSession,
    cipher: PiiCipher,
    model: Any,
    column: str,
    context: str,
    after: Any,
    size: int,
) -> Batch:
    """Seal the next ``size`` rows after ``after`` (a primary key, or None) with the active key."""
    col = getattr(model, column)
    # Nullable columns (a client without a gateway key) have nothing to seal.
    query = select(model.id, col).where(col.is_not(None)).order_by(model.id).limit(size)
    if after is not None:
        query = query.where(model.id > after)
    rows = (await session.execute(query)).all()
    changed = 0
    for pk, blob in rows:
        if sealed_kid(blob) == cipher.active_kid:
            continue
        fresh = cipher.encrypt(cipher.decrypt(blob, context=context), context=context)
        result = await session.execute(
            update(model).where(model.id == pk, col == blob).values({column: fresh})
        )
        changed += result.rowcount  # type: ignore[attr-defined]
    return Batch(len(rows), changed, rows[-1][0] if rows else None)


async def missing_kids(session: AsyncSession, cipher: PiiCipher, sample: int = 200) -> set[str]:
    """Key ids named by recent rows (and every signing key) that this process does not hold.

    A start-up check: the newest rows show a key made active elsewhere before it was deployed
    here; the signing keys are few and all read.
    """
    blobs = list(await session.scalars(select(SigningKey.private_cipher)))
    recent = select(Person.id_cipher, Person.name_cipher).order_by(Person.updated_at.desc())
    for id_blob, name_blob in (await session.execute(recent.limit(sample))).all():
        blobs += [id_blob, name_blob]
    return {kid for kid in map(sealed_kid, blobs) if kid not in cipher.keys}
