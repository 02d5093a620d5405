"""Readable OpenAPI operation ids (``settleVisit``, not ``V1VisitsVisitIdSettlementsSettle``).

Code generators name their methods after these, so they are part of the contract: once published,
an id does not change. A route missing here keeps Litestar's id, and a test fails on it.
"""

from __future__ import annotations

from litestar._openapi.utils import default_operation_id_creator
from litestar.handlers import HTTPRouteHandler
from litestar.types import Method
from litestar.types.internal_types import PathParameterDefinition

#: Handler ``__qualname__`` → operation id.
OPERATION_IDS: dict[str, str] = {
    # Operations, OAuth, keys
    "HealthController.healthz": "getLiveness",
    "HealthController.readyz": "getReadiness",
    "TokenController.token": "getToken",
    "ServerMetadataController.metadata": "getOAuthServerMetadata",
    # Integration faces: the national interface and FHIR
    "GatewayController.call_service": "callNationalService",
    "FhirController.metadata": "getFhirCapabilityStatement",
    "FhirController.eligibility": "submitCoverageEligibilityRequest",
    "FhirController.claim": "submitClaim",
    # The agency's counter console
    "StaffSessionController.sign_in": "signInStaff",
    "StaffSessionController.me": "getStaffSession",
    "StaffSessionController.sign_out": "signOutStaff",
    "AgencyPersonController.search": "findPersonByIdNumber",
    "AgencyPersonController.file": "getPersonFile",
    "AgencyPersonController.audit": "getPersonAuditTrail",
    "AgencyKeysController.rotate": "rotateKeys",
    "AgencyReconciliationController.day": "getInstitutionDayReconciliation",
    "AgencyLookupController.enrolment": "getPersonEnrolment",
    "AgencyLookupController.contributions": "getPersonContributions",
    "AgencyLookupController.account": "getPersonAccount",
    "AgencyLookupController.transactions": "getPersonTransactions",
    "AgencyLookupController.card": "getPersonCard",
    # Provinces
    "ClearingController.month": "getClearingMonth",
    "ClearingController.sync": "syncClearingMonth",
    "FederationController.put_institution": "registerFederatedInstitution",
    "FederationController.entries": "listClearingEntriesForProvince",
    "PublicKeysController.jwks": "getJwks",
    "PublicKeysController.revocations": "listRevocations",
    # The person's e-cert
    "MyECertController.activate": "activateECert",
    "MyECertController.show": "getECert",
    "MyECertController.unbind": "unbindECert",
    "MyECertController.qr": "mintQr",
    "MyECertController.qr_png": "mintQrPng",
    "MyECertController.qr_svg": "mintQrSvg",
    "MyECertController.numeric": "mintNumericCode",
    "MyECertController.suspend": "suspendECert",
    "MyECertController.resume": "resumeECert",
    "FamilyController.request_link": "requestFamilyLink",
    "FamilyController.list_links": "listFamilyLinks",
    "FamilyController.consent": "consentFamilyLink",
    "FamilyController.end": "endFamilyLink",
    "FamilyController.qr": "mintFamilyQr",
    # Self-service lookups
    "LookupController.enrolment": "getEnrolment",
    "LookupController.contributions": "listContributions",
    "LookupController.account": "getAccount",
    "LookupController.transactions": "listAccountTransactions",
    "LookupController.benefits": "getBenefits",
    "LookupController.estimate": "estimateBill",
    "LookupController.settlements": "listMySettlements",
    "MutualAidController.authorise": "authoriseMutualAid",
    "MutualAidController.list_authorisations": "listMutualAid",
    "MutualAidController.revoke": "revokeMutualAid",
    "MyCardController.show": "getMyCard",
    "MyCardController.report": "reportMyCardLost",
    "MyCardController.cancel": "cancelMyCardLossReport",
    # Institutions: verify, settle, visits, reconciliation
    "VerifyController.verify": "verifyQr",
    "ScannerController.decode": "decodeQrImage",
    "CardCheckController.check": "checkCard",
    "SettlementController.preview": "previewSettlement",
    "SettlementController.settle": "settleBill",
    "SettlementController.show": "getSettlement",
    "SettlementController.reverse": "reverseSettlement",
    "VisitController.open_visit": "openVisit",
    "VisitController.show": "getVisit",
    "VisitController.cancel": "cancelVisit",
    "VisitController.add_fees": "addVisitFees",
    "VisitController.delete_fee": "deleteVisitFee",
    "VisitController.preview": "previewVisitSettlement",
    "VisitController.settle": "settleVisit",
    "ReconciliationController.day": "getReconciliation",
    "ReconciliationController.check": "checkReconciliation",
    "ReconciliationController.details": "streamReconciliationDetails",
    # Agency
    "AgencyECertController.suspend": "agencySuspendECert",
    "AgencyECertController.resume": "agencyResumeECert",
    "AgencyFamilyController.record": "agencyRecordFamilyConsent",
    "ImportController.import_batch": "importBatch",
    "AgencyCardController.issue": "issueCard",
    "AgencyCardController.report": "agencyReportCardLost",
    "AgencyCardController.formal": "freezeCard",
    "AgencyCardController.cancel": "agencyCancelCardLossReport",
    "AgencyCardController.replace": "replaceCard",
    "AgencyCardController.errata": "correctCard",
    "AgencyPolicyController.upsert": "upsertPolicies",
    # Demo only (ecert demo)
    "DemoController.person_token": "demoPersonToken",
}


def operation_id(
    route_handler: HTTPRouteHandler,
    http_method: Method,
    path_components: list[str | PathParameterDefinition],
) -> str:
    """The registered id of the handler; Litestar's own for an unregistered one."""
    name = OPERATION_IDS.get(route_handler.fn.__qualname__)  # bound or not, the same name
    if name is None:
        return default_operation_id_creator(route_handler, http_method, path_components)
    return name
