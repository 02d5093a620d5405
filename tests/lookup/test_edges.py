"""Lookup edges: a page past the end still says how many there are; a person removed after
their token was issued gets a 404 from every lookup, not an empty answer."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from ecert.db.models import Person
from ecert.server.runtime import Runtime
from tests.factories import holder
from tests.helpers import Client
from tests.lookup.test_lookup import _settled_person

LOOKUPS = [
    "/v1/me/enrolment",
    "/v1/me/contributions",
    "/v1/me/account",
    "/v1/me/account/transactions",
    "/v1/me/settlements",
    "/v1/me/benefits",
]


async def test_a_page_past_the_end_still_counts(client: Client, runtime: Runtime) -> None:
    person, _, _ = await _settled_person(client, runtime)
    moves = await client.get("/v1/me/account/transactions?offset=50", headers=person.headers)
    assert moves.json()["items"] == []
    assert moves.json()["total"] == 2
    settled = await client.get("/v1/me/settlements?offset=5", headers=person.headers)
    assert settled.json()["items"] == []
    assert settled.json()["total"] == 1


@pytest.mark.parametrize("path", LOOKUPS)
async def test_a_removed_person_is_not_found(client: Client, runtime: Runtime, path: str) -> None:
    person = await holder(client, runtime, name="吴九")
    async with runtime.sessions.begin() as session:
        await session.execute(delete(Person).where(Person.id == person.person_id))
    response = await client.get(path, headers=person.headers)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not_found"
