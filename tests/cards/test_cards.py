"""Card lifecycle: provisional report, un-suspension, lapse by working days, formal report,
replacement, errata — and the e-cert keeps working throughout."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from ecert.cards.workdays import WorkdayCalendar, calendar
from ecert.db.models import Card, utcnow
from ecert.runtime import Runtime
from tests.factories import Holder, holder, institution
from tests.helpers import Client, add_client, bearer, client_token, new_id_number


def test_working_days_span_holidays_and_make_up_days() -> None:
    cal = calendar()
    # Reported Tue 30 Sep 2025: 1–8 Oct are the National Day holiday; Thu 9 and Fri 10 Oct are
    # the two working days, so the report lapses at the end of 10 Oct (Beijing time).
    assert cal.deadline(dt.datetime(2025, 9, 30, 4, tzinfo=dt.UTC), 2) == dt.datetime(
        2025, 10, 10, 16, tzinfo=dt.UTC
    )
    # Sat 11 Oct 2025 is a make-up workday: reported Fri 10 Oct, lapses end of Sat 11 Oct.
    assert cal.deadline(dt.datetime(2025, 10, 10, 4, tzinfo=dt.UTC), 1) == dt.datetime(
        2025, 10, 11, 16, tzinfo=dt.UTC
    )


def test_configuration_adds_years_the_package_does_not_know() -> None:
    cal = WorkdayCalendar({"2031": {"holidays": ["2031-01-01"], "workdays": ["2031-01-04"]}})
    assert cal.is_workday(dt.date(2031, 1, 1)) is False  # a Wednesday, but a holiday
    assert cal.is_workday(dt.date(2031, 1, 4)) is True  # a Saturday, but a make-up day
    assert cal.is_workday(dt.date(2031, 1, 5)) is False


async def _with_card(client: Client, runtime: Runtime) -> tuple[Holder, dict[str, str]]:
    person = await holder(client, runtime, name="钱十一")
    agency = bearer(await client_token(client, *await add_client(runtime, "agency")))
    issued = await client.post(
        "/v1/agency/cards/issue", json={"id_number": person.id_number}, headers=agency
    )
    assert issued.status_code == 201, issued.text
    return person, agency


async def test_provisional_report_and_unsuspension(client: Client, runtime: Runtime) -> None:
    person, _ = await _with_card(client, runtime)
    card = (await client.get("/v1/me/card", headers=person.headers)).json()
    assert card["status"] == "active"
    assert card["number"].startswith("*")
    reported = (await client.post("/v1/me/card/loss-reports", headers=person.headers)).json()
    assert reported["status"] == "provisionally_reported"
    assert reported["restores_at"] > reported["reported_at"]
    again = await client.post("/v1/me/card/loss-reports", headers=person.headers)
    assert again.json()["code"] == "card_state"
    # The e-cert keeps working while the card is reported lost.
    hospital = await institution(client, runtime)
    assert (
        await client.post("/v1/verify", json={"qr": await person.qr(client)}, headers=hospital)
    ).status_code == 200
    found = (await client.post("/v1/me/card/loss-reports/cancel", headers=person.headers)).json()
    assert found["status"] == "active"


async def test_report_lapses_without_a_formal_report(client: Client, runtime: Runtime) -> None:
    person, _ = await _with_card(client, runtime)
    await client.post("/v1/me/card/loss-reports", headers=person.headers)
    async with runtime.sessions.begin() as session:
        await session.execute(update(Card).values(lapse_at=utcnow() - dt.timedelta(minutes=1)))
    assert (await client.get("/v1/me/card", headers=person.headers)).json()["status"] == "active"


async def test_formal_report_freezes_then_replacement(client: Client, runtime: Runtime) -> None:
    person, agency = await _with_card(client, runtime)
    body = {"id_number": person.id_number}
    old = (await client.get("/v1/me/card", headers=person.headers)).json()["number"]
    await client.post("/v1/agency/cards/loss-reports", json=body, headers=agency)
    frozen = (
        await client.post("/v1/agency/cards/loss-reports/formal", json=body, headers=agency)
    ).json()
    assert frozen["status"] == "formally_reported"
    cancel = await client.post("/v1/me/card/loss-reports/cancel", headers=person.headers)
    assert cancel.json()["code"] == "card_state"  # a formal report cannot be undone
    new = await client.post(
        "/v1/agency/cards/replacements", json={**body, "reason": "lost"}, headers=agency
    )
    assert new.status_code == 201
    assert new.json()["status"] == "active"
    assert new.json()["number"] != old
    shown = (await client.get("/v1/me/card", headers=person.headers)).json()
    assert shown["number"] == new.json()["number"]


async def test_damage_replacement_and_errata(client: Client, runtime: Runtime) -> None:
    person, agency = await _with_card(client, runtime)
    body = {"id_number": person.id_number}
    damaged = await client.post(
        "/v1/agency/cards/replacements", json={**body, "reason": "damaged"}, headers=agency
    )
    assert damaged.status_code == 201
    lost_without_report = await client.post(
        "/v1/agency/cards/replacements", json={**body, "reason": "lost"}, headers=agency
    )
    assert lost_without_report.json()["code"] == "card_state"
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
        "/v1/agency/cards/issue", json={"id_number": person.id_number}, headers=agency
    )
    assert moved.status_code == 404  # the old number no longer finds anybody
