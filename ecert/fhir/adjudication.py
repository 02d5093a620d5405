"""A §7 settlement (or preview) as a ClaimResponse: each line's shares as item adjudication,
the bill's shares and payments as ``total``, what the payer pays the hospital as ``payment``.

Nothing is computed here but the sum of the pools the payer pays from; every figure is the
native reply's, converted from fen to CNY Money.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.claim import Claim
from fhir.resources.R4B.claimresponse import ClaimResponse

from ecert.db.models import utcnow
from ecert.fhir.codes import (
    ADJUDICATION,
    BALANCE_AFTER,
    CURRENCY,
    HIS_VISIT_NO,
    HL7_ADJUDICATION,
    SETTLEMENT,
    VISIT,
    yuan,
)

#: Each line's shares (they add up to the line's amount).
LINE_SHARES = ("fully_self_paid", "over_limit_self_paid", "first_self_paid", "eligible_amount")
#: The bill's figures (national ``setlinfo``), in the native reply's order.
TOTALS = (
    "total",
    *LINE_SHARES,
    "deductible_paid",
    "co_pay",
    "over_cap_self_paid",
    "fund_paid",
    "account_paid",
    "account_mutual_aid_paid",
    "cash_paid",
    "person_paid",
)
#: The standard category that means the same, where there is one.
_HL7 = {
    "total": "submitted",
    "eligible_amount": "eligible",
    "fund_paid": "benefit",
    "deductible_paid": "deductible",
    "co_pay": "copay",
}


def _money(fen: int) -> dict[str, Any]:
    return {"value": yuan(fen), "currency": CURRENCY}


def _category(field: str) -> dict[str, Any]:
    coding = [{"system": ADJUDICATION, "code": field}]
    if field in _HL7:
        coding.append({"system": HL7_ADJUDICATION, "code": _HL7[field]})
    return {"coding": coding}


def _item(sequence: int, line: dict[str, Any]) -> dict[str, Any]:
    adjudication = [{"category": _category("total"), "amount": _money(line["amount"])}]
    adjudication += [{"category": _category(f), "amount": _money(line[f])} for f in LINE_SHARES]
    return {"itemSequence": sequence, "adjudication": adjudication}


def _sequence(sequences: dict[str, int], line_no: str) -> int | None:
    """The Claim item of a visit line; a line an earlier Claim sent keeps its number as its
    sequence. A line uploaded natively under a non-numeric number has no item (it is still in
    ``total``)."""
    if line_no in sequences:
        return sequences[line_no]
    return int(line_no) if line_no.isdigit() and 0 < int(line_no) < 2**31 else None


def claim_response(
    claim: Claim, result: dict[str, Any], sequences: dict[str, int]
) -> ClaimResponse:
    """The ClaimResponse of the native §7 reply ``result`` to ``claim``."""
    identifiers = [{"system": VISIT, "value": str(result["visit_id"])}]
    if result.get("settlement_id"):
        identifiers.insert(0, {"system": SETTLEMENT, "value": str(result["settlement_id"])})
    settled = claim.use == "claim"
    answer: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "identifier": identifiers,
        "status": "active",
        "type": claim.type.model_dump(exclude_none=True),
        "use": claim.use,
        "patient": claim.patient.model_dump(exclude_none=True),
        "created": utcnow().isoformat(),
        "insurer": {"display": "ecert"},
        "outcome": "complete",
        "disposition": "settled" if settled else "priced; nothing settled",
        "item": [
            _item(sequence, line)
            for line in result["lines"]
            if (sequence := _sequence(sequences, line["line_no"])) is not None
        ]
        or None,
        "total": [{"category": _category(f), "amount": _money(result[f])} for f in TOTALS],
        "processNote": [
            {"number": n, "type": "display", "text": step["text_zh"]}
            for n, step in enumerate(result["steps"], start=1)
        ]
        or None,
    }
    own = [i for i in claim.identifier or [] if i.system != HIS_VISIT_NO]
    if own:  # the Claim's own identifier, not the visit number it carries
        answer["request"] = {"identifier": own[0].model_dump(exclude_none=True)}
    if result.get("balance_after") is not None:
        answer["extension"] = [
            {"url": BALANCE_AFTER, "valueMoney": _money(result["balance_after"])}
        ]
    if settled:
        # What the payer's pools pay the hospital; the person pays cash_paid at the desk.
        paid = result["fund_paid"] + result["account_paid"] + result["account_mutual_aid_paid"]
        answer["payment"] = {
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/ex-paymenttype",
                        "code": "complete",
                    }
                ]
            },
            "date": utcnow().date().isoformat(),
            "amount": _money(paid),
        }
    return ClaimResponse.model_validate({k: v for k, v in answer.items() if v is not None})
