"""Health, readiness, metrics, OpenAPI, problem+json shape, size limits, request ids."""

from __future__ import annotations

import asyncio

from ecert.config import Settings
from tests.conftest import AppFactory, open_client
from tests.helpers import Client
from tests.servers import free_port


async def test_health_and_ready(client: Client) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "store": "ok"}


async def test_ready_reports_redis_down_quickly(make_app: AppFactory) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with open_client(app) as test_client:
        async with asyncio.timeout(5):
            response = await test_client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["store"] == "down"
        assert response.json()["database"] == "ok"
        assert (await test_client.get("/healthz")).status_code == 200


async def test_problem_json_shape(client: Client) -> None:
    response = await client.get("/v1/nowhere", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["x-request-id"] == "abc-123"
    body = response.json()
    assert body["code"] == "not_found"
    assert body["status"] == 404
    assert body["type"] == "urn:ecert:problem:not_found"
    assert body["request_id"] == "abc-123"
    assert body["instance"] == "/v1/nowhere"


async def test_insane_request_id_is_replaced(client: Client) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "x" * 500})
    assert len(response.headers["x-request-id"]) == 32


async def test_oversized_body_is_413(client: Client, settings: Settings) -> None:
    body = "grant_type=" + "x" * (settings.max_body_bytes + 10)
    response = await client.post(
        "/oauth/token",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_openapi_and_metrics(client: Client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/oauth/token" in schema["paths"]
    assert "/healthz" in schema["paths"]
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "ecert" in metrics.text
