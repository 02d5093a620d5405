"""Who calls the gateway: an institution's Bearer token, or the provincial gateways' signed
``_api_*`` headers (spec §8).

A signature is Base64(HmacSHA1(gateway key, "_api_access_key=…&_api_name=…&_api_timestamp=…&
_api_version=…")) (``ecert.security.gateway_keys``); the timestamp (ms) must be within five
minutes of now, and each signature works once: the store turns most replays away early, the
database's unique key decides (committed at once, in its own transaction, so a refused
transaction still spends its signature).
"""

from __future__ import annotations

import datetime as dt
import hmac
import time

from litestar.connection import ASGIConnection

from ecert.errors import Forbidden
from ecert.gateway import repositories
from ecert.gateway.exceptions import SignatureExpired, SignatureInvalid, SignatureReplayed
from ecert.security import gateway_keys
from ecert.security.tokens import Principal
from ecert.server.auth import bearer_principal
from ecert.server.ratelimit import RateLimiter
from ecert.server.runtime import Runtime
from ecert.store import StoreUnavailable

HEADERS = ("_api_access_key", "_api_name", "_api_timestamp", "_api_version")
SIGNATURE = "_api_signature"
#: How far ``_api_timestamp`` may be from now, either way.
SKEW_MS = 5 * 60 * 1000


async def authenticate(connection: ASGIConnection) -> Principal:  # type: ignore[type-arg]
    """The calling institution; anyone else is refused (401 unauthenticated, 403 not one)."""
    if SIGNATURE in connection.headers:
        principal = await _signed(connection)
    else:
        principal = await bearer_principal(connection)
    if principal.kind != "institution" or principal.person_id is not None:
        raise Forbidden("the national interface is for institution clients")
    # The rate limiter counted only the address so far (this route authenticates itself).
    limiter: RateLimiter = connection.app.state.rate_limiter
    await limiter.count_client(principal.client_id, principal.rate_limit)
    return principal


async def _signed(connection: ASGIConnection) -> Principal:  # type: ignore[type-arg]
    runtime: Runtime = connection.app.state.runtime
    pairs = {name: connection.headers.get(name, "") for name in HEADERS}
    sent = connection.headers.get(SIGNATURE, "")
    if not all(pairs.values()) or not sent or len(sent) > 64:
        raise SignatureInvalid(f"send {', '.join(HEADERS)} and {SIGNATURE}")
    try:
        stamp_ms = int(pairs["_api_timestamp"])
    except ValueError as exc:
        raise SignatureInvalid("_api_timestamp must be milliseconds since the epoch") from exc
    if abs(time.time() * 1000 - stamp_ms) > SKEW_MS:
        raise SignatureExpired()
    async with runtime.sessions() as session:
        client = await repositories.signing_client(session, pairs["_api_access_key"])
    if client is None or client.gateway_key_cipher is None:
        # The same answer as a wrong signature: the route tells no one which ids hold keys.
        raise SignatureInvalid()
    key = gateway_keys.unseal(runtime.cipher, client.gateway_key_cipher)
    if not hmac.compare_digest(_bytes(sent), _bytes(gateway_keys.signature(key, pairs))):
        raise SignatureInvalid()
    await _once(runtime, client.client_id, sent, stamp_ms)
    code = client.institution.code if client.institution is not None else None
    scopes = frozenset(client.scopes.split())
    return Principal(client.client_id, client.kind, scopes, None, code, client.rate_limit)


async def _once(runtime: Runtime, client_id: str, sent: str, stamp_ms: int) -> None:
    # Kept until the timestamp can no longer pass the window (then purged with other jtis).
    expires = dt.datetime.fromtimestamp(stamp_ms / 1000, dt.UTC) + dt.timedelta(
        milliseconds=SKEW_MS + 60_000
    )
    try:
        first = await runtime.store.set_once(f"gwsig:{client_id}:{sent}", (2 * SKEW_MS) // 1000)
    except StoreUnavailable:
        first = True
    if not first:
        raise SignatureReplayed()
    async with runtime.sessions.begin() as session:
        if not await repositories.consume_signature(session, client_id, sent, expires):
            raise SignatureReplayed()


def _bytes(text: str) -> bytes:
    # Headers arrive as latin-1 text; a non-ASCII "signature" simply never matches.
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        return b""
