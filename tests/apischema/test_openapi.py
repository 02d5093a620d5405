"""The served OpenAPI schema: valid, readable operation ids, problem+json errors with their
codes, typed money bodies."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Litestar, get, post
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from openapi_spec_validator import validate

from ecert.apischema.document import document
from ecert.apischema.operation_ids import OPERATION_IDS
from ecert.apischema.raises import codes_raised
from ecert.errorcodes import CODES
from ecert.errors import ValidationFailed
from ecert.server.auth import institution_guard
from ecert.settlement.controllers import SettlementController
from tests.helpers import Client

MONEY = {
    "settleBill": "201",
    "reverseSettlement": "201",
    "openVisit": "201",
    "settleVisit": "201",
    "previewSettlement": "200",
    "previewVisitSettlement": "200",
    "getSettlement": "200",
    "getReconciliation": "200",
    "checkReconciliation": "200",
}


async def _schema(client: Client) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


def _operations(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for item in schema["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and "operationId" in operation:
                found[operation["operationId"]] = operation
    return found


async def test_the_schema_is_valid_openapi(client: Client) -> None:
    schema = await _schema(client)
    validate(schema)  # raises on an invalid document
    assert schema["components"]["schemas"]["Problem"]["required"] == [
        "type",
        "title",
        "status",
        "code",
        "instance",
    ]


async def test_operation_ids_read_like_names(client: Client) -> None:
    operations = _operations(await _schema(client))
    assert len(operations) > 50
    for name in operations:
        assert name in OPERATION_IDS.values(), f"{name}: add it to OPERATION_IDS"
        assert re.fullmatch(r"[a-z][A-Za-z]+", name)
    assert {"settleVisit", "mintQrPng", "verifyQr", "reverseSettlement"} <= set(operations)


#: Faces whose refusals keep their own standard's shape: the national interface (−1 envelopes,
#: docs/national-interface.md) and FHIR (OperationOutcome, docs/fhir.md).
OWN_ERROR_SHAPES = {
    "callNationalService",
    "getFhirCapabilityStatement",
    "submitCoverageEligibilityRequest",
    "submitClaim",
}


async def test_own_error_shapes_are_documented_as_such(client: Client) -> None:
    operations = _operations(await _schema(client))
    for name in OWN_ERROR_SHAPES:
        errors = {s: r for s, r in operations[name]["responses"].items() if s[0] in "45"}
        assert {"429", "500", "503"} <= set(errors), name
        for status, response in errors.items():
            assert "application/problem+json" not in response["content"], (name, status)


async def test_every_error_is_problem_json_with_registered_codes(client: Client) -> None:
    operations = _operations(await _schema(client))
    for name, operation in operations.items():
        if name in OWN_ERROR_SHAPES:
            continue
        errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
        assert {"500", "503"} <= set(errors), name
        for status, response in errors.items():
            assert list(response["content"]) == ["application/problem+json"], (name, status)
            schema = response["content"]["application/problem+json"]["schema"]
            assert schema["allOf"] == [{"$ref": "#/components/schemas/Problem"}]
            codes = schema["properties"]["code"]["enum"]
            assert codes, (name, status)
            for code in codes:
                assert CODES[code].status == int(status), (name, code)
    settle = operations["settleVisit"]["responses"]
    assert (
        "idempotency_conflict"
        in settle["422"]["content"]["application/problem+json"]["schema"]["properties"]["code"][
            "enum"
        ]
    )
    verify = operations["verifyQr"]["responses"]["422"]["content"]["application/problem+json"]
    assert {"qr_expired", "qr_signature_invalid", "not_enrolled"} <= set(
        verify["schema"]["properties"]["code"]["enum"]
    )
    assert "Retry-After" in settle["503"]["headers"]
    assert "unauthorized" not in str(operations["getJwks"]["responses"])
    assert operations["getJwks"]["security"] == []


async def test_money_bodies_are_typed(client: Client) -> None:
    schema = await _schema(client)
    components = schema["components"]["schemas"]
    operations = _operations(schema)

    def check(node: Any, where: str, seen: set[str]) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if name not in seen:
                    seen.add(name)
                    check(components[name], name, seen)
                return
            if node.get("type") == "object":
                typed = "properties" in node or isinstance(node.get("additionalProperties"), dict)
                assert typed, f"untyped object in {where}"
            for value in node.values():
                check(value, where, seen)
        elif isinstance(node, list):
            for value in node:
                check(value, where, seen)

    for name, status in MONEY.items():
        body = operations[name]["responses"][status]["content"]["application/json"]["schema"]
        assert "$ref" in body, name
        check(body, name, set())
    reversal = operations["reverseSettlement"]["responses"]["201"]["content"]
    assert reversal["application/json"]["schema"]["$ref"].endswith("ReversalReply")


def test_a_route_keeps_the_error_responses_it_declares() -> None:
    """A face with its own error format (FHIR's OperationOutcome) declares it; the rest of its
    errors (authentication, rate limit) are still problem+json."""

    class Outcome(msgspec.Struct):
        issue: list[str]

    @post("/own", responses={422: ResponseSpec(Outcome, description="OperationOutcome")})
    async def own(data: JSONBody[dict[str, str]]) -> None:
        raise ValidationFailed

    @get("/plain", guards=[institution_guard])
    async def plain() -> None:
        return None

    app = Litestar([own, plain], openapi_config=OpenAPIConfig(title="t", version="1"))
    schema = app.openapi_schema.to_schema()
    document(app, schema, public_paths=["^/own"])
    own_errors = schema["paths"]["/own"]["post"]["responses"]
    assert own_errors["422"]["description"] == "OperationOutcome"
    assert "validation_failed" in str(own_errors["400"])
    assert "401" not in own_errors  # public
    plain_errors = schema["paths"]["/plain"]["get"]["responses"]
    assert "forbidden" in str(plain_errors["403"])
    assert "unauthorized" in str(plain_errors["401"])
    validate(schema)


def test_the_walk_follows_helpers_objects_and_guards() -> None:
    settle = codes_raised(SettlementController.settle.fn)
    assert {"med_type_not_allowed", "ec_token_spent", "idempotency_conflict"} <= settle
    assert "fee_line_conflict" not in settle
    assert codes_raised(institution_guard) >= {"forbidden"}
