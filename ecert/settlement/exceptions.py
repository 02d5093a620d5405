"""Refusals of the settlement domain, each with its stable code."""

from __future__ import annotations

from ecert.errors import EcertError, Forbidden, NotFound


class EcTokenInvalid(EcertError):
    """Raised when the ec_token is unknown."""

    status = 422
    code = "ec_token_invalid"
    title = "Unknown settlement token; verify the code again"


class EcTokenExpired(EcTokenInvalid):
    """Raised when the ec_token's lifetime is over."""

    code = "ec_token_expired"
    title = "The settlement token has expired; verify the code again"


class EcTokenSpent(EcertError):
    """Raised when the ec_token already opened its one settlement (or visit)."""

    status = 409
    code = "ec_token_spent"
    title = "This settlement token was already used; verify the code again"


class EcTokenWrongInstitution(Forbidden):
    """Raised when an ec_token is used by an institution other than the one that verified."""

    code = "ec_token_wrong_institution"
    title = "This settlement token belongs to another institution"


class MedTypeNotAllowed(EcertError):
    """Raised when the medical type does not fit the institution or the person."""

    status = 422
    code = "med_type_not_allowed"
    title = "This medical type is not allowed here or for this person"


class SettlementNotFound(NotFound):
    """Raised for an unknown settlement or one settled by another institution."""

    code = "settlement_not_found"
    title = "No such settlement for this institution"


class ReversalTooLarge(EcertError):
    """Raised when a reversal would exceed what is left of the settlement."""

    status = 422
    code = "reversal_exceeds_settlement"
    title = "The reversal exceeds what is left of the settlement"


class ReturnExceedsLine(EcertError):
    """Raised when a line would be returned beyond its quantity (returns accumulate)."""

    status = 422
    code = "return_exceeds_line"
    title = "The return exceeds what is left of the line"


class ReturnLineNotFound(EcertError):
    """Raised when a returned line is not a line of the settlement."""

    status = 422
    code = "return_line_not_found"
    title = "No such line in this settlement"


class ReturnNotPossible(EcertError):
    """Raised when lines cannot be returned: the settlement predates re-pricing (nothing kept
    to price it again), or it was partly reversed by amount (the two do not mix; a full
    cancel still works)."""

    status = 409
    code = "return_not_possible"
    title = "Lines of this settlement cannot be returned; reverse by amount or cancel it"


class ReversalModeConflict(EcertError):
    """Raised for an amount reversal of a settlement some of whose lines were returned."""

    status = 409
    code = "reversal_mode_conflict"
    title = "Lines of this settlement were returned; return lines or cancel the rest"


class IdempotencyKeyRequired(EcertError):
    """Raised when a money-moving request has no Idempotency-Key header."""

    status = 400
    code = "idempotency_key_required"
    title = "Send an Idempotency-Key header"


class IdempotencyConflict(EcertError):
    """Raised when a key is reused with a different request body."""

    status = 422
    code = "idempotency_conflict"
    title = "This Idempotency-Key was used with a different request"


class IdempotencyInProgress(EcertError):
    """Raised when the first request with this key is still running."""

    status = 409
    code = "idempotency_in_progress"
    title = "A request with this Idempotency-Key is still being processed"


class IdempotencyClaimLost(IdempotencyInProgress):
    """Raised when this attempt's stale claim was taken over by a retry while it ran; its work is
    rolled back and the retry's answer is the one stored (same code: ask again for it)."""

    title = "Another attempt with this Idempotency-Key took over; retry to get its answer"


class MutualAidNotAllowed(Forbidden):
    """Raised when the caller may not authorise mutual aid: only an employee or retired person
    with a personal account may let it pay for relatives (a resident has no account)."""

    code = "mutual_aid_not_allowed"
    title = "Only an employee or retiree with a personal account may authorise mutual aid"


class MutualAidSelf(EcertError):
    """Raised when a person names themselves as the relative."""

    status = 422
    code = "mutual_aid_self"
    title = "A person cannot authorise mutual aid for themselves"


class RelativeNotMatched(EcertError):
    """One answer for an unknown ID number and a wrong name: the route must not tell who is
    insured."""

    status = 422
    code = "relative_not_matched"
    title = "No insured person matches this ID number and name"


class MutualAidNotFound(NotFound):
    """Raised for an unknown authorisation, a revoked one, or one the caller does not hold."""

    code = "mutual_aid_not_found"
    title = "No such mutual aid authorisation for this person"
