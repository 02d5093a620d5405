"""Logs carry request facts, never personal data."""

from __future__ import annotations

import logging

import pytest
import structlog
from sqlalchemy import select

from ecert.db.models import ECert
from ecert.issuance import services as issuance_services
from ecert.server.runtime import Runtime
from tests.factories import add_client, add_person
from tests.fixtures.app import AppFactory, open_client
from tests.fixtures.auth import JWT_BEARER, bearer, person_assertion, person_token
from tests.helpers import Client, metric


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


async def test_finding_14_database_error_logs_no_query_values(
    make_app: AppFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A unique violation through a route: the 500's log line names the error, not the values."""
    app = make_app(log_level="INFO")
    runtime: Runtime = app.state.runtime
    async with open_client(app) as client:
        channel = await add_client(runtime, "channel")
        first, second = await add_person(runtime), await add_person(runtime)
        tokens = [
            await person_token(client, runtime, channel, number, "张三")
            for _, number in (first, second)
        ]
        device = {"device_id": "device-9f3a77c1", "device_name": "Mate 60"}
        taken = await client.post("/v1/me/ecert", json=device, headers=bearer(tokens[0]))
        assert taken.status_code == 200
        async with runtime.sessions() as session:
            ecert = await session.scalar(select(ECert))
        assert ecert is not None
        # The second activation draws the first one's number and pseudonym: a unique violation.
        monkeypatch.setattr(issuance_services, "new_pseudonym", lambda: ecert.pseudonym)
        monkeypatch.setattr(issuance_services, "new_number", lambda _area: ecert.number)
        with caplog.at_level(logging.DEBUG):
            clash = await client.post("/v1/me/ecert", json=device, headers=bearer(tokens[1]))
    assert clash.status_code >= 400
    logged = capsys.readouterr().out + caplog.text
    assert "unhandled_error" in logged or clash.status_code < 500
    for value in (ecert.pseudonym, ecert.number, device["device_id"]):
        assert value not in logged, value


async def test_ops_middleware_refusals_are_logged_and_counted_with_their_true_status(
    make_app: AppFactory,
) -> None:
    """A 401 (authentication middleware) and a 429 (rate limit middleware): the request log and
    the request counter saw the problem response, not a 500 and a 200."""
    app = make_app(log_level="INFO", peer_rate_limit_per_minute=1)
    async with open_client(app) as client:
        before = (await client.get("/metrics")).text
        with structlog.testing.capture_logs() as logs:
            unauthorized = await client.get("/v1/me/ecert")
            # Limit 1: of three requests in at most two windows at least one is refused.
            tokens = [
                await client.post("/oauth/token", data={"grant_type": "client_credentials"})
                for _ in range(3)
            ]
        after = (await client.get("/metrics")).text
    limited = [r for r in tokens if r.status_code == 429]
    assert unauthorized.status_code == 401
    assert limited
    responses = [unauthorized, *tokens]
    lines = [entry for entry in logs if entry.get("event") == "request"]
    assert [(e["status"], e["request_id"]) for e in lines] == [
        (r.status_code, r.headers["x-request-id"]) for r in responses
    ]
    for status, path in (("401", "/v1/me/ecert"), ("429", "/oauth/token")):
        labels = {"status_code": status, "path": path}
        grown = metric(after, "ecert_requests_total", **labels) - metric(
            before, "ecert_requests_total", **labels
        )
        expected = sum(1 for r in responses if str(r.status_code) == status and r.url.path == path)
        assert grown == expected, (status, grown)
    ok = {"status_code": "200", "path": "/oauth/token"}
    assert metric(after, "ecert_requests_total", **ok) == metric(
        before, "ecert_requests_total", **ok
    )
