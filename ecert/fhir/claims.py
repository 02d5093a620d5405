"""A FHIR Claim read as the §7 requests it stands for: open the visit, its fee lines, settle.

ecert's Claim profile (docs/fhir.md): ``subType`` carries the national ``med_type``,
``facility`` the department, ``careTeam`` the doctor, ``diagnosis`` the diagnoses, an
identifier with system ``urn:ecert:his-visit-no`` the hospital's visit number, each ``item`` a
fee line (``sequence`` its line number, ``productOrService`` the list code, ``quantity``,
``unitPrice`` and ``net`` as CNY Money), extensions the booleans of the settle request.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec
from fhir.resources.R4B.claim import Claim, ClaimItem

from ecert.errors import ValidationFailed
from ecert.fhir.codes import (
    DEPT,
    DOCTOR,
    FIRST_SELF_PAY_RATIO,
    HIS_VISIT_NO,
    HOSPITAL_CODE,
    ITEM_CLASS,
    LIST_CODE,
    MED_TYPE,
    MUTUAL_AID,
    REFERRED,
    USE_ACCOUNT,
    fen,
)
from ecert.settlement.visits.schemas import FeeUpload, VisitCreate, VisitSettleRequest


@dataclass(frozen=True)
class ClaimRequest:
    """What a Claim asks of the §7 services."""

    use: str
    visit: VisitCreate
    fees: FeeUpload
    settle: VisitSettleRequest
    #: ``system|value`` of the Claim's own identifier (an idempotency key), if it has one.
    claim_id: str | None
    #: Claim.item sequence by line number, to answer item by item.
    sequences: dict[str, int]


def _coding(concept: Any, system: str) -> Any:
    for coding in getattr(concept, "coding", None) or []:
        if coding.system == system:
            return coding
    return None


def _first(codings: list[Any] | None) -> Any:
    return codings[0] if codings else None


def _flag(extensions: Any, url: str) -> bool:
    for ext in extensions or []:
        if ext.url == url:
            return bool(ext.valueBoolean)
    return False


def _decimal_extension(extensions: Any, url: str) -> Any:
    for ext in extensions or []:
        if ext.url == url:
            return ext.valueDecimal
    return None


def _line(item: ClaimItem) -> dict[str, Any]:
    where = f"item {item.sequence}"
    product = item.productOrService
    coding = _coding(product, LIST_CODE) or _first(product.coding)
    if coding is None or not coding.code:
        raise ValidationFailed(f"{where}: productOrService needs a coding with the list code")
    if item.quantity is None or item.quantity.value is None or item.unitPrice is None:
        raise ValidationFailed(f"{where}: quantity and unitPrice are required")
    line: dict[str, Any] = {
        "line_no": str(item.sequence),
        "list_code": coding.code,
        "name": coding.display or product.text or coding.code,
        "quantity": format(item.quantity.value, "f"),
        "unit_price": fen(item.unitPrice.value, item.unitPrice.currency, f"{where} unitPrice"),
    }
    if item.net is not None:
        line["amount"] = fen(item.net.value, item.net.currency, f"{where} net")
    hospital = _coding(product, HOSPITAL_CODE)
    if hospital is not None:
        line["hospital_code"] = hospital.code
    item_class = _coding(item.category, ITEM_CLASS)
    if item_class is not None:
        line["item_class"] = item_class.code
    ratio = _decimal_extension(item.extension, FIRST_SELF_PAY_RATIO)
    if ratio is not None:
        line["first_self_pay_ratio"] = float(ratio)
    return line


def _diagnoses(claim: Claim) -> list[dict[str, Any]]:
    out = []
    for d in claim.diagnosis or []:
        concept = d.diagnosisCodeableConcept
        coding = _first(concept.coding) if concept is not None else None
        if coding is None or not coding.code:
            raise ValidationFailed("each diagnosis needs diagnosisCodeableConcept with a code")
        types = {c.code for t in d.type or [] for c in t.coding or []}
        out.append(
            {
                "code": coding.code,
                "name": coding.display or coding.code,
                "main": "principal" in types,
            }
        )
    if out and not any(d["main"] for d in out):
        out[0]["main"] = True
    return out


def _visit(claim: Claim, ec_token: str) -> dict[str, Any]:
    med_type = _coding(claim.subType, MED_TYPE)
    if med_type is None:
        raise ValidationFailed(f"subType needs a coding with system {MED_TYPE}")
    ids = {i.system: i.value for i in claim.identifier or []}
    facility: Any = claim.facility
    dept = getattr(facility, "identifier", None)
    if dept is None or dept.system != DEPT or not dept.value:
        raise ValidationFailed(f"facility names the department by an identifier of {DEPT}")
    visit: dict[str, Any] = {
        "ec_token": ec_token,
        "med_type": med_type.code,
        "his_visit_no": ids.get(HIS_VISIT_NO),
        "dept_code": dept.value,
        "dept_name": facility.display or dept.value,
        "diagnoses": _diagnoses(claim),
    }
    for member in claim.careTeam or []:
        provider: Any = member.provider
        doctor = provider.identifier
        if doctor is not None and doctor.system == DOCTOR:
            visit["doctor_code"] = doctor.value
            visit["doctor_name"] = provider.display
            break
    if claim.billablePeriod is not None and claim.billablePeriod.start is not None:
        visit["admitted_at"] = claim.billablePeriod.start.isoformat()
    return {k: v for k, v in visit.items() if v is not None}


def _claim_id(claim: Claim) -> str | None:
    for identifier in claim.identifier or []:
        if identifier.system != HIS_VISIT_NO and identifier.value:
            key = f"{identifier.system or ''}|{identifier.value}"
            # Idempotency keys are at most 255 characters; a longer identifier is hashed.
            return key if len(key) <= 255 else hashlib.sha256(key.encode()).hexdigest()
    return None


def read(claim: Claim, ec_token: str) -> ClaimRequest:
    """The §7 requests of a Claim; ValidationFailed names what is missing or malformed."""
    if claim.use not in ("predetermination", "claim"):
        raise ValidationFailed("use must be predetermination or claim")
    items = claim.item or []
    try:
        visit = msgspec.convert(_visit(claim, ec_token), VisitCreate)
        fees = msgspec.convert({"lines": [_line(i) for i in items]}, FeeUpload)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(f"the claim does not map onto a visit: {exc}") from exc
    settle = VisitSettleRequest(
        use_account=_flag(claim.extension, USE_ACCOUNT),
        mutual_aid=_flag(claim.extension, MUTUAL_AID),
        referred=_flag(claim.extension, REFERRED),
    )
    return ClaimRequest(
        use=claim.use,
        visit=visit,
        fees=fees,
        settle=settle,
        claim_id=_claim_id(claim),
        sequences={str(i.sequence): int(i.sequence or 0) for i in items},
    )
