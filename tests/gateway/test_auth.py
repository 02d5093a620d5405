"""Who may call the gateway: an institution's Bearer token or the provincial gateways' signed
``_api_*`` headers (±5 minutes, each signature once); everyone else gets a −1 envelope."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select

from ecert.db.models import UsedJti
from ecert.server.runtime import Runtime
from tests.factories import add_client
from tests.fixtures.auth import bearer, client_token
from tests.gateway.national import call, envelope, hospital, ok, refused
from tests.helpers import Client

SIGN_IN = {"signIn": {"opter_no": "0001", "mac": "00-16-EA-AE-3C-40", "ip": "10.1.1.8"}}


async def test_signed_headers_sign_in_once_and_within_five_minutes(
    client: Client, runtime: Runtime
) -> None:
    h = await hospital(runtime, client, "H37010200031")
    body = envelope("9001", h.code, SIGN_IN)
    signed = h.signed()
    out = await ok(client, signed, body)
    assert len(out["signinoutb"]["sign_no"]) == 30
    # The same signed headers again: refused, even for another message.
    again = envelope("9001", h.code, SIGN_IN)
    assert await refused(client, signed, again, status=401) == "signature_replayed"
    # The database decides, not only the store: the signature is held there.
    async with runtime.sessions() as session:
        held = await session.scalar(
            select(UsedJti.issuer).where(UsedJti.jti == signed["_api_signature"])
        )
    assert held == f"gw:{h.client_id}"
    await runtime.store.delete(f"gwsig:{h.client_id}:{signed['_api_signature']}")
    assert await refused(client, signed, again, status=401) == "signature_replayed"

    now_ms = int(time.time() * 1000)
    stale = h.signed(at_ms=now_ms - 6 * 60 * 1000)
    assert await refused(client, stale, body, status=401) == "signature_expired"
    ahead = h.signed(at_ms=now_ms + 6 * 60 * 1000)
    assert await refused(client, ahead, body, status=401) == "signature_expired"
    assert await ok(client, h.signed(at_ms=now_ms - 4 * 60 * 1000), body)

    forged = h.signed(key="not-the-key")
    assert await refused(client, forged, body, status=401) == "signature_invalid"
    tampered = {**h.signed(), "_api_name": "other"}
    assert await refused(client, tampered, body, status=401) == "signature_invalid"
    partial = {k: v for k, v in h.signed().items() if k != "_api_version"}
    assert await refused(client, partial, body, status=401) == "signature_invalid"


async def test_a_client_without_a_gateway_key_still_uses_its_bearer_token(
    client: Client, runtime: Runtime
) -> None:
    """Clients registered before gateway keys keep working; signing needs a key first."""
    client_id, secret = await add_client(runtime, "institution", code="H37010200032")
    headers = bearer(await client_token(client, client_id, secret))
    assert await ok(client, headers, envelope("9001", "H37010200032", SIGN_IN))
    from tests.gateway.national import Hospital

    unsigned = Hospital("H37010200032", client_id, "guess", headers).signed()
    assert await refused(client, unsigned, envelope("9001", "H37010200032", SIGN_IN), 401) == (
        "signature_invalid"
    )


async def test_only_institutions_call_the_gateway(client: Client, runtime: Runtime) -> None:
    body = envelope("9001", "H37010200033", SIGN_IN)
    assert await refused(client, {}, body, status=401) == "unauthorized"
    channel = bearer(await client_token(client, *await add_client(runtime, "channel")))
    assert await refused(client, channel, body, status=403) == "forbidden"
    garbage = {"Authorization": "Bearer not.a.token"}
    assert await refused(client, garbage, body, status=401) == "unauthorized"
    # A body in any content type is read as the envelope once the caller is known.
    h = await hospital(runtime, client, "H37010200033")
    response = await call(client, {**h.headers, "Content-Type": "application/json"}, body)
    assert response.json()["infcode"] == 0


async def test_gateway_calls_count_against_the_clients_own_quota(
    client: Client, runtime: Runtime
) -> None:
    """Counted per client once known (not at the anonymous per-address rate), signed or not."""
    h = await hospital(runtime, client, "H37010200034", rate_limit=4)  # the token took one
    body = envelope("9001", h.code, SIGN_IN)
    # Bearer and signed calls alike; ten calls cross the quota even if a minute turns over.
    answers = [await call(client, h.signed() if i % 2 else h.headers, body) for i in range(10)]
    statuses = [a.status_code for a in answers]
    assert statuses[:3] == [200, 200, 200] or 429 in statuses[3:], statuses
    limited = next(a for a in answers if a.status_code == 429)
    assert limited.json()["err_code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0


async def test_one_signature_sent_at_once_by_ten_passes_once(
    client: Client, runtime: Runtime
) -> None:
    h = await hospital(runtime, client, "H37010200035")
    signed = h.signed()
    bodies = [envelope("9001", h.code, SIGN_IN) for _ in range(10)]
    answers = await asyncio.gather(*(call(client, signed, body) for body in bodies))
    assert sorted(a.status_code for a in answers) == [200] + [401] * 9
    assert {a.json()["err_code"] for a in answers if a.status_code == 401} == {"signature_replayed"}
