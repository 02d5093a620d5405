"""Refusals of the visit flow, each with its stable code."""

from __future__ import annotations

from ecert.errors import Conflict, EcertError, NotFound


class VisitNotFound(NotFound):
    """Raised for an unknown visit or one opened by another institution."""

    code = "visit_not_found"
    title = "No such visit for this institution"


class VisitNotOpen(Conflict):
    """Raised when a settled or cancelled visit is asked to change (fees, cancel, settle)."""

    code = "visit_not_open"
    title = "The visit is no longer open"


class CardNotUsable(Conflict):
    """Raised when a physical card that is reported lost, frozen or replaced opens a visit."""

    code = "card_not_usable"
    title = "This card may not be used; use the e-cert or a replacement card"


class FeeQuantityInvalid(EcertError):
    """Raised for a quantity that is not a positive decimal with at most 4 places."""

    status = 422
    code = "fee_quantity_invalid"
    title = "quantity must be a positive decimal string with at most 4 decimal places"


class FeeAmountMismatch(EcertError):
    """Raised when a line's amount differs from quantity × unit_price rounded half up."""

    status = 422
    code = "fee_amount_mismatch"
    title = "amount is not quantity × unit_price rounded half up to the fen"


class FeeLineConflict(Conflict):
    """Raised when a different line is sent under a line number the visit already holds."""

    code = "fee_line_conflict"
    title = "Another line already has this line_no"


class FeeLineNotFound(NotFound):
    """Raised when deleting a line number the visit does not hold."""

    code = "fee_line_not_found"
    title = "The visit has no line with this line_no"
