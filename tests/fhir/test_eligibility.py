"""CoverageEligibilityRequest → Response: the figures of the native lookups, for both callers."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.coverageeligibilityresponse import CoverageEligibilityResponse
from fhir.resources.R4B.operationoutcome import OperationOutcome

from ecert.db.models import Person
from ecert.server.runtime import Runtime
from tests.fhir.builders import FHIR, claim, eligibility, fen, scanned
from tests.helpers import Client
from tests.settlement.visit_steps import AMOXICILLIN, COSMETIC, line, setup

PERSON = "urn:ecert:person"


def _benefits(body: dict[str, Any]) -> dict[str, int]:
    """``<category>.<benefit type>.allowed|used`` → fen."""
    out: dict[str, int] = {}
    for entry in body["insurance"][0]["item"]:
        category = entry["category"]["coding"][0]["code"]
        for benefit in entry["benefit"]:
            kind = benefit["type"]["coding"][0]["code"]
            for side in ("allowed", "used"):
                if f"{side}Money" in benefit:
                    out[f"{category}.{kind}.{side}"] = fen(benefit[f"{side}Money"])
    return out


async def _native(client: Client, headers: dict[str, str]) -> dict[str, int]:
    benefits = (await client.get("/v1/me/benefits", headers=headers)).json()
    account = (await client.get("/v1/me/account", headers=headers)).json()
    out = {"account.balance.allowed": account["balance"]}
    for care in ("outpatient", "inpatient"):
        out[f"{care}.deductible.allowed"] = benefits[care]["deductible"]
        out[f"{care}.deductible.used"] = benefits[care]["deductible_used"]
        out[f"{care}.benefit.allowed"] = benefits[care]["cap"]
        out[f"{care}.benefit.used"] = benefits[care]["fund_paid"]
    return out


async def test_an_institution_asks_by_ec_token_before_and_after_settling(
    client: Client, runtime: Runtime
) -> None:
    person, _, token, headers = await scanned(client, runtime)
    url = "/fhir/CoverageEligibilityRequest/$submit"
    before = await client.post(url, json=eligibility(token), headers=headers)
    assert before.status_code == 200, before.text
    assert before.headers["content-type"].startswith("application/fhir+json")
    parsed = CoverageEligibilityResponse.model_validate_json(before.content)
    insurance = parsed.insurance[0]  # type: ignore[index]
    assert insurance.inforce is True
    assert insurance.coverage.display == "310"
    assert _benefits(before.json()) == await _native(client, person.headers)
    assert _benefits(before.json())["account.balance.allowed"] == 50_000

    fees = [line("1", AMOXICILLIN, "4", 25_000), line("2", COSMETIC, "1", 1_000)]
    settled = await client.post(
        "/fhir/Claim/$submit", json=claim(token, fees, identifier="E-1"), headers=headers
    )
    assert settled.status_code == 200, settled.text
    # The token is spent on the visit; it still names the visit's person here.
    after = await client.post(url, json=eligibility(token), headers=headers)
    assert after.status_code == 200, after.text
    assert _benefits(after.json()) == await _native(client, person.headers)
    assert _benefits(after.json()) != _benefits(before.json())


async def test_a_channel_asks_for_its_person_by_number(client: Client, runtime: Runtime) -> None:
    person, hospital = await setup(client, runtime)
    other, _ = await setup(client, runtime, code="H37010200009")
    async with runtime.sessions() as session:
        mine = await session.get(Person, person.person_id)
        theirs = await session.get(Person, other.person_id)
        assert mine is not None
        assert theirs is not None
    url = "/fhir/CoverageEligibilityRequest/$submit"
    headers = {**person.headers, **FHIR}
    response = await client.post(url, json=eligibility(mine.person_no, PERSON), headers=headers)
    assert response.status_code == 200, response.text
    CoverageEligibilityResponse.model_validate_json(response.content)
    assert _benefits(response.json()) == await _native(client, person.headers)
    assert person.id_number not in response.text

    refused = await client.post(url, json=eligibility(theirs.person_no, PERSON), headers=headers)
    assert refused.status_code == 403
    outcome = OperationOutcome.model_validate_json(refused.content)
    assert outcome.issue[0].details.coding[0].code == "forbidden"  # type: ignore[index,union-attr]
    # Institutions name patients by a scanned code's ec_token, not by person number.
    by_number = await client.post(
        url, json=eligibility(mine.person_no, PERSON), headers={**hospital, **FHIR}
    )
    assert by_number.status_code == 403
