"""E-cert lifecycle and codes through the API: activation rules, rebinding, suspension, images."""

from __future__ import annotations

import asyncio
import io
import re
import time
from typing import Any

import jwt
import zxingcpp
from PIL import Image
from sqlalchemy import func, select

from ecert.db.models import ECert, PersonSuspension
from ecert.qr import codec
from ecert.server.runtime import Runtime
from tests.factories import Holder, add_client, add_person, holder, institution, mint_at
from tests.fixtures.auth import bearer, client_token, person_token
from tests.helpers import Client

DEVICE = {"device_id": "phone-1", "device_name": "Mate 60"}


async def _person(client: Client, runtime: Runtime, **kwargs: Any) -> tuple[dict[str, str], str]:
    channel = await add_client(runtime, "channel")
    name = kwargs.pop("name", "张三")
    _, id_number = await add_person(runtime, name=name, **kwargs)
    return bearer(await person_token(client, runtime, channel, id_number, name)), id_number


async def _jwk(client: Client, kid: str) -> Any:
    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    match = [k for k in keys if k["kid"] == kid and k["ecert_use"] == "qr"]
    assert match, f"kid {kid} not published"
    return jwt.PyJWK(match[0]).key


async def test_activation_needs_an_active_enrolment(client: Client, runtime: Runtime) -> None:
    headers, _ = await _person(client, runtime, enrolment_status="paused")
    response = await client.post("/v1/me/ecert", json=DEVICE, headers=headers)
    assert response.status_code == 422
    assert response.json()["code"] == "not_enrolled"
    assert (await client.get("/v1/me/ecert", headers=headers)).json()["code"] == "no_ecert"


async def test_activate_show_and_rebind(client: Client, runtime: Runtime) -> None:
    headers, _ = await _person(client, runtime)
    first = (await client.post("/v1/me/ecert", json=DEVICE, headers=headers)).json()
    assert first["status"] == "active"
    assert first["version"] == 1
    assert re.fullmatch(r"E370102\d{12}", first["number"])
    again = (await client.post("/v1/me/ecert", json=DEVICE, headers=headers)).json()
    assert again["version"] == 1  # same device: nothing to kill
    other = {"device_id": "phone-2", "device_name": "iPhone"}
    rebound = (await client.post("/v1/me/ecert", json=other, headers=headers)).json()
    assert rebound["version"] == 2
    assert rebound["number"] == first["number"]
    shown = (await client.get("/v1/me/ecert", headers=headers)).json()
    assert shown["device_id"] == "phone-2"


async def test_unknown_fields_are_refused(client: Client, runtime: Runtime) -> None:
    headers, _ = await _person(client, runtime)
    body = {**DEVICE, "status": "active", "version": 99}
    response = await client.post("/v1/me/ecert", json=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["code"] == "validation_failed"


async def test_qr_claims_header_and_no_personal_data(client: Client, runtime: Runtime) -> None:
    headers, id_number = await _person(client, runtime, name="李四")
    await client.post("/v1/me/ecert", json=DEVICE, headers=headers)
    before = int(time.time())
    response = await client.post("/v1/me/ecert/qr", headers=headers)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    text = body["qr"]
    header = codec.read_header(text)
    claims = codec.decode(text, await _jwk(client, header.kid), now=before, leeway_s=5)
    assert claims.iss == runtime.settings.issuer_area
    assert claims.ver == 1
    assert claims.exp - claims.iat == runtime.settings.qr_ttl_s
    jws = codec.to_compact_jws(text)
    for secret in (id_number, id_number[-8:], "李四"):
        assert secret not in jws
        assert secret not in str(jwt.decode(jws, options={"verify_signature": False}))
    assert body["refresh_after"] < body["expires_at"]


async def test_suspend_blocks_codes_and_resume_restores(client: Client, runtime: Runtime) -> None:
    headers, _ = await _person(client, runtime)
    await client.post("/v1/me/ecert", json=DEVICE, headers=headers)
    suspended = await client.post("/v1/me/ecert/suspend", json={}, headers=headers)
    assert suspended.json() == {"affected": 1, "status": "suspended"}
    refused = await client.post("/v1/me/ecert/qr", headers=headers)
    assert refused.status_code == 409
    assert refused.json()["code"] == "ecert_suspended"
    assert (await client.post("/v1/me/ecert", json=DEVICE, headers=headers)).status_code == 409
    resumed = await client.post("/v1/me/ecert/resume", headers=headers)
    assert resumed.json()["affected"] == 1
    assert (await client.post("/v1/me/ecert/qr", headers=headers)).status_code == 200


async def test_agency_suspends_by_id_number_in_body(client: Client, runtime: Runtime) -> None:
    headers, id_number = await _person(client, runtime)
    await client.post("/v1/me/ecert", json=DEVICE, headers=headers)
    agency = bearer(await client_token(client, *await add_client(runtime, "agency")))
    response = await client.post(
        "/v1/agency/ecerts/suspend", json={"id_number": id_number}, headers=agency
    )
    assert response.json() == {"affected": 1, "status": "suspended"}
    assert (await client.get("/v1/me/ecert", headers=headers)).json()["status"] == "suspended"
    bad = await client.post("/v1/agency/ecerts/suspend", json={"id_number": "123"}, headers=agency)
    assert bad.json()["code"] == "invalid_id_number"


async def test_unbind_revokes(client: Client, runtime: Runtime) -> None:
    headers, _ = await _person(client, runtime)
    await client.post("/v1/me/ecert", json=DEVICE, headers=headers)
    assert (await client.delete("/v1/me/ecert", headers=headers)).status_code == 204
    shown = (await client.get("/v1/me/ecert", headers=headers)).json()
    assert shown["status"] == "revoked"
    assert shown["version"] == 2
    refused = await client.post("/v1/me/ecert/qr", headers=headers)
    assert refused.json()["code"] == "ecert_revoked"


async def test_person_tokens_see_only_their_own_ecert(client: Client, runtime: Runtime) -> None:
    headers_a, _ = await _person(client, runtime, name="甲")
    headers_b, _ = await _person(client, runtime, name="乙")
    await client.post("/v1/me/ecert", json=DEVICE, headers=headers_a)
    assert (await client.get("/v1/me/ecert", headers=headers_b)).status_code == 404
    hospital = bearer(await client_token(client, *await add_client(runtime, "institution")))
    assert (await client.get("/v1/me/ecert", headers=hospital)).status_code == 403


async def test_images_decode_to_a_valid_token(client: Client, runtime: Runtime) -> None:
    headers, _ = await _person(client, runtime)
    await client.post("/v1/me/ecert", json=DEVICE, headers=headers)
    png = await client.get("/v1/me/ecert/qr.png", headers=headers)
    assert png.headers["content-type"] == "image/png"
    [result] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))
    kid = codec.read_header(result.text).kid
    claims = codec.decode(result.text, await _jwk(client, kid), now=int(time.time()), leeway_s=5)
    assert claims.ver == 1
    svg = await client.get("/v1/me/ecert/qr.svg", headers=headers)
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg")


async def test_numeric_code_format_and_expiry(client: Client, runtime: Runtime) -> None:
    headers, _ = await _person(client, runtime)
    await client.post("/v1/me/ecert", json=DEVICE, headers=headers)
    body = (await client.post("/v1/me/ecert/code", headers=headers)).json()
    code = body["code"]
    province = runtime.settings.issuer_area[:2]
    assert re.fullmatch(rf"424\d{{19}}{province}0000", code)
    other = (await client.post("/v1/me/ecert/code", headers=headers)).json()["code"]
    assert other != code


async def _other_channel(client: Client, runtime: Runtime, person: Holder) -> dict[str, str]:
    """Person-scoped headers for the same person through a second channel."""
    channel = await add_client(runtime, "channel")
    return bearer(await person_token(client, runtime, channel, person.id_number, person.name))


async def _agency(client: Client, runtime: Runtime) -> dict[str, str]:
    return bearer(await client_token(client, *await add_client(runtime, "agency")))


async def test_finding_02_another_channel_cannot_lift_an_agency_suspension(
    client: Client, runtime: Runtime
) -> None:
    person = await holder(client, runtime)
    agency = await _agency(client, runtime)
    hospital = await institution(client, runtime)
    body = {"id_number": person.id_number, "reason": "fraud_review"}
    assert (await client.post("/v1/agency/ecerts/suspend", json=body, headers=agency)).json() == {
        "affected": 1,
        "status": "suspended",
    }
    for headers in (await _other_channel(client, runtime, person), person.headers):
        lifted = await client.post("/v1/me/ecert/resume", headers=headers)
        assert (lifted.status_code, lifted.json()["code"]) == (403, "suspended_by_agency")
    code = await mint_at(runtime, person, iat=int(time.time()))
    refused = await client.post("/v1/verify", json={"qr": code}, headers=hospital)
    assert refused.json()["code"] == "ecert_suspended"
    assert (await client.get("/v1/me/ecert", headers=person.headers)).json()["status"] == (
        "suspended"
    )
    resumed = await client.post("/v1/agency/ecerts/resume", json=body, headers=agency)
    assert resumed.json() == {"affected": 1, "status": "active"}
    verified = await client.post(
        "/v1/verify", json={"qr": await person.qr(client)}, headers=hospital
    )
    assert verified.status_code == 200


async def test_finding_02_no_new_channel_activation_while_suspended(
    client: Client, runtime: Runtime
) -> None:
    person = await holder(client, runtime)
    agency = await _agency(client, runtime)
    await client.post(
        "/v1/agency/ecerts/suspend", json={"id_number": person.id_number}, headers=agency
    )
    other = await _other_channel(client, runtime, person)
    activated = await client.post("/v1/me/ecert", json=DEVICE, headers=other)
    assert (activated.status_code, activated.json()["code"]) == (409, "ecert_suspended")
    assert (await client.post("/v1/me/ecert/qr", headers=other)).status_code in (404, 409)
    assert (await client.get("/v1/me/ecert", headers=other)).json()["code"] == "no_ecert"


async def test_finding_02_own_suspension_lifted_only_where_bound(
    client: Client, runtime: Runtime
) -> None:
    person = await holder(client, runtime)
    unbound = await _other_channel(client, runtime, person)
    # Lost phone: the person may suspend through any channel that knows them.
    suspended = await client.post("/v1/me/ecert/suspend", json={}, headers=unbound)
    assert suspended.json() == {"affected": 1, "status": "suspended"}
    refused = await client.post("/v1/me/ecert/resume", headers=unbound)
    assert (refused.status_code, refused.json()["code"]) == (403, "channel_not_bound")
    assert (await client.post("/v1/me/ecert/qr", headers=person.headers)).status_code == 409
    resumed = await client.post("/v1/me/ecert/resume", headers=person.headers)
    assert resumed.json() == {"affected": 1, "status": "active"}
    assert (await client.post("/v1/me/ecert/qr", headers=person.headers)).status_code == 200
    # The agency may lift the person's own suspension too (at its counter, identity checked).
    await client.post("/v1/me/ecert/suspend", json={}, headers=person.headers)
    agency = await _agency(client, runtime)
    lifted = await client.post(
        "/v1/agency/ecerts/resume", json={"id_number": person.id_number}, headers=agency
    )
    assert lifted.json() == {"affected": 1, "status": "active"}
    async with runtime.sessions() as session:
        rows = (
            await session.scalars(
                select(PersonSuspension).where(PersonSuspension.person_id == person.person_id)
            )
        ).all()
    assert sorted((r.kind, r.lifted_at is not None) for r in rows) == [
        ("person", True),
        ("person", True),
    ]


async def test_finding_13_concurrent_first_activations_all_answer(
    client: Client, runtime: Runtime
) -> None:
    headers, _ = await _person(client, runtime)
    responses = await asyncio.gather(
        *(client.post("/v1/me/ecert", json=DEVICE, headers=headers) for _ in range(4))
    )
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    assert len({r.json()["number"] for r in responses}) == 1
    assert {r.json()["version"] for r in responses} == {1}
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ECert)) == 1
