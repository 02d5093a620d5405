"""Fee lines of an open visit (2204 upload, 2205 delete).

``line_no`` is the hospital's own number: the same line again is a no-op (a retry), a
different line under a number the visit holds is a conflict. Lines are checked whole before
anything is written.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import FeeLine
from ecert.errors import ValidationFailed
from ecert.ledger import fen
from ecert.security.audit import record_audit
from ecert.security.tokens import Principal
from ecert.settlement.visits import repositories, schemas
from ecert.settlement.visits.exceptions import (
    FeeAmountMismatch,
    FeeLineConflict,
    FeeLineNotFound,
    FeeQuantityInvalid,
)
from ecert.settlement.visits.pricing import price_lines
from ecert.settlement.visits.services import lock_open

_DECIMAL = re.compile(r"^\d{1,12}(\.\d+)?$")
MAX_PLACES = 4
MAX_AMOUNT = 10**10  # fen, the bill item limit


@dataclass(frozen=True)
class Checked:
    line: schemas.FeeLineIn
    quantity: Decimal
    amount: int
    fingerprint: str


def parse_quantity(line_no: str, text: str) -> Decimal:
    """A positive decimal string with at most four places (``decimal``, never a float)."""
    if not _DECIMAL.match(text):
        raise FeeQuantityInvalid(f"line {line_no}: quantity must be a positive decimal string")
    try:
        quantity = Decimal(text)
    except InvalidOperation as exc:  # the pattern should make this unreachable
        raise FeeQuantityInvalid(f"line {line_no}: quantity is not a decimal") from exc
    if quantity <= 0:
        raise FeeQuantityInvalid(f"line {line_no}: quantity must be greater than zero")
    if -quantity.as_tuple().exponent > MAX_PLACES:  # type: ignore[operator]
        raise FeeQuantityInvalid(f"line {line_no}: quantity has more than {MAX_PLACES} places")
    return quantity


def check(line: schemas.FeeLineIn) -> Checked:
    quantity = parse_quantity(line.line_no, line.quantity)
    amount = fen(quantity, line.unit_price)
    if line.amount is not None and line.amount != amount:
        raise FeeAmountMismatch(
            f"line {line.line_no}: quantity × unit_price is {amount} fen, not {line.amount}"
        )
    if amount > MAX_AMOUNT:
        raise ValidationFailed(f"line {line.line_no}: the amount is too large")
    # The line as it will be kept (quantity normalised, amount computed): its fingerprint tells
    # a retry from a different line under the same number.
    same = msgspec.structs.replace(line, quantity=_text(quantity), amount=amount)
    digest = hashlib.sha256(msgspec.json.encode(same)).hexdigest()
    return Checked(same, quantity, amount, digest)


def _text(quantity: Decimal) -> str:
    return format(quantity.normalize(), "f")


async def add(
    session: AsyncSession, principal: Principal, visit_id: uuid.UUID, data: schemas.FeeUpload
) -> schemas.FeeUploadResult:
    checked: dict[str, Checked] = {}
    for line in data.lines:
        c = check(line)
        if line.line_no in checked and checked[line.line_no].fingerprint != c.fingerprint:
            raise FeeLineConflict(f"line {line.line_no} is sent twice, differently")
        checked[line.line_no] = c
    visit = await lock_open(session, principal, visit_id)
    held = await repositories.fingerprints(session, visit.id, checked)
    for line_no, c in checked.items():
        if line_no in held:
            if held[line_no] != c.fingerprint:
                raise FeeLineConflict(f"line {line_no} already holds a different line")
            continue  # a retry of the same line: nothing to do
        session.add(
            FeeLine(
                visit_id=visit.id,
                line_no=line_no,
                fingerprint=c.fingerprint,
                list_code=c.line.list_code,
                hospital_code=c.line.hospital_code,
                name=c.line.name,
                quantity=c.line.quantity,
                unit_price=c.line.unit_price,
                amount=c.amount,
                declared_class=c.line.item_class,
                declared_ratio=c.line.first_self_pay_ratio,
                ordered_at=c.line.ordered_at,
                doctor_code=c.line.doctor_code,
            )
        )
    await session.flush()
    added = len(checked) - len(held)
    await record_audit(
        session,
        principal,
        visit.person_id,
        "visit.fees",
        "ok",
        {"visit_id": str(visit.id), "added": added, "unchanged": len(held)},
    )
    lines = await repositories.lines_of(session, visit.id)
    priced = await price_lines(session, principal, visit, lines)
    return schemas.FeeUploadResult(
        visit_id=visit.id, lines=[s for s in priced if s.line_no in checked]
    )


async def remove(
    session: AsyncSession, principal: Principal, visit_id: uuid.UUID, line_no: str
) -> None:
    visit = await lock_open(session, principal, visit_id)
    if not await repositories.delete_line(session, visit.id, line_no):
        raise FeeLineNotFound()
    await record_audit(
        session, principal, visit.person_id, "visit.fees.delete", "ok", {"visit_id": str(visit.id)}
    )
