"""CoverageEligibilityRequest → CoverageEligibilityResponse: the insurance in force, this year's
deductible and fund cap (allowed and used) and the account balance, from the ledger."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.coverageeligibilityrequest import CoverageEligibilityRequest
from fhir.resources.R4B.coverageeligibilityresponse import CoverageEligibilityResponse
from sqlalchemy.ext.asyncio import AsyncSession

from ecert import ledger
from ecert.benefits import CarePolicy
from ecert.db.models import utcnow
from ecert.errors import NotEnrolled
from ecert.fhir.codes import BENEFIT_CATEGORY, BENEFIT_TYPE, CURRENCY, INSURANCE_TYPE, yuan
from ecert.fhir.patients import person_of
from ecert.security.audit import record_audit
from ecert.security.tokens import Principal


def _money(fen: int) -> dict[str, Any]:
    return {"value": yuan(fen), "currency": CURRENCY}


def _code(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _care(kind: str, rules: CarePolicy, deductible_used: int, fund_paid: int) -> dict[str, Any]:
    return {
        "category": _code(BENEFIT_CATEGORY, kind),
        "benefit": [
            {
                "type": _code(BENEFIT_TYPE, "deductible"),
                "allowedMoney": _money(rules.deductible),
                "usedMoney": _money(deductible_used),
            },
            {
                "type": {**_code(BENEFIT_TYPE, "benefit"), "text": "annual fund cap"},
                "allowedMoney": _money(rules.cap),
                "usedMoney": _money(fund_paid),
            },
        ],
    }


async def check(
    session: AsyncSession, principal: Principal, request: CoverageEligibilityRequest
) -> CoverageEligibilityResponse:
    person = await person_of(session, principal, request.patient)
    answer: dict[str, Any] = {
        "resourceType": "CoverageEligibilityResponse",
        "status": "active",
        "purpose": request.purpose,
        "patient": request.patient.model_dump(exclude_none=True),
        "created": utcnow().isoformat(),
        "request": {"identifier": request.identifier[0].model_dump(exclude_none=True)}
        if request.identifier
        else {"display": "CoverageEligibilityRequest"},
        "outcome": "complete",
        "insurer": {"display": "ecert", "identifier": {"system": "urn:ecert:area"}},
    }
    try:
        enrolment, policy, year = await ledger.person_policy(session, person)
    except NotEnrolled:
        answer["insurer"]["identifier"]["value"] = person.area
        answer["disposition"] = "no insurance in force"
        answer["insurance"] = [{"coverage": {"display": "none"}, "inforce": False}]
        await record_audit(session, principal, person.id, "fhir.eligibility", "ok")
        return CoverageEligibilityResponse.model_validate(answer)
    used = await ledger.usage(session, person.id, year, enrolment.insurance_type)
    balance = await ledger.balance(session, person.id)
    items = [
        _care(
            "outpatient",
            policy.outpatient,
            used.outpatient_deductible_used,
            used.outpatient_fund_paid,
        ),
        _care(
            "inpatient", policy.inpatient, used.inpatient_deductible_used, used.inpatient_fund_paid
        ),
    ]
    if balance is not None:
        items.append(
            {
                "category": _code(BENEFIT_CATEGORY, "account"),
                "benefit": [
                    {
                        "type": {**_code(BENEFIT_CATEGORY, "balance"), "text": "account balance"},
                        "allowedMoney": _money(balance),
                    }
                ],
            }
        )
    answer["insurer"]["identifier"]["value"] = enrolment.area
    answer["insurance"] = [
        {
            "coverage": {
                "identifier": {"system": INSURANCE_TYPE, "value": enrolment.insurance_type},
                "display": enrolment.insurance_type,
            },
            "inforce": True,
            "benefitPeriod": {"start": f"{year}-01-01", "end": f"{year}-12-31"},
            "item": items,
        }
    ]
    await record_audit(session, principal, person.id, "fhir.eligibility", "ok")
    return CoverageEligibilityResponse.model_validate(answer)
