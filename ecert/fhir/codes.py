"""The identifier systems, extension URLs and codes ecert's FHIR resources use."""

from __future__ import annotations

from decimal import Decimal

from ecert.errors import ValidationFailed

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.3.0"  # R4B

#: Patient identifier systems: a verified scan's ec_token, or the opaque person number.
EC_TOKEN = "urn:ecert:ec-token"  # noqa: S105 - an identifier system, not a secret
PERSON = "urn:ecert:person"
#: Claim identifiers: the hospital's visit number; any other identifier names the claim itself.
HIS_VISIT_NO = "urn:ecert:his-visit-no"
MED_TYPE = "urn:ecert:med-type"
DEPT = "urn:ecert:dept"
DOCTOR = "urn:ecert:doctor"
LIST_CODE = "urn:ecert:list-code"
HOSPITAL_CODE = "urn:ecert:hospital-code"
ITEM_CLASS = "urn:ecert:item-class"
INSURANCE_TYPE = "urn:ecert:insurance-type"
SETTLEMENT = "urn:ecert:settlement"
VISIT = "urn:ecert:visit"
PROBLEM = "urn:ecert:problem"
#: ecert's adjudication categories: the §7 ``setlinfo`` field names.
ADJUDICATION = "urn:ecert:adjudication"
HL7_ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
BENEFIT_CATEGORY = "urn:ecert:benefit-category"
BENEFIT_TYPE = "http://terminology.hl7.org/CodeSystem/benefit-type"
#: Extensions on Claim (booleans of the §7 settle request) and on Claim.item.
USE_ACCOUNT = "urn:ecert:use-account"
MUTUAL_AID = "urn:ecert:mutual-aid"
REFERRED = "urn:ecert:referred"
FIRST_SELF_PAY_RATIO = "urn:ecert:first-self-pay-ratio"
BALANCE_AFTER = "urn:ecert:balance-after"

CURRENCY = "CNY"
_CENT = Decimal("0.01")


def yuan(fen: int) -> Decimal:
    """Integer fen as decimal yuan with two places (the FHIR Money value)."""
    return (Decimal(fen) / 100).quantize(_CENT)


def fen(value: Decimal | None, currency: str | None, what: str) -> int:
    """Decimal yuan (at most two places, CNY) as integer fen; anything else is refused."""
    if value is None:
        raise ValidationFailed(f"{what} needs a value")
    if currency not in (None, CURRENCY):
        raise ValidationFailed(f"{what} must be in {CURRENCY}")
    cents = value * 100
    if not cents.is_finite() or cents != cents.to_integral_value() or cents < 0:
        raise ValidationFailed(f"{what} must be non-negative yuan with at most two places")
    return int(cents)
