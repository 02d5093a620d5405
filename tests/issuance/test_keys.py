"""Key rotation timeline, emergency revocation, the JWKS and the signed revocation feed."""

from __future__ import annotations

import asyncio
import datetime as dt

import jwt
from sqlalchemy import update

from ecert.db.models import SigningKey, utcnow
from ecert.qr import codec
from ecert.security import keys
from ecert.server.runtime import Runtime
from tests.factories import add_client, add_person, holder, institution
from tests.fixtures.auth import bearer, client_token, person_token
from tests.fixtures.database import Backend
from tests.helpers import Client, run_cli

DEVICE = {"device_id": "phone-1", "device_name": "Mate 60"}


async def _ecert(client: Client, runtime: Runtime) -> dict[str, str]:
    channel = await add_client(runtime, "channel")
    _, id_number = await add_person(runtime, name="王五")
    headers = bearer(await person_token(client, runtime, channel, id_number, "王五"))
    assert (await client.post("/v1/me/ecert", json=DEVICE, headers=headers)).status_code == 200
    return headers


async def _rotate(runtime: Runtime, purpose: str = "qr", overlap_s: int = 95) -> str:
    async with runtime.sessions.begin() as session:
        kid = await keys.rotate(session, runtime.cipher, purpose, overlap_s=overlap_s)
    await runtime.refresh_keys()
    assert kid is not None
    return kid


async def _published(client: Client) -> dict[str, str]:
    return {
        k["kid"]: k["ecert_use"]
        for k in (await client.get("/.well-known/jwks.json")).json()["keys"]
    }


async def test_jwks_content_and_headers(client: Client, runtime: Runtime) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.headers["access-control-allow-origin"] == "*"
    assert "max-age" in response.headers["cache-control"]
    qr_keys = [k for k in response.json()["keys"] if k["ecert_use"] == "qr"]
    assert len(qr_keys) == 2  # the active key and the next one, published before it signs
    for key in qr_keys:
        assert {key["kty"], key["crv"], key["alg"], key["use"]} == {"EC", "P-256", "ES256", "sig"}
        assert "d" not in key
    cached = await client.get(
        "/.well-known/jwks.json", headers={"If-None-Match": response.headers["etag"]}
    )
    assert cached.status_code == 304
    access = [k for k in runtime.keys.published("access")]
    assert not set(await _published(client)) & {k.kid for k in access}


async def test_rotation_timeline(client: Client, runtime: Runtime) -> None:
    headers = await _ecert(client, runtime)
    old_text = (await client.post("/v1/me/ecert/qr", headers=headers)).json()["qr"]
    old_kid = codec.read_header(old_text).kid
    next_kid = next(k.kid for k in runtime.keys.published("qr") if k.state == "next")
    assert next_kid in await _published(client)  # published before it signs

    assert await _rotate(runtime) == next_kid
    new_text = (await client.post("/v1/me/ecert/qr", headers=headers)).json()["qr"]
    assert codec.read_header(new_text).kid == next_kid
    # The retiring key is still published and still verifies the codes it signed.
    assert old_kid in await _published(client)
    assert runtime.keys.verifier("qr", old_kid) is not None

    # Once its publication window has passed (moved into the past here), a rotation retires it.
    async with runtime.sessions.begin() as session:
        await session.execute(
            update(SigningKey)
            .where(SigningKey.kid == old_kid)
            .values(publish_until=utcnow() - dt.timedelta(seconds=1))
        )
    await _rotate(runtime)
    assert old_kid not in await _published(client)
    assert runtime.keys.verifier("qr", old_kid) is None


async def test_emergency_revocation_kills_at_once(client: Client, runtime: Runtime) -> None:
    headers = await _ecert(client, runtime)
    text = (await client.post("/v1/me/ecert/qr", headers=headers)).json()["qr"]
    kid = codec.read_header(text).kid
    assert await keys.revoke_now(runtime.sessions, runtime.cipher, runtime.store, kid)
    assert kid not in await _published(client)
    assert runtime.keys.verifier("qr", kid) is None
    # The revocation promoted the next key: minting goes on at once.
    assert (await client.post("/v1/me/ecert/qr", headers=headers)).status_code == 200


async def test_revocation_feed_is_ordered_and_signed(client: Client, runtime: Runtime) -> None:
    headers = await _ecert(client, runtime)
    await client.post("/v1/me/ecert", json={"device_id": "p2", "device_name": "x"}, headers=headers)
    await client.post("/v1/me/ecert/suspend", json={}, headers=headers)
    await client.delete("/v1/me/ecert", headers=headers)  # suspended: unbind still revokes
    feed = (await client.get("/v1/revocations")).json()
    seqs = [e["seq"] for e in feed["entries"]]
    assert seqs == sorted(seqs)
    assert len(seqs) >= 2
    assert [e["status"] for e in feed["entries"]][:2] == ["active", "suspended"]
    assert feed["until"] == seqs[-1]
    # The JWS is signed by a published feed key and says the same thing.
    header = jwt.get_unverified_header(feed["jws"])
    assert header["typ"] == "ecrev+jwt"
    jwks = (await client.get("/.well-known/jwks.json")).json()["keys"]
    [jwk] = [k for k in jwks if k["kid"] == header["kid"]]
    assert jwk["ecert_use"] == "feed"
    signed = jwt.decode(feed["jws"], jwt.PyJWK(jwk).key, algorithms=["ES256"])
    assert signed["entries"] == feed["entries"]
    later = (await client.get(f"/v1/revocations?since={seqs[0]}")).json()
    assert [e["seq"] for e in later["entries"]] == seqs[1:]
    assert (await client.get("/v1/revocations?since=-1")).status_code == 400


async def test_rotation_falls_due_on_schedule(runtime: Runtime) -> None:
    async with runtime.sessions.begin() as session:
        await keys.ensure_active_keys(session, runtime.cipher)
    await runtime.refresh_keys()
    assert not keys.rotation_due(runtime.keys, "qr", 30)
    async with runtime.sessions.begin() as session:
        await session.execute(
            update(SigningKey)
            .where(SigningKey.purpose == "qr", SigningKey.state == "active")
            .values(activated_at=utcnow() - dt.timedelta(days=31))
        )
    await runtime.refresh_keys()
    assert keys.rotation_due(runtime.keys, "qr", 30)
    assert not keys.rotation_due(runtime.keys, "qr", 0)  # 0 disables the schedule


# Finding 5 (issue 14): a revocation is immediate and total.


#: The in-process store is not shared with the command's process: an embedded server learns of
#: the revocation on its short fallback interval (ECERT_KEY_REFRESH_FALLBACK_S, default 2 s).
#: The verify path's database check needs no wait at all; Redis makes everything immediate.
EMBEDDED_WAIT_S = 2.5


async def test_finding_05_revoked_qr_key_dies_at_once(
    client: Client, runtime: Runtime, backend: Backend
) -> None:
    person = await holder(client, runtime)
    hospital = await institution(client, runtime)
    text = await person.qr(client)
    kid = codec.read_header(text).kid
    await run_cli(backend.settings, "keys", "revoke", "--", kid)
    # At once, on every backend: the verify transaction asks the database about the key.
    refused = await client.post("/v1/verify", json={"qr": text}, headers=hospital)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "qr_unknown_key"
    if backend.name == "embedded":
        await asyncio.sleep(EMBEDDED_WAIT_S)
    jwks = await client.get("/.well-known/jwks.json")
    assert kid not in {k["kid"] for k in jwks.json()["keys"]}
    assert "max-age=10" in jwks.headers["cache-control"]
    feed = (await client.get("/v1/revocations")).json()
    assert kid in feed["revoked_kids"]
    assert kid in jwt.decode(feed["jws"], options={"verify_signature": False})["revoked_kids"]
    # The next key was promoted in the revoking transaction: minting goes on, with a new key.
    fresh = await person.qr(client)
    assert codec.read_header(fresh).kid != kid
    ok = await client.post("/v1/verify", json={"qr": fresh}, headers=hospital)
    assert ok.status_code == 200, ok.text


async def test_finding_05_revoking_the_active_access_key_keeps_the_token_endpoint_up(
    client: Client, runtime: Runtime, backend: Backend
) -> None:
    creds = await add_client(runtime, "institution")
    old = await client_token(client, *creds)
    kid = jwt.get_unverified_header(old)["kid"]
    await run_cli(backend.settings, "keys", "revoke", "--", kid)
    if backend.name == "embedded":
        await asyncio.sleep(EMBEDDED_WAIT_S)
    probe = {"qr": "not a code"}  # 401 without a valid token, 422 with one
    refused = await client.post("/v1/verify", json=probe, headers=bearer(old))
    assert refused.status_code == 401, refused.text
    new = await client_token(client, *creds)  # asserts 200
    assert jwt.get_unverified_header(new)["kid"] != kid
    accepted = await client.post("/v1/verify", json=probe, headers=bearer(new))
    assert accepted.status_code == 422, accepted.text


async def test_finding_05_revoking_any_key_leaves_each_purpose_active_and_next(
    runtime: Runtime, client: Client
) -> None:
    for purpose in keys.PURPOSES:
        for state in ("active", "next"):
            kid = next(k.kid for k in runtime.keys.published(purpose) if k.state == state)
            assert await keys.revoke_now(runtime.sessions, runtime.cipher, runtime.store, kid)
            await runtime.current_keys()  # the version in the store says reload
            states = [k.state for k in runtime.keys.published(purpose)]
            assert sorted(states) == ["active", "next"], (purpose, state, states)
            assert runtime.keys.verifier(purpose, kid) is None
    assert not await keys.revoke_now(runtime.sessions, runtime.cipher, runtime.store, "none")
