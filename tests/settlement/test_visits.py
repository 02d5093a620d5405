"""Visits over HTTP (spec §7): open with an ec_token or a card, refusals, show, cancel."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select, update

from ecert.cards import services as cards
from ecert.db.models import EcToken, Institution, Person, PersonSuspension, Visit
from ecert.server.runtime import Runtime
from tests.factories import ec_token, institution
from tests.helpers import Client
from tests.settlement.visit_steps import open_visit, opened, setup, visit_body


async def _spent(runtime: Runtime, token: str) -> bool:
    async with runtime.sessions() as session:
        row = await session.scalar(select(EcToken).where(EcToken.token == token))
    assert row is not None
    return row.spent_at is not None


async def test_open_spends_the_ec_token_once(client: Client, runtime: Runtime) -> None:
    person, hospital = await setup(client, runtime)
    token = await ec_token(client, runtime, person, hospital)
    key = str(uuid.uuid4())
    first = await open_visit(client, hospital, visit_body(token), key)
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["status"], body["insurance_type"], body["med_type"]) == ("open", "310", "11")
    assert body["person"]["id_number"] != person.id_number
    assert body["person"]["id_number"].startswith(person.id_number[:3])
    assert person.id_number not in first.text
    assert person.name not in first.text
    assert await _spent(runtime, token)
    again = await open_visit(client, hospital, visit_body(token), key)
    assert (again.status_code, again.json()) == (201, body)
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await open_visit(client, hospital, visit_body(token))
    assert (other.status_code, other.json()["code"]) == (409, "ec_token_spent")
    async with runtime.sessions() as session:
        assert len((await session.scalars(select(Visit))).all()) == 1


async def test_show_is_for_the_opening_institution_only(client: Client, runtime: Runtime) -> None:
    person, hospital = await setup(client, runtime)
    visit_id = await opened(client, runtime, person, hospital)
    shown = await client.get(f"/v1/visits/{visit_id}", headers=hospital)
    assert shown.status_code == 200, shown.text
    view = shown.json()
    assert (view["status"], view["lines"], view["settlements"]) == ("open", [], [])
    assert view["diagnoses"] == [{"code": "J06.900", "name": "急性上呼吸道感染", "main": True}]
    other = await institution(client, runtime, code="H37010200077")
    elsewhere = await client.get(f"/v1/visits/{visit_id}", headers=other)
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (404, "visit_not_found")
    unknown = await client.get(f"/v1/visits/{uuid.uuid4()}", headers=hospital)
    assert unknown.status_code == 404


async def test_cancel_while_nothing_is_settled(client: Client, runtime: Runtime) -> None:
    person, hospital = await setup(client, runtime)
    visit_id = await opened(client, runtime, person, hospital)
    cancelled = await client.post(f"/v1/visits/{visit_id}/cancel", headers=hospital)
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    again = await client.post(f"/v1/visits/{visit_id}/cancel", headers=hospital)
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")
    fee = {"line_no": "1", "list_code": "X", "name": "x", "quantity": "1", "unit_price": 1}
    refused = await client.post(
        f"/v1/visits/{visit_id}/fees", json={"lines": [fee]}, headers=hospital
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "visit_not_open")


async def test_not_designated_is_refused_before_the_token_is_spent(
    client: Client, runtime: Runtime
) -> None:
    person, hospital = await setup(client, runtime)
    token = await ec_token(client, runtime, person, hospital)
    async with runtime.sessions.begin() as session:
        await session.execute(update(Institution).values(designated=False))
    refused = await open_visit(client, hospital, visit_body(token))
    assert (refused.status_code, refused.json()["code"]) == (403, "institution_not_designated")
    assert not await _spent(runtime, token)
    async with runtime.sessions.begin() as session:
        await session.execute(update(Institution).values(designated=True))
    assert (await open_visit(client, hospital, visit_body(token))).status_code == 201


async def test_med_type_must_fit_the_institution_and_the_person(
    client: Client, runtime: Runtime
) -> None:
    man, hospital = await setup(client, runtime, gender="M")
    pharmacy = await institution(client, runtime, code="P37010200009", level="community")
    for headers, med_type in ((hospital, "41"), (pharmacy, "21"), (hospital, "51")):
        token = await ec_token(client, runtime, man, headers)
        refused = await open_visit(client, headers, visit_body(token, med_type))
        assert (refused.status_code, refused.json()["code"]) == (422, "med_type_not_allowed")
        assert not await _spent(runtime, token)
    token = await ec_token(client, runtime, man, pharmacy)
    assert (await open_visit(client, pharmacy, visit_body(token, "41"))).status_code == 201
    woman, _ = await setup(client, runtime, gender="F")
    token = await ec_token(client, runtime, woman, hospital)
    assert (await open_visit(client, hospital, visit_body(token, "52"))).status_code == 201


async def test_a_suspended_person_cannot_open(client: Client, runtime: Runtime) -> None:
    person, hospital = await setup(client, runtime)
    token = await ec_token(client, runtime, person, hospital)
    await client.post("/v1/me/ecert/suspend", json={}, headers=person.headers)
    refused = await open_visit(client, hospital, visit_body(token))
    assert (refused.status_code, refused.json()["code"]) == (409, "ecert_suspended")


async def test_a_card_opens_only_while_usable(client: Client, runtime: Runtime) -> None:
    person, hospital = await setup(client, runtime)
    async with runtime.sessions.begin() as session:
        row = await session.get(Person, person.person_id)
        assert row is not None
        card = await cards.issue(session, row, "test")
        number = card.number
    first = await open_visit(client, hospital, visit_body(card_no=number))
    assert first.status_code == 201, first.text
    assert first.json()["insurance_type"] == "310"
    both = await open_visit(client, hospital, visit_body("370102" + "a" * 32, card_no=number))
    assert (both.status_code, both.json()["code"]) == (400, "validation_failed")
    async with runtime.sessions.begin() as session:
        session.add(
            PersonSuspension(
                person_id=person.person_id,
                kind="agency",
                imposed_by="test",
                reason="test",
                imposed_at=dt.datetime.now(dt.UTC),
            )
        )
    suspended = await open_visit(client, hospital, visit_body(card_no=number))
    assert (suspended.status_code, suspended.json()["code"]) == (409, "ecert_suspended")
    await client.post("/v1/me/card/loss-reports", headers=person.headers)
    lost = await open_visit(client, hospital, visit_body(card_no=number))
    assert (lost.status_code, lost.json()["code"]) == (409, "card_not_usable")
