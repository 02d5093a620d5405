"""The blocking wrapper of the SDK: same calls, same token handling, no event loop needed.

Against a stub of ecert (httpx.MockTransport): the app's database connections belong to the
test's own event loop, which a blocking client must not run in.
"""

from __future__ import annotations

import datetime as dt
import json

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.client import BlockingInstitutionClient, PrivateKeyJwt, ProblemError

DAY = {
    "date": "2026-12-01",
    "institution_code": "H37010200001",
    "settlements": {"count": 1, "total": 100, "fund_paid": 60, "account_paid": 0, "cash_paid": 40},
    "reversals": {},
    "net": {"count": 1, "total": 100, "fund_paid": 60, "account_paid": 0, "cash_paid": 40},
    "details": [],
}


def test_blocking_calls_share_one_token_and_raise_problems() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    seen: list[str] = []

    def ecert(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/oauth/token":
            form = dict(x.split("=", 1) for x in request.content.decode().split("&"))
            claims = jwt.decode(
                form["client_assertion"], key.public_key(), ["ES256"], audience="https://ecert"
            )
            assert claims["iss"] == claims["sub"] == "ins_1"
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        assert request.headers["Authorization"] == "Bearer t"
        if request.url.path == "/v1/reconciliation":
            return httpx.Response(200, json=DAY)
        problem: dict[str, object] = {
            "type": "urn:ecert:problem:visit_not_found",
            "title": "No such visit",
            "status": 404,
            "code": "visit_not_found",
            "instance": request.url.path,
        }
        return httpx.Response(
            404,
            content=json.dumps(problem),
            headers={"Content-Type": "application/problem+json"},
        )

    http = httpx.AsyncClient(transport=httpx.MockTransport(ecert), base_url="https://ecert")
    auth = PrivateKeyJwt("ins_1", key, audience="https://ecert")
    with BlockingInstitutionClient("https://ecert", auth, http=http) as client:
        day = client.reconciliation(dt.date(2026, 12, 1))
        assert (day.net.total, day.reversals.count) == (100, 0)
        with pytest.raises(ProblemError) as missing:
            client.get_visit("7d2c4a1e-0000-4000-8000-000000000000")
        assert (missing.value.status, missing.value.code) == (404, "visit_not_found")
    assert seen.count("/oauth/token") == 1
