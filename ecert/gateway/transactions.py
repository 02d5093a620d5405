"""Which ``infno`` does what: its input and output shapes, its handler, and whether it writes
(a writing transaction runs once per msgid)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from ecert.gateway import person, reconcile, settle, visits
from ecert.gateway import schemas as s
from ecert.gateway.call import Call


@dataclass(frozen=True)
class Transaction:
    input: type[msgspec.Struct]
    output: type[msgspec.Struct]
    handler: Callable[[Call, Any], Awaitable[msgspec.Struct]]
    writes: bool


TRANSACTIONS: dict[str, Transaction] = {
    "9001": Transaction(s.SignInInput, s.SignInOutput, person.sign_in, writes=False),
    "1101": Transaction(s.PersonQueryInput, s.PersonOutput, person.person_query, writes=False),
    "2201": Transaction(s.RegisterInput, s.RegisterOutput, visits.register, writes=True),
    "2202": Transaction(s.VisitRefInput, s.DoneOutput, visits.cancel, writes=True),
    "2204": Transaction(s.FeeInput, s.FeeOutput, visits.upload, writes=True),
    "2205": Transaction(s.FeeDeleteInput, s.DoneOutput, visits.delete, writes=True),
    "2206": Transaction(s.SettleInput, s.SettleOutput, settle.preview, writes=False),
    "2207": Transaction(s.SettleInput, s.SettleOutput, settle.settle, writes=True),
    "2208": Transaction(s.SettlementRefInput, s.CancelOutput, settle.cancel, writes=True),
    "3201": Transaction(s.StatementInput, s.StatementOutput, reconcile.check, writes=False),
    "3202": Transaction(s.StatementInput, s.DetailOutput, reconcile.details, writes=False),
}
