"""Refusals of routed (cross-province) calls."""

from __future__ import annotations

from ecert.errors import EcertError, ServiceUnavailable


class ProvinceUnavailable(ServiceUnavailable):
    """Raised when the insured person's province did not answer (down, timed out, 5xx).

    Retryable: nothing was recorded here, and a retry with the same Idempotency-Key reaches the
    same settlement there if the first attempt did settle."""

    code = "province_unavailable"
    title = "The insured person's province is unavailable; retry with the same Idempotency-Key"


class ProvinceNotTrusted(EcertError):
    """Raised when a code or ec_token belongs to a province that is not on our trust list."""

    status = 422
    code = "province_not_trusted"
    title = "The insured person's province is not on this ecert's trust list"


class FederationFileInvalid(ValueError):
    """The federation file is not what docs/federation.md describes."""
