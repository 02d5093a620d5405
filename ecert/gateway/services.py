"""One gateway call: the envelope's transaction, run once per msgid when it writes.

``msgid`` is the idempotency key (the §7 machinery, ``settlement.idempotency``): the same msgid
with the same transaction and input replays the stored output; with another input it is refused
(``idempotency_conflict``). The fingerprint covers ``infno`` and ``input`` only, not envelope
fields a retry may legitimately change (``inf_time``, ``sign_no``). The §7 services inside get
an Idempotency-Key of their own derived from the msgid.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from ecert.gateway.call import Call
from ecert.gateway.exceptions import InputInvalid, InstitutionMismatch, TransactionUnknown
from ecert.gateway.transactions import TRANSACTIONS
from ecert.settlement import idempotency


def fingerprint(infno: str, data: dict[str, Any] | None) -> str:
    canonical = msgspec.json.encode(data, order="sorted")
    return hashlib.sha256(b"fsi\n" + infno.encode() + b"\n" + canonical).hexdigest()


async def run(call: Call) -> tuple[msgspec.Struct, bool]:
    """The transaction's output, and whether it is a stored one replayed."""
    envelope = call.envelope
    tx = TRANSACTIONS.get(envelope.infno)
    if tx is None:
        raise TransactionUnknown(f"infno {envelope.infno} is not offered")
    code = envelope.fixmedins_code
    if code is not None and code != call.principal.institution_code:
        raise InstitutionMismatch()
    try:
        data = msgspec.convert(envelope.input or {}, tx.input)
    except msgspec.ValidationError as exc:
        raise InputInvalid(f"input: {exc}") from exc
    if not tx.writes:
        return await tx.handler(call, data), False

    async def work() -> dict[str, Any]:
        return msgspec.to_builtins(await tx.handler(call, data))  # type: ignore[no-any-return]

    _, body, replayed = await idempotency.run_once(
        call.session,
        call.runtime,
        call.principal.client_id,
        f"fsi:{envelope.msgid}",
        fingerprint(envelope.infno, envelope.input),
        work,
        status=200,
    )
    # Stored yuan are strings ("12.50"): back to Decimal, so the wire shows numbers.
    return msgspec.convert(body, tx.output), replayed
