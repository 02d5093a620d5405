"""Card lifecycle through the API: provisional report, un-suspension, working-day lapse, formal
report, replacement, errata, card-terminal checks — and the e-cert keeps working throughout."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, update

from ecert.cards.services import sweep
from ecert.cards.workdays import calendar
from ecert.db.models import Card, Person, utcnow
from ecert.persons import person_name
from ecert.server.runtime import Runtime
from tests.factories import (
    Holder,
    add_client,
    add_person,
    credit,
    holder,
    institution,
    new_id_number,
)
from tests.fixtures.app import AppFactory, open_client
from tests.fixtures.auth import bearer, client_token, person_token
from tests.helpers import Client


async def _with_card(client: Client, runtime: Runtime) -> tuple[Holder, dict[str, str]]:
    person = await holder(client, runtime, name="钱十一")
    agency = bearer(await client_token(client, *await add_client(runtime, "agency")))
    issued = await client.post(
        "/v1/agency/cards/issue", json={"id_number": person.id_number}, headers=agency
    )
    assert issued.status_code == 201, issued.text
    return person, agency


async def _number(runtime: Runtime, person: Holder) -> str:
    """The full number of the person's card in use (what a card terminal reads)."""
    async with runtime.sessions() as session:
        number = await session.scalar(
            select(Card.number)
            .where(Card.person_id == person.person_id, Card.status != "replaced")
            .order_by(Card.created_at.desc())
        )
    assert number is not None
    return number


async def _check(client: Client, terminal: dict[str, str], number: str) -> dict[str, Any]:
    response = await client.post("/v1/cards/check", json={"number": number}, headers=terminal)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _verifies(client: Client, hospital: dict[str, str], person: Holder) -> bool:
    """The person's e-cert still passes a hospital's verify."""
    response = await client.post(
        "/v1/verify", json={"qr": await person.qr(client)}, headers=hospital
    )
    return response.status_code == 200


def _expected_lapse(reported_at: str, workdays: int) -> dt.datetime:
    return calendar().deadline(dt.datetime.fromisoformat(reported_at), workdays)


async def test_provisional_report_stops_the_card_at_once(client: Client, runtime: Runtime) -> None:
    person, _ = await _with_card(client, runtime)
    terminal = await institution(client, runtime)
    number = await _number(runtime, person)
    card = (await client.get("/v1/me/card", headers=person.headers)).json()
    assert (card["status"], card["usable"]) == ("active", True)
    assert card["number"] == "*" * (len(number) - 4) + number[-4:]
    assert [e["action"] for e in card["history"]] == ["issued"]
    assert await _check(client, terminal, number) == {"status": "active", "usable": True}

    reported = (await client.post("/v1/me/card/loss-reports", headers=person.headers)).json()
    assert (reported["status"], reported["usable"]) == ("provisionally_reported", False)
    # It lapses at the end of the second working day (the default N) after the report.
    assert dt.datetime.fromisoformat(reported["restores_at"]) == _expected_lapse(
        reported["reported_at"], 2
    )
    assert await _check(client, terminal, number) == {
        "status": "provisionally_reported",
        "usable": False,
    }
    again = await client.post("/v1/me/card/loss-reports", headers=person.headers)
    assert (again.status_code, again.json()["code"]) == (409, "card_state")
    assert await _verifies(client, terminal, person)  # the e-cert keeps working

    found = (await client.post("/v1/me/card/loss-reports/cancel", headers=person.headers)).json()
    assert (found["status"], found["restores_at"]) == ("active", None)
    assert [e["action"] for e in found["history"]] == [
        "cancel_report",
        "provisional_report",
        "issued",
    ]
    assert (await _check(client, terminal, number))["usable"] is True


async def test_lapse_days_are_configured_per_area(make_app: AppFactory) -> None:
    app = make_app(card_lapse_by_area="370102:5")
    async with open_client(app) as client:
        person, agency = await _with_card(client, app.state.runtime)
        reported = await client.post(
            "/v1/agency/cards/loss-reports", json={"id_number": person.id_number}, headers=agency
        )
        body = reported.json()
        assert body["status"] == "provisionally_reported"
        assert dt.datetime.fromisoformat(body["restores_at"]) == _expected_lapse(
            body["reported_at"], 5
        )


async def _lapse_now(runtime: Runtime) -> None:
    """Move every pending lapse into the past (the test cannot wait two working days)."""
    async with runtime.sessions.begin() as session:
        await session.execute(update(Card).values(lapse_at=utcnow() - dt.timedelta(minutes=1)))


async def test_report_lapses_on_read(client: Client, runtime: Runtime) -> None:
    person, _ = await _with_card(client, runtime)
    await client.post("/v1/me/card/loss-reports", headers=person.headers)
    await _lapse_now(runtime)
    card = (await client.get("/v1/me/card", headers=person.headers)).json()
    assert (card["status"], card["usable"], card["restores_at"]) == ("active", True, None)
    assert card["history"][0]["action"] == "lapsed"
    late = await client.post("/v1/me/card/loss-reports/cancel", headers=person.headers)
    assert late.json()["code"] == "card_state"  # nothing left to un-suspend


async def test_terminal_check_applies_the_lapse(client: Client, runtime: Runtime) -> None:
    person, _ = await _with_card(client, runtime)
    await client.post("/v1/me/card/loss-reports", headers=person.headers)
    await _lapse_now(runtime)
    terminal = await institution(client, runtime)
    assert await _check(client, terminal, await _number(runtime, person)) == {
        "status": "active",
        "usable": True,
    }
    unknown = await client.post(
        "/v1/cards/check", json={"number": "37" + "0" * 14}, headers=terminal
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "no_card")


async def test_sweep_restores_lapsed_reports(client: Client, runtime: Runtime) -> None:
    lapsing, _ = await _with_card(client, runtime)
    await client.post("/v1/me/card/loss-reports", headers=lapsing.headers)
    await _lapse_now(runtime)
    pending, agency = await _with_card(client, runtime)
    body = {"id_number": pending.id_number}
    await client.post("/v1/agency/cards/loss-reports", json=body, headers=agency)
    async with runtime.sessions.begin() as session:
        assert await sweep(session) == 1
    async with runtime.sessions.begin() as session:
        assert await sweep(session) == 0
        statuses = dict((await session.execute(select(Card.person_id, Card.status))).tuples().all())
    assert statuses == {
        lapsing.person_id: "active",
        pending.person_id: "provisionally_reported",
    }


async def test_formal_report_freezes_then_replacement(client: Client, runtime: Runtime) -> None:
    person, agency = await _with_card(client, runtime)
    await credit(runtime, person.person_id, 12_345)
    terminal = await institution(client, runtime)
    body = {"id_number": person.id_number}
    old = await _number(runtime, person)
    await client.post("/v1/agency/cards/loss-reports", json=body, headers=agency)
    frozen = (
        await client.post("/v1/agency/cards/loss-reports/formal", json=body, headers=agency)
    ).json()
    assert (frozen["status"], frozen["usable"], frozen["restores_at"]) == (
        "formally_reported",
        False,
        None,
    )
    await _lapse_now(runtime)  # a formal report never lapses
    shown = (await client.get("/v1/me/card", headers=person.headers)).json()
    assert shown["status"] == "formally_reported"
    cancel = await client.post("/v1/me/card/loss-reports/cancel", headers=person.headers)
    assert cancel.json()["code"] == "card_state"  # a formal report cannot be undone
    assert await _verifies(client, terminal, person)

    new = await client.post(
        "/v1/agency/cards/replacements", json={**body, "reason": "lost"}, headers=agency
    )
    assert new.status_code == 201
    assert (new.json()["status"], new.json()["usable"]) == ("active", True)
    assert new.json()["history"][:2] == [
        {**new.json()["history"][0], "action": "replaced_lost", "to_status": "replaced"},
        {**new.json()["history"][1], "action": "issued", "to_status": "active"},
    ]
    fresh = await _number(runtime, person)
    assert fresh != old
    # The old card stays invalid even if found; the balance stays with the person.
    assert await _check(client, terminal, old) == {"status": "replaced", "usable": False}
    assert await _check(client, terminal, fresh) == {"status": "active", "usable": True}
    account = await client.get("/v1/me/account", headers=person.headers)
    assert account.json()["balance"] == 12_345
    assert await _verifies(client, terminal, person)


#: (state to reach, request, expected) — every refusal answers 409 card_state.
REFUSED = [
    ("active", ("me", "/v1/me/card/loss-reports/cancel", {})),
    ("active", ("agency", "/v1/agency/cards/replacements", {"reason": "lost"})),
    ("active", ("agency", "/v1/agency/cards/issue", {})),
    ("provisionally_reported", ("me", "/v1/me/card/loss-reports", {})),
    ("provisionally_reported", ("agency", "/v1/agency/cards/replacements", {"reason": "lost"})),
    (
        "provisionally_reported",
        ("agency", "/v1/agency/cards/replacements", {"reason": "damaged"}),
    ),
    ("formally_reported", ("me", "/v1/me/card/loss-reports", {})),
    ("formally_reported", ("agency", "/v1/agency/cards/loss-reports/cancel", {})),
    ("formally_reported", ("agency", "/v1/agency/cards/loss-reports/formal", {})),
    ("formally_reported", ("agency", "/v1/agency/cards/replacements", {"reason": "damaged"})),
]
STEPS = {
    "active": [],
    "provisionally_reported": ["/v1/agency/cards/loss-reports"],
    "formally_reported": ["/v1/agency/cards/loss-reports", "/v1/agency/cards/loss-reports/formal"],
}


async def test_refused_transitions_change_nothing(client: Client, runtime: Runtime) -> None:
    channel = await add_client(runtime, "channel")
    agency = bearer(await client_token(client, *await add_client(runtime, "agency")))
    for state, (who, path, extra) in REFUSED:
        _, id_number = await add_person(runtime, name="冯十三")
        me = bearer(await person_token(client, runtime, channel, id_number, "冯十三"))
        body = {"id_number": id_number}
        for step in ["/v1/agency/cards/issue", *STEPS[state]]:
            assert (await client.post(step, json=body, headers=agency)).status_code < 300
        before = (await client.get("/v1/me/card", headers=me)).json()
        if who == "me":
            response = await client.post(path, headers=me)
        else:
            response = await client.post(path, json={**body, **extra}, headers=agency)
        assert (response.status_code, response.json()["code"]) == (409, "card_state"), (
            state,
            path,
        )
        after = (await client.get("/v1/me/card", headers=me)).json()
        assert after == before, (state, path)


async def test_damage_replacement_and_errata(client: Client, runtime: Runtime) -> None:
    person, agency = await _with_card(client, runtime)
    body = {"id_number": person.id_number}
    damaged = await client.post(
        "/v1/agency/cards/replacements", json={**body, "reason": "damaged"}, headers=agency
    )
    assert damaged.status_code == 201
    assert damaged.json()["history"][0]["action"] == "replaced_damaged"
    renamed = await client.post(
        "/v1/agency/cards/errata", json={**body, "name": "钱拾壹"}, headers=agency
    )
    assert renamed.json()["number"] == damaged.json()["number"]  # one field: same card
    corrected = new_id_number("370102", dt.date(1981, 2, 3))
    both = await client.post(
        "/v1/agency/cards/errata",
        json={**body, "name": "钱十一", "new_id_number": corrected},
        headers=agency,
    )
    assert both.status_code == 200
    assert both.json()["number"] != damaged.json()["number"]  # both wrong: a new card
    moved = await client.post(
        "/v1/agency/cards/loss-reports", json={"id_number": person.id_number}, headers=agency
    )
    assert moved.status_code == 404  # the old number no longer finds anybody
    by_new = await client.post(
        "/v1/agency/cards/loss-reports", json={"id_number": corrected}, headers=agency
    )
    assert by_new.json()["status"] == "provisionally_reported"
    assert corrected not in by_new.text
    empty = await client.post(
        "/v1/agency/cards/errata", json={"id_number": corrected}, headers=agency
    )
    assert (empty.status_code, empty.json()["code"]) == (400, "validation_failed")


async def test_a_person_sees_only_their_own_card(client: Client, runtime: Runtime) -> None:
    await _with_card(client, runtime)
    stranger = await holder(client, runtime, name="孙十二")
    response = await client.get("/v1/me/card", headers=stranger.headers)
    assert (response.status_code, response.json()["code"]) == (404, "no_card")
    report = await client.post("/v1/me/card/loss-reports", headers=stranger.headers)
    assert report.status_code == 404


@pytest.mark.parametrize(("typed", "asserted"), [("秦 华", "秦华"), ("秦华", "秦　华 ")])
async def test_finding_15_errata_spacing_does_not_lock_the_person_out(
    client: Client, runtime: Runtime, typed: str, asserted: str
) -> None:
    person, agency = await _with_card(client, runtime)
    renamed = await client.post(
        "/v1/agency/cards/errata",
        json={"id_number": person.id_number, "name": typed},
        headers=agency,
    )
    assert renamed.status_code == 200, renamed.text
    async with runtime.sessions() as session:
        row = await session.get(Person, person.person_id)
        assert row is not None
        assert person_name(runtime.cipher, row) == "秦华"  # stored normalised, once
    channel = await add_client(runtime, "channel")
    # person_token asserts a 200: the person signs in with the name however it is spaced.
    await person_token(client, runtime, channel, person.id_number, asserted)
