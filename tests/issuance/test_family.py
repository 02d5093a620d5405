"""Family codes: consent first, at most five relatives, the relative's pseudonym, audited."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from ecert.db.models import AuditEvent, ECert
from ecert.qr import codec
from ecert.server.runtime import Runtime
from tests.factories import Holder, add_client, add_person, holder, institution, new_id_number
from tests.fixtures.auth import bearer, client_token
from tests.helpers import Client


async def _ask(
    client: Client, who: Holder, relative: Holder, relation: str = "parent"
) -> dict[str, str]:
    response = await client.post(
        "/v1/me/family",
        json={"relation": relation, "id_number": relative.id_number, "name": relative.name},
        headers=who.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_consent_then_code_carries_the_relative(client: Client, runtime: Runtime) -> None:
    child = await holder(client, runtime, name="王小明")
    mother = await holder(client, runtime, name="李秀英")
    link = await _ask(client, child, mother)
    assert link["status"] == "pending"
    early = await client.post(f"/v1/me/family/{link['link_id']}/qr", headers=child.headers)
    assert early.status_code == 403
    # Only the relative can consent, with her own token.
    assert (
        await client.post(
            "/v1/me/family/consents", json={"link_id": link["link_id"]}, headers=child.headers
        )
    ).status_code == 404
    consented = await client.post(
        "/v1/me/family/consents", json={"link_id": link["link_id"]}, headers=mother.headers
    )
    assert consented.json()["status"] == "active"
    code = (await client.post(f"/v1/me/family/{link['link_id']}/qr", headers=child.headers)).json()
    hospital = await institution(client, runtime)
    verified = await client.post("/v1/verify", json={"qr": code["qr"]}, headers=hospital)
    assert verified.status_code == 200
    assert verified.json()["person"]["name"] == "李**"
    async with runtime.sessions() as session:
        ecert = await session.scalar(
            select(ECert).where(ECert.person_id == mother.person_id, ECert.channel.like("family:%"))
        )
        audit = (
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "family.qr"))
        ).one()
    assert ecert is not None
    assert codec.to_compact_jws(code["qr"])  # well-formed
    assert audit.person_id == mother.person_id
    assert audit.detail == {"shown_by": str(child.person_id)}


async def test_at_most_five_relatives(client: Client, runtime: Runtime) -> None:
    me = await holder(client, runtime, name="张大")
    for i in range(5):
        _, number = await add_person(runtime, id_number=new_id_number(), name=f"亲属{i}")
        response = await client.post(
            "/v1/me/family",
            json={"relation": "child", "id_number": number, "name": f"亲属{i}"},
            headers=me.headers,
        )
        assert response.status_code == 201
    _, sixth = await add_person(runtime, name="亲属六")
    refused = await client.post(
        "/v1/me/family",
        json={"relation": "child", "id_number": sixth, "name": "亲属六"},
        headers=me.headers,
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "family_limit")
    listed = (await client.get("/v1/me/family", headers=me.headers)).json()
    assert len(listed) == 5
    await client.delete(f"/v1/me/family/{listed[0]['link_id']}", headers=me.headers)
    again = await client.post(
        "/v1/me/family",
        json={"relation": "child", "id_number": sixth, "name": "亲属六"},
        headers=me.headers,
    )
    assert again.status_code == 201


async def test_wrong_name_and_self_are_refused(client: Client, runtime: Runtime) -> None:
    me = await holder(client, runtime, name="赵一")
    other = await holder(client, runtime, name="赵二")
    wrong = await client.post(
        "/v1/me/family",
        json={"relation": "spouse", "id_number": other.id_number, "name": "赵三"},
        headers=me.headers,
    )
    assert wrong.status_code == 400
    own = await client.post(
        "/v1/me/family",
        json={"relation": "spouse", "id_number": me.id_number, "name": "赵一"},
        headers=me.headers,
    )
    assert own.status_code == 400


async def test_agency_records_consent_and_ending_kills_codes(
    client: Client, runtime: Runtime
) -> None:
    son = await holder(client, runtime, name="孙子")
    father = await holder(client, runtime, name="孙父")
    agency = bearer(await client_token(client, *await add_client(runtime, "agency")))
    recorded = await client.post(
        "/v1/agency/family/consents",
        json={
            "holder_id_number": son.id_number,
            "relative_id_number": father.id_number,
            "relation": "parent",
        },
        headers=agency,
    )
    assert recorded.json()["consent_source"] == "agency"
    link_id = recorded.json()["link_id"]
    code = (await client.post(f"/v1/me/family/{link_id}/qr", headers=son.headers)).json()["qr"]
    # The relative ends it; the code already shown dies with the link.
    assert (
        await client.delete(f"/v1/me/family/{link_id}", headers=father.headers)
    ).status_code == 204
    hospital = await institution(client, runtime)
    refused = await client.post("/v1/verify", json={"qr": code}, headers=hospital)
    assert refused.json()["code"] == "ecert_revoked"


async def _linked(client: Client, runtime: Runtime) -> tuple[Holder, Holder, str]:
    """A holder and a relative who consented: (holder, relative, link id)."""
    child = await holder(client, runtime, name="周小")
    mother = await holder(client, runtime, name="周母")
    link = await _ask(client, child, mother)
    consented = await client.post(
        "/v1/me/family/consents", json={"link_id": link["link_id"]}, headers=mother.headers
    )
    assert consented.status_code == 200, consented.text
    return child, mother, link["link_id"]


async def test_finding_02_no_family_code_for_a_suspended_relative(
    client: Client, runtime: Runtime
) -> None:
    child, mother, link_id = await _linked(client, runtime)
    hospital = await institution(client, runtime)
    shown = await client.post(f"/v1/me/family/{link_id}/qr", headers=child.headers)
    agency = bearer(await client_token(client, *await add_client(runtime, "agency")))
    suspended = await client.post(
        "/v1/agency/ecerts/suspend", json={"id_number": mother.id_number}, headers=agency
    )
    assert suspended.status_code == 200
    minted = await client.post(f"/v1/me/family/{link_id}/qr", headers=child.headers)
    assert (minted.status_code, minted.json()["code"]) == (409, "ecert_suspended")
    # A code shown before the suspension dies with it.
    refused = await client.post("/v1/verify", json={"qr": shown.json()["qr"]}, headers=hospital)
    assert refused.json()["code"] == "ecert_suspended"


async def test_finding_02_first_family_code_after_suspension_is_refused(
    client: Client, runtime: Runtime
) -> None:
    child, mother, link_id = await _linked(client, runtime)
    await client.post("/v1/me/ecert/suspend", json={}, headers=mother.headers)
    # No family e-cert existed yet: minting must not create an active one.
    minted = await client.post(f"/v1/me/family/{link_id}/qr", headers=child.headers)
    assert (minted.status_code, minted.json()["code"]) == (409, "ecert_suspended")
    async with runtime.sessions() as session:
        family = await session.scalar(
            select(ECert).where(ECert.person_id == mother.person_id, ECert.channel.like("family:%"))
        )
    assert family is None or family.status != "active"


async def test_finding_02_a_suspended_holder_shows_no_family_codes(
    client: Client, runtime: Runtime
) -> None:
    child, _, link_id = await _linked(client, runtime)
    await client.post("/v1/me/ecert/suspend", json={}, headers=child.headers)  # lost phone
    minted = await client.post(f"/v1/me/family/{link_id}/qr", headers=child.headers)
    assert (minted.status_code, minted.json()["code"]) == (409, "ecert_suspended")


async def test_finding_13_concurrent_first_family_codes_all_answer(
    client: Client, runtime: Runtime
) -> None:
    child, mother, link_id = await _linked(client, runtime)
    responses = await asyncio.gather(
        *(client.post(f"/v1/me/family/{link_id}/qr", headers=child.headers) for _ in range(4))
    )
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    async with runtime.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(ECert)
            .where(ECert.person_id == mother.person_id, ECert.channel.like("family:%"))
        )
    assert count == 1
