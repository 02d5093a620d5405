"""Logs carry request facts, never personal data."""

from __future__ import annotations

import structlog

from ecert.runtime import Runtime
from tests.conftest import AppFactory, open_client
from tests.helpers import JWT_BEARER, Client, add_client, add_person, person_assertion


async def test_request_logs_have_no_id_number_or_name(make_app: AppFactory) -> None:
    app = make_app(log_level="INFO")
    async with open_client(app) as client:
        await _exercise(client, app.state.runtime)


async def _exercise(client: Client, runtime: Runtime) -> None:
    channel_id, secret = await add_client(runtime, "channel")
    _, id_number = await add_person(runtime, name="钱多多")
    good = person_assertion(
        channel_id, secret, id_number, "钱多多", audience=runtime.settings.issuer_url
    )
    bad = person_assertion(
        channel_id, secret, id_number, "钱少少", audience=runtime.settings.issuer_url
    )
    with structlog.testing.capture_logs() as logs:
        for assertion in (good, bad):
            await client.post(
                "/oauth/token",
                data={"grant_type": JWT_BEARER, "assertion": assertion},
                auth=(channel_id, secret or ""),
            )
    requests = [entry for entry in logs if entry.get("event") == "request"]
    assert len(requests) == 2
    assert {entry["status"] for entry in requests} == {200, 400}
    text = repr(logs)
    for secret_value in (id_number, id_number[:-1], "钱多多", "钱少少"):
        assert secret_value not in text
