"""Rate limits per principal: 429 past the limit, spoofing no reset, store-down fallback."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from tests.factories import add_client
from tests.fixtures.app import AppFactory, open_client
from tests.fixtures.auth import bearer
from tests.servers import free_port


async def _limited_app_requests(make_app: AppFactory, n: int, **overrides: object) -> list[int]:
    app = make_app(peer_rate_limit_per_minute=3, **overrides)
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


async def _token(http: httpx.AsyncClient, creds: tuple[str, str | None]) -> httpx.Response:
    return await http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(creds[0], creds[1] or "")
    )


async def test_finding_09_public_documents_do_not_spend_the_token_budget(
    make_app: AppFactory,
) -> None:
    app = make_app(rate_limit_per_minute=5)
    async with open_client(app) as http:
        hospital = await add_client(app.state.runtime, "institution")
        for _ in range(20):  # a scanner fleet behind the hospital's one address
            jwks = await http.get("/.well-known/jwks.json")
            assert jwks.status_code == 200
            assert jwks.headers["cache-control"].startswith("public")
            feed = await http.get("/v1/revocations")
            assert feed.status_code == 200
            assert feed.headers["cache-control"].startswith("public")
        response = await _token(http, hospital)
        assert response.status_code == 200, response.text


async def test_finding_09_token_endpoint_counts_per_client(make_app: AppFactory) -> None:
    app = make_app(rate_limit_per_minute=2)
    async with open_client(app) as http:
        runtime = app.state.runtime
        busy = await add_client(runtime, "institution", rate_limit=3)
        other = await add_client(runtime, "institution")
        minute = int(time.time()) // 60
        statuses = [(await _token(http, busy)).status_code for _ in range(5)]
        # The same address, another client: its own budget, not the anonymous one of 2.
        others = [(await _token(http, other)).status_code for _ in range(4)]
        if int(time.time()) // 60 == minute:
            assert statuses == [200, 200, 200, 429, 429]
        assert others == [200] * 4


async def test_finding_09_client_quota_from_registration_travels_in_the_token(
    make_app: AppFactory,
) -> None:
    app = make_app(rate_limit_per_minute=2, client_rate_limit_per_minute=50)
    async with open_client(app) as http:
        runtime = app.state.runtime
        small = await add_client(runtime, "institution", rate_limit=4)
        large = await add_client(runtime, "institution")
        for creds, calls, limited in ((small, 6, True), (large, 12, False)):
            minute = int(time.time()) // 60
            token = (await _token(http, creds)).json()["access_token"]
            assert jwt.decode(token, options={"verify_signature": False}).get("rlm") == (
                4 if limited else None
            )
            statuses = [
                (await http.post("/v1/verify", json={"qr": "x"}, headers=bearer(token))).status_code
                for _ in range(calls)
            ]
            if int(time.time()) // 60 == minute:
                # The token request itself counts: 1 + 3 calls fit a quota of 4.
                assert (statuses.count(429) == 3) if limited else (429 not in statuses)


@pytest.mark.parametrize(
    ("trusted", "forwarded", "limited"),
    [
        ("", ["203.0.113.{i}"], True),  # no trusted proxy: the header is ignored
        ("127.0.0.1/32", ["203.0.113.{i}"], False),  # each real client its own budget
        ("127.0.0.1/32", ["203.0.113.{i}", "198.51.100.7"], True),  # rightmost untrusted hop
        ("127.0.0.0/8, 10.0.0.0/8", ["203.0.113.{i}", "10.1.2.3"], False),  # two proxies
        ("10.0.0.0/8", ["203.0.113.{i}"], True),  # the peer is not a trusted proxy
    ],
)
async def test_finding_09_forwarded_for_only_from_trusted_proxies(
    make_app: AppFactory, trusted: str, forwarded: list[str], limited: bool
) -> None:
    app = make_app(peer_rate_limit_per_minute=2, trusted_proxies=trusted)
    statuses = []
    async with open_client(app) as http:
        minute = int(time.time()) // 60
        for i in range(4):
            header = ", ".join(hop.format(i=i) for hop in forwarded)
            response = await http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                headers={"X-Forwarded-For": header},
            )
            statuses.append(response.status_code)
    if int(time.time()) // 60 == minute:
        assert (429 in statuses) is limited, statuses


async def test_finding_09_a_scanner_fleet_reads_the_feed_from_a_cache_without_a_limit(
    make_app: AppFactory,
) -> None:
    """Scanners behind one address mostly ask for the same page: those answers come from the
    worker's cache and are not counted; only pages that must be read from the database are."""
    app = make_app(peer_rate_limit_per_minute=5)
    async with open_client(app) as http:
        for _ in range(30):  # a fleet asking for the newest page, over the address's budget
            feed = await http.get("/v1/revocations?since=0")
            assert feed.status_code == 200, feed.text
        # Distinct pages cost database reads: those are bounded per address.
        statuses = [(await http.get(f"/v1/revocations?since={n}")).status_code for n in range(1, 9)]
        assert statuses.count(429) >= 1


async def test_ops_429_carries_the_request_id(make_app: AppFactory) -> None:
    app = make_app(peer_rate_limit_per_minute=1)
    async with open_client(app) as http:
        responses = [
            await http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                headers={"X-Request-ID": f"req-{i}"},
            )
            for i in range(3)
        ]
    limited = [(i, r) for i, r in enumerate(responses) if r.status_code == 429]
    assert limited
    for i, response in limited:
        assert response.headers["x-request-id"] == f"req-{i}"
        assert response.json()["request_id"] == f"req-{i}"
