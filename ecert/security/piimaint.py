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

from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import Client, SigningKey
from ecert.security import repositories
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
    rows = await repositories.sealed_page(session, model, column, after, size)
    changed = 0
    for pk, blob in rows:
        if sealed_kid(blob) == cipher.active_kid:
            continue
        fresh = cipher.encrypt(cipher.decrypt(blob, context=context), context=context)
        changed += await repositories.reseal(session, model, column, pk, blob, fresh)
    return Batch(len(rows), changed, rows[-1][0] if rows else None)


async def missing_kids(session: AsyncSession, cipher: PiiCipher, sample: int = 200) -> set[str]:
    """Key ids named by recent rows (and every signing key) that this process does not hold.

    A start-up check: the newest rows show a key made active elsewhere before it was deployed
    here; the signing keys are few and all read.
    """
    blobs = await repositories.signing_key_blobs(session)
    blobs += await repositories.recent_person_blobs(session, sample)
    return {kid for kid in map(sealed_kid, blobs) if kid not in cipher.keys}
