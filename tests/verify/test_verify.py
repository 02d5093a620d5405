"""POST /v1/verify: every refusal code, single use (sequential and concurrent), ec_token shape."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import re

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import update

from ecert.db.models import Institution, NumericCode, utcnow
from ecert.qr import codec
from ecert.server.runtime import Runtime
from ecert.verify import services
from tests.factories import add_client, holder, institution, mint_at, now, set_enrolment
from tests.fixtures.app import AppFactory, open_client
from tests.fixtures.auth import bearer, client_token
from tests.helpers import Client
from tests.servers import free_port


async def _verify(
    client: Client, headers: dict[str, str], text: str
) -> tuple[int, dict[str, object]]:
    response = await client.post(
        "/v1/verify", json={"qr": text, "business_type": "01101"}, headers=headers
    )
    return response.status_code, response.json()


async def test_verify_returns_masked_person_and_ec_token(client: Client, runtime: Runtime) -> None:
    person = await holder(client, runtime, name="李四")
    hospital = await institution(client, runtime)
    status, body = await _verify(client, hospital, await person.qr(client))
    assert status == 200, body
    assert re.fullmatch(r"370102[a-z0-9]{32}", str(body["ec_token"]))
    shown = body["person"]
    assert isinstance(shown, dict)
    assert shown["name"] == "李*"
    assert shown["id_number"] == person.id_number[:3] + "*" * 11 + person.id_number[-4:]
    assert shown["insured_area"] == "370102"
    assert body["insurances"] == [{"insurance_type": "310", "status": "active"}]


async def test_full_identity_scope_sees_full_identity(client: Client, runtime: Runtime) -> None:
    person = await holder(client, runtime, name="李四")
    hospital = await institution(client, runtime, scopes="verify settle identity:full")
    _, body = await _verify(client, hospital, await person.qr(client))
    shown = body["person"]
    assert isinstance(shown, dict)
    assert (shown["name"], shown["id_number"]) == ("李四", person.id_number)


async def test_sequential_replay_is_refused(client: Client, runtime: Runtime) -> None:
    person = await holder(client, runtime)
    hospital = await institution(client, runtime)
    text = await person.qr(client)
    assert (await _verify(client, hospital, text))[0] == 200
    status, body = await _verify(client, hospital, text)
    assert (status, body["code"]) == (409, "qr_replayed")


async def test_twenty_concurrent_scans_exactly_one_succeeds(
    client: Client, runtime: Runtime
) -> None:
    person = await holder(client, runtime)
    hospitals = [await institution(client, runtime, code=f"H3701020{i:04d}") for i in range(4)]
    text = await person.qr(client)
    results = await asyncio.gather(*(_verify(client, hospitals[i % 4], text) for i in range(20)))
    statuses = sorted(status for status, _ in results)
    assert statuses.count(200) == 1
    assert all(body["code"] == "qr_replayed" for status, body in results if status != 200)


async def test_concurrent_scans_of_different_codes_each_get_their_own_answer(
    client: Client, runtime: Runtime
) -> None:
    """Scans arriving together (which may share one statement on PostgreSQL, ecert.verify.batches;
    tests/verify/test_batches.py makes them): each is checked on its own rows and answered with
    its own person and token, a refused one spends nothing, and a code scanned twice in the
    crowd is spent once."""
    people = [await holder(client, runtime, name=name) for name in ("李四", "王五", "赵六")]
    unenrolled = people[1]
    await set_enrolment(runtime, unenrolled, "paused")
    hospital = await institution(client, runtime)
    codes = [await person.qr(client) for person in people]
    scans = [codes[0], codes[1], codes[2], codes[2], codes[0]]
    results = await asyncio.gather(*(_verify(client, hospital, code) for code in scans))
    by_code: dict[str, list[tuple[int, dict[str, object]]]] = {}
    for code, result in zip(scans, results, strict=True):
        by_code.setdefault(code, []).append(result)
    for person, code in zip(people, codes, strict=True):
        answers = sorted(by_code[code], key=lambda result: result[0])
        if person is unenrolled:
            assert [(s, b["code"]) for s, b in answers] == [(422, "not_enrolled")]
            continue
        assert [s for s, _ in answers] == [200, 409], answers
        shown = answers[0][1]["person"]
        assert isinstance(shown, dict)
        assert shown["id_number"] == person.id_number[:3] + "*" * 11 + person.id_number[-4:]
    tokens = {b["ec_token"] for s, b in results if s == 200}
    assert len(tokens) == 2
    # The refused code was not spent: once enrolled again, the same code verifies.
    await set_enrolment(runtime, unenrolled, "active")
    assert (await _verify(client, hospital, codes[1]))[0] == 200


async def test_replay_refused_with_redis_down(make_app: AppFactory) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    runtime = app.state.runtime
    async with open_client(app) as client:
        person = await holder(client, runtime)
        hospital = await institution(client, runtime)
        text = await person.qr(client)
        assert (await _verify(client, hospital, text))[0] == 200
        status, body = await _verify(client, hospital, text)
        assert (status, body["code"]) == (409, "qr_replayed")


async def test_concurrent_scans_with_redis_down_verify_once(make_app: AppFactory) -> None:
    """The database alone decides (a unique violation on PostgreSQL): one 200, the rest 409."""
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    runtime = app.state.runtime
    async with open_client(app) as client:
        person = await holder(client, runtime)
        hospital = await institution(client, runtime)
        text = await person.qr(client)
        replies = await asyncio.gather(*(_verify(client, hospital, text) for _ in range(8)))
        assert sorted(status for status, _ in replies) == [200] + [409] * 7
        assert {body["code"] for status, body in replies if status == 409} == {"qr_replayed"}


async def test_expiry_edges_and_clock_skew(client: Client, runtime: Runtime) -> None:
    person = await holder(client, runtime)
    hospital = await institution(client, runtime)
    ttl, leeway = runtime.settings.qr_ttl_s, runtime.settings.leeway_s
    expired = await mint_at(runtime, person, iat=now() - ttl - leeway - 5)
    assert (await _verify(client, hospital, expired))[1]["code"] == "qr_expired"
    future = await mint_at(runtime, person, iat=now() + leeway + 30)
    assert (await _verify(client, hospital, future))[1]["code"] == "qr_not_yet_valid"
    slightly_ahead = await mint_at(runtime, person, iat=now() + leeway - 2)
    assert (await _verify(client, hospital, slightly_ahead))[0] == 200


async def test_forged_and_unknown_key_codes(client: Client, runtime: Runtime) -> None:
    person = await holder(client, runtime)
    hospital = await institution(client, runtime)
    good = await person.qr(client)
    kid = codec.read_header(good).kid
    claims = codec.new_claims("370102", "AbCdEfGhIjKl", 1, now(), 60)
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = codec.encode(claims, stranger, kid)
    assert (await _verify(client, hospital, forged))[1]["code"] == "qr_signature_invalid"
    unknown = codec.encode(claims, stranger, "zzzz")
    assert (await _verify(client, hospital, unknown))[1]["code"] == "qr_unknown_key"
    status, body = await _verify(client, hospital, "not a code at all")
    assert (status, body["code"]) == (422, "qr_malformed")


async def test_status_and_version_checks(client: Client, runtime: Runtime) -> None:
    person = await holder(client, runtime)
    hospital = await institution(client, runtime)
    old = await person.qr(client)
    await client.post(
        "/v1/me/ecert", json={"device_id": "new", "device_name": "x"}, headers=person.headers
    )
    assert (await _verify(client, hospital, old))[1]["code"] == "ecert_revoked"
    current = await person.qr(client)
    await client.post("/v1/me/ecert/suspend", json={}, headers=person.headers)
    assert (await _verify(client, hospital, current))[1]["code"] == "ecert_suspended"
    await client.post("/v1/me/ecert/resume", headers=person.headers)
    fresh = await person.qr(client)
    await set_enrolment(runtime, person, "terminated")
    assert (await _verify(client, hospital, fresh))[1]["code"] == "not_enrolled"


async def test_numeric_code_single_use(client: Client, runtime: Runtime) -> None:
    person = await holder(client, runtime)
    hospital = await institution(client, runtime)
    code = (await client.post("/v1/me/ecert/code", headers=person.headers)).json()["code"]
    assert (await _verify(client, hospital, code))[0] == 200
    assert (await _verify(client, hospital, code))[1]["code"] == "qr_replayed"
    unknown = "424" + "0" * 19 + "370000"
    assert (await _verify(client, hospital, unknown))[1]["code"] == "qr_malformed"
    late = (await client.post("/v1/me/ecert/code", headers=person.headers)).json()["code"]
    async with runtime.sessions.begin() as session:
        await session.execute(
            update(NumericCode)
            .where(NumericCode.code == late)
            .values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )
    assert (await _verify(client, hospital, late))[1]["code"] == "qr_expired"


async def test_only_institutions_verify(client: Client, runtime: Runtime) -> None:
    person = await holder(client, runtime)
    channel = bearer(await client_token(client, *await add_client(runtime, "channel")))
    response = await client.post(
        "/v1/verify", json={"qr": await person.qr(client)}, headers=channel
    )
    assert response.status_code == 403
    assert (
        await client.post("/v1/verify", json={"qr": "x"}, headers=person.headers)
    ).status_code == 403


async def _designate(runtime: Runtime, designated: bool) -> None:
    async with runtime.sessions.begin() as session:
        await session.execute(update(Institution).values(designated=designated))


async def test_finding_04_undesignated_institution_cannot_verify(
    client: Client, runtime: Runtime
) -> None:
    person = await holder(client, runtime)
    hospital = await institution(client, runtime)
    text = await person.qr(client)
    numeric = (await client.post("/v1/me/ecert/code", headers=person.headers)).json()["code"]
    await _designate(runtime, False)
    for code in (text, numeric):
        status, body = await _verify(client, hospital, code)
        assert (status, body["code"]) == (403, "institution_not_designated")
        assert "person" not in body
    # Refused before the codes were spent: once designated again, both still work.
    await _designate(runtime, True)
    assert (await _verify(client, hospital, text))[0] == 200
    assert (await _verify(client, hospital, numeric))[0] == 200


def test_ec_token_tails_are_32_characters_drawn_evenly_from_all_36() -> None:
    tails = [services.new_ec_token("370102")[6:] for _ in range(3000)]
    assert all(re.fullmatch(r"[a-z0-9]{32}", tail) for tail in tails)
    counts = collections.Counter("".join(tails))
    # 96,000 draws: each of the 36 characters ~2,667 times; 5 sigma either side.
    assert len(counts) == 36
    assert all(2400 < n < 2930 for n in counts.values()), counts
