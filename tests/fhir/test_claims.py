"""Visits through FHIR give the native split to the fen; what ecert emits parses as R4B."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.claimresponse import ClaimResponse

from ecert.fhir.adjudication import LINE_SHARES, TOTALS
from ecert.server.runtime import Runtime
from tests.fhir.builders import by_code, claim, scanned
from tests.helpers import Client
from tests.settlement.visit_steps import (
    AMOXICILLIN,
    CEFIXIME,
    CONSULTATION,
    COSMETIC,
    line,
    load_catalogue,
    opened,
    settle,
    setup,
)

ALBUMIN = "XB05AAA010B002010100003"  # B, first self-pay 0.2, inpatient types only
BED = "120100001000000000000002"  # A, price cap 6,000 fen a day, inpatient types only

VISITS = {
    "outpatient": (
        "11",
        [
            line("1", CONSULTATION, "1", 1_500),
            line("2", AMOXICILLIN, "2", 1_250),
            line("3", CEFIXIME, "1.5", 3_333),
            line("4", COSMETIC, "1", 8_000),
        ],
    ),
    "inpatient": (
        "21",
        [
            line("1", AMOXICILLIN, "10", 1_250),
            line("2", ALBUMIN, "4", 45_000),
            line("3", BED, "5", 8_000),
            line("4", COSMETIC, "1", 20_000),
        ],
    ),
}


async def test_metadata_is_a_capability_statement(client: Client) -> None:
    response = await client.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    statement = CapabilityStatement.model_validate_json(response.content)
    assert statement.fhirVersion == "4.3.0"
    kinds = {r.type for r in statement.rest[0].resource}  # type: ignore[index,union-attr]
    assert kinds == {"Claim", "CoverageEligibilityRequest"}


async def _native(
    client: Client, runtime: Runtime, med_type: str, fees: list[dict[str, Any]]
) -> dict[str, Any]:
    person, hospital = await setup(client, runtime, balance=50_000, code="H37010200001")
    visit_id = await opened(client, runtime, person, hospital, med_type=med_type)
    sent = await client.post(f"/v1/visits/{visit_id}/fees", json={"lines": fees}, headers=hospital)
    assert sent.status_code == 200, sent.text
    settled = await settle(client, hospital, visit_id, {"use_account": True})
    assert settled.status_code == 201, settled.text
    return settled.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["outpatient", "inpatient"])
async def test_a_visit_through_fhir_splits_as_the_native_api(
    client: Client, runtime: Runtime, kind: str
) -> None:
    await load_catalogue(runtime)
    med_type, fees = VISITS[kind]
    native = await _native(client, runtime, med_type, fees)

    _, hospital, token, headers = await scanned(client, runtime, code="H37010200002")
    # Pre-settle (2206): opens the visit, uploads the lines, prices; nothing settled.
    body = claim(token, fees, use="predetermination", med_type=med_type)
    preview = await client.post("/fhir/Claim/$submit", json=body, headers=headers)
    assert preview.status_code == 200, preview.text
    assert preview.headers["content-type"].startswith("application/fhir+json")
    ClaimResponse.model_validate_json(preview.content)
    assert "payment" not in preview.json()
    # Settle (2207) with the Claim's identifier as the idempotency key.
    body = claim(token, fees, use="claim", med_type=med_type, identifier="CLM-1")
    response = await client.post("/fhir/Claim/$submit", json=body, headers=headers)
    assert response.status_code == 200, response.text
    answer = ClaimResponse.model_validate_json(response.content)
    assert answer.outcome == "complete"
    assert answer.request.identifier.value == "CLM-1"  # type: ignore[union-attr]
    settled = response.json()

    totals = by_code(settled["total"])
    assert totals == {f: native[f] for f in TOTALS}
    assert by_code(preview.json()["total"]) == totals
    assert totals["total"] == sum(
        totals[f] for f in ("fund_paid", "account_paid", "account_mutual_aid_paid", "cash_paid")
    )
    lines = {str(i["itemSequence"]): by_code(i["adjudication"]) for i in settled["item"]}
    for native_line in native["lines"]:
        shares = lines[native_line["line_no"]]
        assert shares == {
            "total": native_line["amount"],
            **{f: native_line[f] for f in LINE_SHARES},
        }
    paid = native["fund_paid"] + native["account_paid"] + native["account_mutual_aid_paid"]
    assert round(float(settled["payment"]["amount"]["value"]) * 100) == paid
    sid = next(i["value"] for i in settled["identifier"] if i["system"] == "urn:ecert:settlement")
    stored = await client.get(f"/v1/settlements/{sid}", headers=hospital)
    assert stored.status_code == 200, stored.text

    # A retry (same Claim, same identifier) answers the stored response and settles nothing.
    again = await client.post("/fhir/Claim/$submit", json=body, headers=headers)
    assert again.status_code == 200, again.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == settled


async def test_lines_an_earlier_claim_sent_stay_on_the_visit(
    client: Client, runtime: Runtime
) -> None:
    _, _, token, headers = await scanned(client, runtime)
    fees = [line("1", AMOXICILLIN, "2", 1_250), line("2", COSMETIC, "1", 8_000)]
    body = claim(token, fees, use="predetermination")
    assert (await client.post("/fhir/Claim/$submit", json=body, headers=headers)).is_success
    # The claim names only line 1: line 2 (held since the pre-settlement) is settled too.
    response = await client.post(
        "/fhir/Claim/$submit", json=claim(token, fees[:1], identifier="L-1"), headers=headers
    )
    assert response.status_code == 200, response.text
    settled = response.json()
    assert [i["itemSequence"] for i in settled["item"]] == [1, 2]
    assert by_code(settled["total"])["total"] == 2_500 + 8_000
