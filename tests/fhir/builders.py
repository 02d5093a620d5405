"""FHIR request bodies the way a hospital system would write them (ecert's profile)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ecert.server.runtime import Runtime
from tests.factories import Holder, ec_token
from tests.helpers import Client
from tests.settlement.visit_steps import line, setup

FHIR = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


async def scanned(
    client: Client, runtime: Runtime, **hospital: Any
) -> tuple[Holder, dict[str, str], str, dict[str, str]]:
    """A person (account 500 yuan) whose code a hospital scanned: (person, the hospital's
    headers, the ec_token, the hospital's FHIR headers)."""
    person, headers = await setup(client, runtime, balance=50_000, **hospital)
    token = await ec_token(client, runtime, person, headers)
    return person, headers, token, {**headers, **FHIR}


def patient(token: str, system: str = "urn:ecert:ec-token") -> dict[str, Any]:
    return {"identifier": {"system": system, "value": token}}


def _yuan(fen: int) -> float:
    return float(Decimal(fen) / 100)


def item(sequence: int, fee: dict[str, Any]) -> dict[str, Any]:
    """A Claim.item of a native fee line (money in decimal yuan)."""
    quantity = Decimal(fee["quantity"])
    body: dict[str, Any] = {
        "sequence": sequence,
        "productOrService": {
            "coding": [
                {"system": "urn:ecert:list-code", "code": fee["list_code"], "display": fee["name"]}
            ]
        },
        "quantity": {"value": float(quantity)},
        "unitPrice": {"value": _yuan(fee["unit_price"]), "currency": "CNY"},
    }
    if "item_class" in fee:
        body["category"] = {
            "coding": [{"system": "urn:ecert:item-class", "code": fee["item_class"]}]
        }
    return body


def claim(
    token: str,
    fees: list[dict[str, Any]],
    *,
    use: str = "claim",
    med_type: str = "11",
    use_account: bool = True,
    identifier: str | None = None,
) -> dict[str, Any]:
    identifiers = [{"system": "urn:ecert:his-visit-no", "value": "MZ20261201-0001"}]
    if identifier is not None:
        identifiers.append({"system": "urn:example:his:claim", "value": identifier})
    return {
        "resourceType": "Claim",
        "identifier": identifiers,
        "extension": [{"url": "urn:ecert:use-account", "valueBoolean": use_account}],
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "institutional" if med_type == "21" else "professional",
                }
            ]
        },
        "subType": {"coding": [{"system": "urn:ecert:med-type", "code": med_type}]},
        "use": use,
        "patient": patient(token),
        "created": "2026-12-01T09:30:00+08:00",
        "provider": {"display": "Test hospital"},
        "priority": {"coding": [{"code": "normal"}]},
        "facility": {"identifier": {"system": "urn:ecert:dept", "value": "A03"}, "display": "内科"},
        "careTeam": [
            {
                "sequence": 1,
                "provider": {
                    "identifier": {"system": "urn:ecert:doctor", "value": "D001"},
                    "display": "李医生",
                },
            }
        ],
        "diagnosis": [
            {
                "sequence": 1,
                "diagnosisCodeableConcept": {
                    "coding": [{"code": "J06.900", "display": "急性上呼吸道感染"}]
                },
                "type": [{"coding": [{"code": "principal"}]}],
            }
        ],
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "basic"}}],
        "item": [item(n, fee) for n, fee in enumerate(fees, start=1)],
    }


def eligibility(token: str, system: str = "urn:ecert:ec-token") -> dict[str, Any]:
    return {
        "resourceType": "CoverageEligibilityRequest",
        "status": "active",
        "purpose": ["benefits", "validation"],
        "patient": patient(token, system),
        "created": "2026-12-01T09:30:00+08:00",
        "insurer": {"display": "ecert"},
    }


def fen(money: dict[str, Any]) -> int:
    assert money["currency"] == "CNY"
    return int(Decimal(str(money["value"])) * 100)


def by_code(entries: list[dict[str, Any]]) -> dict[str, int]:
    """ecert's adjudication code → fen, of ``adjudication`` or ``total`` entries."""
    out = {}
    for entry in entries:
        code = next(
            c["code"]
            for c in entry["category"]["coding"]
            if c["system"] == "urn:ecert:adjudication"
        )
        out[code] = fen(entry["amount"])
    return out


__all__ = ["FHIR", "by_code", "claim", "eligibility", "fen", "item", "line", "patient", "scanned"]
