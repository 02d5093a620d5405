"""GET /v1/visits/{id}: the visit as it stands — its lines (priced as settling now would, or as
settled, or after returns what their remaining quantities are priced at now), its settlements
with their reversals."""

from __future__ import annotations

import uuid
from decimal import Decimal

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import FeeLine, Person, Settlement
from ecert.security.audit import record_audit
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime
from ecert.settlement.basis import Basis
from ecert.settlement.returns import reprice
from ecert.settlement.visits import schemas
from ecert.settlement.visits.pricing import price_lines
from ecert.settlement.visits.repositories import lines_of
from ecert.settlement.visits.services import masked_person, owned, settlements_of


async def view(
    session: AsyncSession, runtime: Runtime, principal: Principal, visit_id: uuid.UUID
) -> schemas.VisitView:
    visit = await owned(session, principal, visit_id)
    person = await session.get(Person, visit.person_id)
    assert person is not None
    lines = await lines_of(session, visit.id)
    settlements = await settlements_of(session, visit.id)
    returned: dict[str, str] = {}
    if settlements:
        row = await session.get(Settlement, settlements[-1].settlement_id)
        assert row is not None  # just listed
        returned = dict(row.returned or {})
        splits = {s.line_no: s for s in _lines_now(row)}
    else:
        splits = {s.line_no: s for s in await price_lines(session, principal, visit, lines)}
    await record_audit(
        session, principal, person.id, "visit.read", "ok", {"visit_id": str(visit.id)}
    )
    return schemas.VisitView(
        visit_id=visit.id,
        status=visit.status,
        person=masked_person(runtime, person),
        insurance_type=visit.insurance_type,
        med_type=visit.med_type,
        opened_at=visit.created_at,
        his_visit_no=visit.his_visit_no,
        dept_code=visit.dept_code,
        dept_name=visit.dept_name,
        doctor_code=visit.doctor_code,
        doctor_name=visit.doctor_name,
        diagnoses=msgspec.convert(visit.diagnoses, list[schemas.Diagnosis]),
        admitted_at=visit.admitted_at,
        lines=[
            _line_view(line, splits[line.line_no], returned.get(line.line_no, "0"))
            for line in lines
        ],
        settlements=settlements,
    )


def _lines_now(row: Settlement) -> list[schemas.LineSplit]:
    """The settlement's lines as settled or, after returns, priced again as they stand."""
    if not row.returned or row.pricing is None:
        return msgspec.convert((row.detail or {}).get("lines", []), list[schemas.LineSplit])
    basis = msgspec.convert(row.pricing, Basis)
    now, _ = reprice(basis, {k: Decimal(v) for k, v in row.returned.items()})
    priced = {s.line_no: s for s in now.lines}
    # A fully returned line drops out of the pricing: nothing of it is priced any more.
    gone = {"amount": 0, "fully_self_paid": 0, "over_limit_self_paid": 0, "first_self_paid": 0}
    return [
        priced.get(b.line_no)
        or schemas.LineSplit(
            line_no=b.line_no,
            item_class=b.item_class,
            first_self_pay_ratio=b.first_self_pay_ratio,
            eligible_amount=0,
            reason=b.reason,
            **gone,
        )
        for b in basis.lines
    ]


def _line_view(line: FeeLine, split: schemas.LineSplit, returned: str) -> schemas.FeeLineView:
    return schemas.FeeLineView(
        **{f: getattr(split, f) for f in split.__struct_fields__},
        returned_quantity=returned,
        list_code=line.list_code,
        hospital_code=line.hospital_code,
        name=line.name,
        quantity=line.quantity,
        unit_price=line.unit_price,
        ordered_at=line.ordered_at,
        doctor_code=line.doctor_code,
    )
