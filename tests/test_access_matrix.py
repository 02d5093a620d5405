"""Every route × every kind of caller, generated from the OpenAPI schema.

A route that matches no rule below fails the test, so a new route cannot escape the matrix; a
caller outside a route's audience must never get a 2xx.
"""

from __future__ import annotations

import re
import uuid

import pytest

from ecert.server.runtime import Runtime
from tests.factories import add_client, add_person
from tests.fixtures.auth import bearer, client_token, person_token, province_token
from tests.helpers import Client

PUBLIC = "public"
#: (path pattern, callers allowed). First match wins.
RULES: list[tuple[str, frozenset[str]]] = [
    (r"^/oauth/token$", frozenset({PUBLIC})),
    (r"^/\.well-known/", frozenset({PUBLIC})),
    (r"^/v1/revocations$", frozenset({PUBLIC})),
    (r"^/(healthz|readyz|metrics)$", frozenset({PUBLIC})),
    (r"^/schema", frozenset({PUBLIC})),
    (r"^/(app|scanner|agency|web)(/|$)", frozenset({PUBLIC})),
    # Staff sign-in (its GET and DELETE need a staff session: tests/agency/test_staff.py).
    (r"^/v1/agency/session$", frozenset({PUBLIC})),
    (r"^/v1/demo/", frozenset({PUBLIC})),  # mounted only by `ecert demo`
    (r"^/v1/me(/|$)", frozenset({"person"})),
    (r"^/v1/(verify|settlements|reconciliation|visits)", frozenset({"hospital", "pharmacy"})),
    (r"^/v1/scanner/", frozenset({"hospital", "pharmacy"})),
    (r"^/v1/cards/", frozenset({"hospital", "pharmacy"})),
    (r"^/v1/agency/", frozenset({"agency"})),
    # Institutions by Bearer token or signed _api_* headers; refusals are -1 envelopes.
    (r"^/fsi/api/rsfComIfsService/callService$", frozenset({"hospital", "pharmacy"})),
    (r"^/fhir/metadata$", frozenset({PUBLIC})),
    (r"^/fhir/CoverageEligibilityRequest/", frozenset({"hospital", "pharmacy", "person"})),
    (r"^/fhir/Claim/", frozenset({"hospital", "pharmacy"})),
    (r"^/v1/clearing(/|$)", frozenset({"agency"})),
    (r"^/v1/federation/", frozenset({"province"})),
]
CALLERS = ("anonymous", "channel", "person", "hospital", "pharmacy", "agency", "province")


def audience(path: str) -> frozenset[str]:
    for pattern, allowed in RULES:
        if re.search(pattern, path):
            return allowed
    raise AssertionError(f"route {path} matches no access rule: add it to RULES")


async def _tokens(client: Client, runtime: Runtime) -> dict[str, dict[str, str]]:
    channel = await add_client(runtime, "channel")
    hospital = await add_client(runtime, "institution", code="H37010299001", level="3")
    pharmacy = await add_client(runtime, "institution", code="P37010299001", level="community")
    agency = await add_client(runtime, "agency")
    province = await province_token(client, runtime)
    _, id_number = await add_person(runtime, name="矩阵")
    return {
        "anonymous": {},
        "channel": bearer(await client_token(client, *channel)),
        "person": bearer(await person_token(client, runtime, channel, id_number, "矩阵")),
        "hospital": bearer(await client_token(client, *hospital)),
        "pharmacy": bearer(await client_token(client, *pharmacy)),
        "agency": bearer(await client_token(client, *agency)),
        "province": bearer(province),
    }


async def test_every_route_is_guarded_for_its_audience(client: Client, runtime: Runtime) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    tokens = await _tokens(client, runtime)
    checked = 0
    for path, operations in schema["paths"].items():
        allowed = audience(path)
        if PUBLIC in allowed:
            continue
        concrete = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        for method in operations:
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            for caller in CALLERS:
                if caller in allowed:
                    continue
                response = await client.request(
                    method.upper(), concrete, headers=tokens[caller], json={}
                )
                assert response.status_code in (401, 403), (method, path, caller, response.text)
                checked += 1
    assert checked > 0 or all(PUBLIC in audience(p) for p in schema["paths"])


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/me/ecert", {"person"}),
        ("/v1/verify", {"hospital", "pharmacy"}),
        ("/healthz", {PUBLIC}),
    ],
)
def test_rules_classify_known_routes(path: str, expected: set[str]) -> None:
    assert audience(path) == expected
