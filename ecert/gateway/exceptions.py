"""Refusals of the national face; each reaches the caller as ``infcode`` −1 with its ``code``."""

from __future__ import annotations

from ecert.errors import Conflict, EcertError, Forbidden, NotFound, Unauthorized, ValidationFailed


class EnvelopeMalformed(ValidationFailed):
    """Raised when the body is not a national request envelope (not JSON, no infno/msgid …)."""

    code = "envelope_malformed"
    title = "The request envelope is malformed"


class TransactionUnknown(ValidationFailed):
    """Raised for an ``infno`` this gateway does not offer."""

    code = "infno_unknown"
    title = "This transaction number is not supported"


class InputInvalid(ValidationFailed):
    """Raised when ``input`` lacks a field or holds one of the wrong shape."""

    code = "input_invalid"
    title = "The transaction input is not valid"


class AmountInvalid(ValidationFailed):
    """Raised for an amount that is not decimal yuan with at most two places."""

    code = "amount_invalid"
    title = "The amount is not decimal yuan with two places"


class CertTypeUnsupported(ValidationFailed):
    """Raised for an ``mdtrt_cert_type`` other than 01 (ecToken), 02 (ID number), 03 (card)."""

    code = "mdtrt_cert_type_unsupported"
    title = "This credential type is not supported here"


class SignatureInvalid(Unauthorized):
    """Raised when the ``_api_*`` headers are missing, unknown or do not verify."""

    code = "signature_invalid"
    title = "The gateway signature is not valid"


class SignatureExpired(Unauthorized):
    """Raised when ``_api_timestamp`` is more than five minutes from now."""

    code = "signature_expired"
    title = "The gateway signature's timestamp is too far from now"


class SignatureReplayed(Unauthorized):
    """Raised when a signature was seen before (each signed request works once)."""

    code = "signature_replayed"
    title = "This gateway signature was used before"


class InstitutionMismatch(Forbidden):
    """Raised when ``fixmedins_code`` names another institution than the caller's."""

    code = "fixmedins_mismatch"
    title = "fixmedins_code is not the calling institution"


class PersonNotFound(NotFound):
    """Raised by 1101 by ID number when no insured person has that number and name."""

    code = "person_not_found"
    title = "No insured person matches"


class CertMismatch(Conflict):
    """Raised when the credential named in 2204–2208 is not the one the visit was opened with."""

    code = "mdtrt_cert_mismatch"
    title = "The credential does not belong to this visit"


class SumMismatch(EcertError):
    """Raised when ``medfee_sumamt`` differs from the total of the visit's fee lines."""

    status = 422
    code = "medfee_sumamt_mismatch"
    title = "medfee_sumamt is not the total of the uploaded fee lines"
