"""Rate limits per principal: 429 past the limit, spoofing no reset, store-down fallback."""

from __future__ import annotations

from tests.conftest import AppFactory, open_client
from tests.servers import free_port


async def _limited_app_requests(make_app: AppFactory, n: int, **overrides: object) -> list[int]:
    app = make_app(rate_limit_per_minute=3, **overrides)
    statuses = []
    async with open_client(app) as http:
        for i in range(n):
            response = await http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                headers={"X-Forwarded-For": f"10.0.0.{i}"},
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.json()["code"] == "rate_limited"
                assert int(response.headers["retry-after"]) > 0
    return statuses


async def test_limit_applies_and_spoofed_forwarded_for_does_not_reset(make_app: AppFactory) -> None:
    statuses = await _limited_app_requests(make_app, 5)
    # Window edges can split the run; at most 3 per window, so at least one of 5 is refused.
    assert statuses.count(429) >= 1
    assert all(s in (401, 429) for s in statuses)


async def test_limit_falls_back_locally_when_the_store_is_down(make_app: AppFactory) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    statuses = await _limited_app_requests(make_app, 5, redis_url=dead)
    assert statuses.count(429) >= 1


async def test_health_probes_are_not_limited(make_app: AppFactory) -> None:
    app = make_app(rate_limit_per_minute=1)
    async with open_client(app) as http:
        for _ in range(3):
            assert (await http.get("/healthz")).status_code == 200
