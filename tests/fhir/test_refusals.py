"""Refusals on the FHIR routes: OperationOutcome with ecert's code, and the native status."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

from ecert.server.runtime import Runtime
from tests.factories import add_client, ec_token
from tests.fhir.builders import FHIR, claim
from tests.fixtures.auth import bearer, client_token
from tests.helpers import Client
from tests.settlement.visit_steps import AMOXICILLIN, line, open_visit, setup, visit_body

FEES = [line("1", AMOXICILLIN, "1", 1_250)]
UNKNOWN_TOKEN = "370102" + "0" * 32


def _code(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/fhir+json"), response.text
    outcome = OperationOutcome.model_validate_json(response.content)
    coding = outcome.issue[0].details.coding[0]  # type: ignore[index,union-attr]
    assert coding.system == "urn:ecert:problem"
    return str(coding.code)


async def test_no_token_and_the_wrong_caller(client: Client, runtime: Runtime) -> None:
    anonymous = await client.post("/fhir/Claim/$submit", json=claim(UNKNOWN_TOKEN, FEES))
    assert (anonymous.status_code, _code(anonymous)) == (401, "unauthorized")
    channel = bearer(await client_token(client, *await add_client(runtime, "channel")))
    refused = await client.post(
        "/fhir/Claim/$submit", json=claim(UNKNOWN_TOKEN, FEES), headers={**channel, **FHIR}
    )
    assert (refused.status_code, _code(refused)) == (403, "forbidden")


#: Item changes a hospital system might get wrong, each refused before anything is written.
ITEM_CHANGES: dict[str, tuple[str, Any]] = {
    "money_places": ("unitPrice", {"value": 12.505, "currency": "CNY"}),
    "negative_money": ("unitPrice", {"value": -1, "currency": "CNY"}),
    "huge_money": ("unitPrice", {"value": 1e300, "currency": "CNY"}),
    "other_currency": ("unitPrice", {"value": 12.5, "currency": "USD"}),
    "no_price": ("unitPrice", None),
    "quantity_places": ("quantity", {"value": 1e-9}),
    "no_product_code": ("productOrService", {"text": "something"}),
}


@pytest.mark.parametrize(
    "case", ["media_type", "not_json", "not_fhir", "wrong_resource", "infinity", *ITEM_CHANGES]
)
async def test_malformed_requests(client: Client, runtime: Runtime, case: str) -> None:
    person, hospital = await setup(client, runtime)
    token = await ec_token(client, runtime, person, hospital)
    headers: dict[str, str] = {**hospital, **FHIR}
    body: Any = claim(token, FEES, identifier="M-1")
    expected = (400, "validation_failed")
    if case == "media_type":
        headers["Content-Type"] = "text/plain"
        expected = (415, "unsupported_media_type")
    elif case == "not_fhir":
        body = {"resourceType": "Claim", "use": "claim"}
    elif case == "wrong_resource":
        body = {"resourceType": "Patient"}
    elif case in ITEM_CHANGES:
        field, value = ITEM_CHANGES[case]
        body["item"][0][field] = value
        if case == "quantity_places":  # the native fee check's refusal
            expected = (422, "fee_quantity_invalid")
    raw = httpx.Request("POST", "/", json=body).content
    if case == "not_json":
        raw = b"{"
    elif case == "infinity":
        raw = raw.replace(b'"value":12.5', b'"value":Infinity')
    response = await client.post("/fhir/Claim/$submit", content=raw, headers=headers)
    assert (response.status_code, _code(response)) == expected
    # Nothing was opened: the token still opens a visit natively.
    opened = await open_visit(client, hospital, visit_body(token))
    assert opened.status_code == 201, opened.text


async def test_business_refusals_carry_the_native_status_and_code(
    client: Client, runtime: Runtime
) -> None:
    person, hospital = await setup(client, runtime)
    headers = {**hospital, **FHIR}
    native = await open_visit(client, hospital, visit_body(UNKNOWN_TOKEN))
    fhir = await client.post(
        "/fhir/Claim/$submit", json=claim(UNKNOWN_TOKEN, FEES, identifier="B-1"), headers=headers
    )
    assert (fhir.status_code, _code(fhir)) == (native.status_code, native.json()["code"])
    assert native.json()["code"] == "ec_token_invalid"

    # A claim needs an idempotency key: the header, or the Claim's own identifier.
    token = await ec_token(client, runtime, person, hospital)
    keyless = await client.post("/fhir/Claim/$submit", json=claim(token, FEES), headers=headers)
    assert (keyless.status_code, _code(keyless)) == (400, "idempotency_key_required")
    keyed = await client.post(
        "/fhir/Claim/$submit",
        json=claim(token, FEES),
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert keyed.status_code == 200, keyed.text
    # The same key with another claim is the native conflict.
    changed = claim(token, [*FEES, line("2", AMOXICILLIN, "2", 1_250)], identifier="B-2")
    first = await client.post("/fhir/Claim/$submit", json=changed, headers=headers)
    assert (first.status_code, _code(first)) == (409, "visit_not_open")
