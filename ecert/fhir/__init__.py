"""FHIR R4B face (spec §8): CapabilityStatement, eligibility and claims over the §7 services."""
