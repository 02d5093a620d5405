"""Settlement request and response shapes (fields: docs/settlement.md)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

import msgspec

from ecert.benefits import BillItem
from ecert.db.models import MutualAidRelation
from ecert.ledger import Costs  # the read model is the ledger's (SettlementView too)

MedType = Annotated[str, msgspec.Meta(pattern=r"^(11|14|21|41|51|52)$")]


class SettlementRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A bill to price (preview) or settle; amounts in integer fen."""

    ec_token: Annotated[str, msgspec.Meta(pattern=r"^\d{6}[a-z0-9]{32}$")]
    med_type: MedType
    items: Annotated[list[BillItem], msgspec.Meta(min_length=1, max_length=500)]
    use_account: bool = False
    #: For care outside the insured area: whether the person was referred (smaller reduction).
    referred: bool = False
    #: With ``use_account``: what the own account does not cover comes from the accounts of
    #: relatives who authorised mutual aid (家庭共济, docs/settlement.md), before cash.
    mutual_aid: bool = False


class SettlementResult(Costs, kw_only=True):
    """A settled (or, with ``settlement_id`` null, previewed) bill."""

    settlement_id: uuid.UUID | None


class ReturnLine(msgspec.Struct, forbid_unknown_fields=True):
    """A returned quantity of one line (a one-shot bill's items are lines "1", "2", …)."""

    line_no: Annotated[str, msgspec.Meta(min_length=1, max_length=30)]
    #: A decimal string, as fee quantities are (> 0, at most 4 places).
    quantity: Annotated[str, msgspec.Meta(min_length=1, max_length=24)]


class ReversalRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Reverse all that is left of a settlement (neither ``amount`` nor ``lines``: the full
    cancel, 2208), ``amount`` fen of it, or returned ``lines``, which re-price; the three in
    docs/settlement.md."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    amount: Annotated[int, msgspec.Meta(gt=0)] | None = None
    lines: Annotated[list[ReturnLine], msgspec.Meta(min_length=1, max_length=500)] | None = None


class ReversalResult(msgspec.Struct, kw_only=True):
    reversal_id: uuid.UUID
    settlement_id: uuid.UUID
    #: full, amount or lines.
    kind: str
    amount: int
    fund_refund: int
    account_refund: int
    account_mutual_aid_refund: int
    cash_refund: int
    #: Per pool (fund, account, account_mutual_aid, cash): what this reversal gave back.
    refunds: dict[str, int]
    remaining: int
    #: A line return: the lines returned by it, and the visit fields of what remains, priced again
    #: (``visits.schemas.Remaining``).
    lines: list[ReturnLine] | None = None
    repriced: dict[str, Any] | None = None


class PolicyUpsertResult(msgspec.Struct, kw_only=True):
    upserted: int


class MutualAidCreate(msgspec.Struct, forbid_unknown_fields=True):
    """The holder lets their personal account pay for a relative (家庭共济)."""

    relative_id_number: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    relative_name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    relation: MutualAidRelation


class MaskedPerson(msgspec.Struct):
    name: str
    id_number: str


class MutualAidView(msgspec.Struct):
    """One live authorisation as one side sees it; the other side is always masked."""

    authorisation_id: uuid.UUID
    #: ``holder``: my account pays for ``person``; ``relative``: ``person``'s account pays for me.
    role: str
    relation: str
    person: MaskedPerson
    authorised_at: dt.datetime
