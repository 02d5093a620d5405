"""One error base class; every domain error carries its HTTP status and a stable ``code``.

The app turns any :class:`EcertError` into an RFC 9457 ``application/problem+json`` response.
"""

from __future__ import annotations

from typing import Any, ClassVar


class EcertError(Exception):
    """Base of every error ecert reports to a client."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class ValidationFailed(EcertError):
    """Raised when a request body or parameter is malformed."""

    status = 400
    code = "validation_failed"
    title = "The request is not valid"


class Unauthorized(EcertError):
    """Raised when no valid access token or client credential was presented."""

    status = 401
    code = "unauthorized"
    title = "Authentication required"


class OAuthError(EcertError):
    """Base of the token endpoint's refusals: the problem also carries RFC 6749 §5.2's ``error``
    and ``error_description``, which OAuth client libraries show to their users."""

    oauth_error: ClassVar[str] = "invalid_request"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.extra.setdefault("error", self.oauth_error)
        self.extra.setdefault("error_description", self.detail)


class InvalidClient(OAuthError):
    """Raised by the token endpoint when client authentication fails (RFC 6749 §5.2)."""

    status = 401
    code = "invalid_client"
    title = "Client authentication failed"
    oauth_error = "invalid_client"


class InvalidGrant(OAuthError):
    """Raised by the token endpoint when a grant or assertion is invalid (RFC 6749 §5.2)."""

    status = 400
    code = "invalid_grant"
    title = "The grant is invalid"
    oauth_error = "invalid_grant"


class Forbidden(EcertError):
    """Raised when the caller is authenticated but may not do this."""

    status = 403
    code = "forbidden"
    title = "Not allowed for this caller"


class NotFound(EcertError):
    """Raised when the named resource does not exist or is not visible to the caller."""

    status = 404
    code = "not_found"
    title = "Not found"


class NotDesignated(Forbidden):
    """Raised when the institution is not designated: it may not verify, open visits or settle."""

    code = "institution_not_designated"
    title = "Only designated institutions may verify codes and settle"


class Conflict(EcertError):
    """Raised when the request conflicts with the current state."""

    status = 409
    code = "conflict"
    title = "Conflict with the current state"


class InvalidIdNumber(EcertError):
    """Raised when an ID number is malformed; the input is never echoed back."""

    status = 422
    code = "invalid_id_number"
    title = "The ID number is not valid"


class RateLimited(EcertError):
    """Raised when a principal exceeded its request budget."""

    status = 429
    code = "rate_limited"
    title = "Too many requests"


class ServiceUnavailable(EcertError):
    """Raised when a dependency needed for the answer is down."""

    status = 503
    code = "unavailable"
    title = "Service temporarily unavailable"


class NotEnrolled(EcertError):
    """Raised when the person holds no active enrolment (issuance and verification alike)."""

    status = 422
    code = "not_enrolled"
    title = "The person holds no active insurance enrolment"


class ECertSuspended(EcertError):
    """Raised when the person's e-certs are suspended (lost phone) until resumed."""

    status = 409
    code = "ecert_suspended"
    title = "The e-cert is suspended"


class ECertRevoked(EcertError):
    """Raised when the e-cert was unbound or the code belongs to a superseded binding."""

    status = 409
    code = "ecert_revoked"
    title = "The e-cert is revoked or the code is from an old binding"


#: Route option of a face whose errors are not problem+json (the national interface's −1
#: envelopes, FHIR's OperationOutcome): its ``responses=`` document every error it answers, and
#: the OpenAPI document (``ecert.apischema``) adds none of its own there.
OWN_ERROR_FORMAT = "own_error_format"
