"""Settlement's queries, one module per concern; the names callers use are re-exported here.

- ``booking``: the hot path's load (reads and locks what pricing needs) and write;
- ``tokens``: the ``ec_token`` with its context on the ORM path, the caller's institution, the
  guarded spend;
- ``mutual_aid``: authorisations, draws, and the settlement row lock a reversal takes;
- ``idempotency``: the Idempotency-Key records.

Visits and reconciliation keep theirs in their sub-packages' ``repositories.py``; accounts and
usage are the ledger's. None commits.
"""

from ecert.settlement.repositories.booking import (
    Booking,
    EnrolmentRow,
    InstitutionRow,
    Loaded,
    Locked,
    PersonRow,
    StoredAnswer,
    load,
    policy_body,
    write,
)
from ecert.settlement.repositories.mutual_aid import (
    draws_of,
    live_authorisation,
    live_authorisations_of,
    lock_settlement,
    was_reversed,
)
from ecert.settlement.repositories.tokens import institution_fresh, spend_token, token_context

__all__ = [
    "Booking",
    "EnrolmentRow",
    "InstitutionRow",
    "Loaded",
    "Locked",
    "PersonRow",
    "StoredAnswer",
    "draws_of",
    "institution_fresh",
    "live_authorisation",
    "live_authorisations_of",
    "load",
    "lock_settlement",
    "policy_body",
    "spend_token",
    "token_context",
    "was_reversed",
    "write",
]
