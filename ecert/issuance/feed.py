"""What offline scanners download: the QR key set and the signed revocation feed."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import jwt
import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import RevocationEntry, SigningKey
from ecert.issuance.schemas import Jwks, RevocationFeed, RevocationItem
from ecert.runtime import Runtime

FEED_TOKEN_TYPE = "ecrev+jwt"  # noqa: S105 - a JWT type, not a password
PAGE = 1000


def jwks(runtime: Runtime) -> tuple[Jwks, str]:
    """QR keys (next, active, retiring) and feed keys, each tagged with its purpose; and an ETag."""
    keys: list[dict[str, str]] = []
    for purpose in ("qr", "feed"):
        for key in sorted(runtime.keys.published(purpose), key=lambda k: k.kid):
            keys.append({**key.jwk, "ecert_use": purpose})
    body = Jwks(keys=keys)
    etag = hashlib.sha256(msgspec.json.encode(body)).hexdigest()[:32]
    return body, f'"{etag}"'


async def revocations(session: AsyncSession, runtime: Runtime, since: int) -> RevocationFeed:
    """Feed entries with ``seq > since`` in order, at most one page, signed with the feed key."""
    rows = (
        await session.scalars(
            select(RevocationEntry)
            .where(RevocationEntry.id > since)
            .order_by(RevocationEntry.id)
            .limit(PAGE + 1)
        )
    ).all()
    more = len(rows) > PAGE
    entries = [
        RevocationItem(seq=r.id, sub=r.pseudonym, min_version=r.min_version, status=r.status)
        for r in rows[:PAGE]
    ]
    until = entries[-1].seq if entries else since
    # Emergency revocations are rare, so the whole list fits in every page.
    revoked_kids = list(
        (
            await session.scalars(
                select(SigningKey.kid)
                .where(SigningKey.state == "revoked", SigningKey.purpose.in_(("qr", "feed")))
                .order_by(SigningKey.kid)
            )
        ).all()
    )
    payload: dict[str, Any] = {
        "iss": runtime.settings.issuer_area,
        "since": since,
        "until": until,
        "more": more,
        "entries": [msgspec.to_builtins(e) for e in entries],
        "revoked_kids": revoked_kids,
        "iat": int(time.time()),
    }
    signer = runtime.keys.signer("feed")
    token = jwt.encode(
        payload,
        signer.private,
        algorithm="ES256",
        headers={"kid": signer.kid, "typ": FEED_TOKEN_TYPE},
    )
    return RevocationFeed(
        iss=runtime.settings.issuer_area,
        since=since,
        until=until,
        more=more,
        entries=entries,
        jws=token,
        revoked_kids=revoked_kids,
    )
