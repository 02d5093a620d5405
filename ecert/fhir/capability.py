"""``GET /fhir/metadata``: what this FHIR endpoint offers (a CapabilityStatement)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from ecert import __version__
from ecert.fhir.codes import FHIR_VERSION

_SUBMIT = "urn:ecert:fhir:OperationDefinition:submit"


def _resource(kind: str, documentation: str) -> dict[str, Any]:
    return {
        "type": kind,
        "operation": [{"name": "submit", "definition": _SUBMIT, "documentation": documentation}],
    }


def capability_statement(issuer_url: str, published: dt.datetime) -> CapabilityStatement:
    """The statement; ``published`` is when this build started (its ``date``)."""
    base = issuer_url.rstrip("/") + "/fhir"
    return CapabilityStatement.model_validate(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": published.isoformat(),
            "kind": "instance",
            "software": {"name": "ecert", "version": __version__},
            "implementation": {"description": "ecert FHIR R4B face", "url": base},
            "fhirVersion": FHIR_VERSION,
            "format": ["application/fhir+json", "json"],
            "rest": [
                {
                    "mode": "server",
                    "documentation": "Bearer access tokens from the OAuth token endpoint "
                    "(/.well-known/oauth-authorization-server). Money is CNY in decimal yuan.",
                    "security": {
                        "service": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/"
                                        "restful-security-service",
                                        "code": "OAuth",
                                    }
                                ]
                            }
                        ]
                    },
                    "resource": [
                        _resource(
                            "CoverageEligibilityRequest",
                            "POST [base]/CoverageEligibilityRequest/$submit → "
                            "CoverageEligibilityResponse",
                        ),
                        _resource(
                            "Claim",
                            "POST [base]/Claim/$submit; use = predetermination (pre-settle) "
                            "or claim (settle, with an Idempotency-Key or a Claim.identifier) "
                            "→ ClaimResponse",
                        ),
                    ],
                }
            ],
        }
    )
