"""Refusals of the shared ledger, each with its stable code."""

from __future__ import annotations

from ecert.errors import EcertError


class NoPolicy(EcertError):
    """Raised when no benefit policy covers the person this year."""

    status = 422
    code = "no_policy"
    title = "No benefit policy applies to this person this year"


class InsufficientBalance(EcertError):
    """Raised when a guarded debit finds less than it needs (a concurrent debit won)."""

    status = 409
    code = "insufficient_balance"
    title = "The personal account balance is insufficient"
