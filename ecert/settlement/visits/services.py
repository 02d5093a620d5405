"""Open, show and cancel visits (2201, 2202); fee lines live in ``fees``, pricing in ``pricing``."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.cards import services as cards
from ecert.clock import business_date
from ecert.db.models import Person, Settlement, Visit, VisitStatus, utcnow
from ecert.errors import ValidationFailed
from ecert.identity import age_on, mask_id_number, mask_name
from ecert.ledger import person_policy
from ecert.persons import person_id_number, person_name
from ecert.security.audit import record_audit
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime
from ecert.settlement import idempotency
from ecert.settlement.context import (
    allow_med_type,
    designated_institution,
    pricing_context,
    spend,
)
from ecert.settlement.visits import repositories, schemas
from ecert.settlement.visits.exceptions import (
    CardNotUsable,
    VisitNotFound,
    VisitNotOpen,
)
from ecert.suspension import ensure_not_suspended


def masked_person(runtime: Runtime, person: Person) -> schemas.VisitPerson:
    return schemas.VisitPerson(
        name=mask_name(person_name(runtime.cipher, person)),
        id_number=mask_id_number(person_id_number(runtime.cipher, person)),
        gender=person.gender,
        age=age_on(person.birth_date, business_date()) if person.birth_date else None,
        insured_area=person.area,
    )


async def open_visit(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    data: schemas.VisitCreate,
    key: str | None,
) -> tuple[int, dict[str, Any], bool]:
    """Open once per Idempotency-Key; the ec_token is spent in the same transaction."""
    if (data.ec_token is None) == (data.card_no is None):
        raise ValidationFailed("send either ec_token or card_no")
    return await idempotency.run_once_for(
        session,
        runtime,
        principal,
        key,
        "/v1/visits",
        data,
        lambda: _open(session, runtime, principal, data),
    )


async def _open(
    session: AsyncSession, runtime: Runtime, principal: Principal, data: schemas.VisitCreate
) -> dict[str, Any]:
    card_id = None
    if data.ec_token is not None:
        # Designation, binding, lifetime, suspension and enrolment, before the token is spent.
        ctx = await pricing_context(session, principal, data.ec_token)
        person, institution, insurance = ctx.person, ctx.institution, ctx.enrolment.insurance_type
        ctx.allow(data.med_type)
        await spend(session, ctx.token)
    else:
        assert data.card_no is not None
        institution = await designated_institution(session, principal)
        card = await cards.check(session, principal, data.card_no)
        if card.status != "active":
            raise CardNotUsable()
        loaded = await session.get(Person, card.person_id)
        assert loaded is not None  # the card's foreign key
        person, card_id = loaded, card.id
        await ensure_not_suspended(session, person.id)
        enrolment, _, _ = await person_policy(session, person)
        insurance = enrolment.insurance_type
        allow_med_type(data.med_type, institution.kind, person.gender)
    visit = Visit(
        institution_code=institution.code,
        person_id=person.id,
        insurance_type=insurance,
        med_type=data.med_type,
        ec_token=data.ec_token,
        card_id=card_id,
        his_visit_no=data.his_visit_no,
        dept_code=data.dept_code,
        dept_name=data.dept_name,
        doctor_code=data.doctor_code,
        doctor_name=data.doctor_name,
        diagnoses=msgspec.to_builtins(data.diagnoses),
        admitted_at=data.admitted_at,
        status=VisitStatus.OPEN.value,
    )
    session.add(visit)
    await session.flush()
    await record_audit(
        session,
        principal,
        person.id,
        "visit.open",
        "ok",
        {"visit_id": str(visit.id), "via": "card" if card_id else "ec_token"},
    )
    opened = schemas.VisitOpened(
        visit_id=visit.id,
        status=visit.status,
        person=masked_person(runtime, person),
        insurance_type=insurance,
        med_type=visit.med_type,
        opened_at=visit.created_at,
    )
    return msgspec.to_builtins(opened)  # type: ignore[no-any-return]


async def owned(session: AsyncSession, principal: Principal, visit_id: uuid.UUID) -> Visit:
    """The visit, if this institution opened it (others see 404, as for settlements)."""
    visit = await session.get(Visit, visit_id, populate_existing=True)
    if visit is None or visit.institution_code != principal.institution_code:
        raise VisitNotFound()
    return visit


async def lock_open(
    session: AsyncSession, principal: Principal, visit_id: uuid.UUID, to: VisitStatus | None = None
) -> Visit:
    """Take the visit's row lock with a guarded update that needs it open (optionally moving it
    to ``to``): fee changes, cancel and settle of one visit run one at a time, and none of them
    touches a visit that is no longer open."""
    values: dict[str, Any] = {"updated_at": utcnow()}
    if to is not None:
        values["status"] = to.value
    changed = await repositories.lock_if_open(session, visit_id, principal.institution_code, values)
    visit = await owned(session, principal, visit_id)
    if not changed:
        raise VisitNotOpen(f"the visit is {visit.status}")
    return visit


async def cancel(session: AsyncSession, principal: Principal, visit_id: uuid.UUID) -> Visit:
    """Cancel an open visit (2202); a cancelled one stays cancelled (no-op), a settled one may
    not be cancelled (reverse its settlement instead)."""
    visit = await owned(session, principal, visit_id)
    if visit.status != VisitStatus.CANCELLED.value:
        visit = await lock_open(session, principal, visit_id, VisitStatus.CANCELLED)
        await record_audit(
            session, principal, visit.person_id, "visit.cancel", "ok", {"visit_id": str(visit_id)}
        )
    return visit


async def settlements_of(
    session: AsyncSession, visit_id: uuid.UUID
) -> list[schemas.VisitSettlementSummary]:
    rows = await repositories.settlements_of(session, visit_id)
    reversals = await reversals_of(session, [s.id for s in rows])
    return [
        schemas.VisitSettlementSummary(
            settlement_id=s.id,
            settled_at=s.created_at,
            reversed_total=s.reversed_total,
            reversals=reversals.get(s.id, []),
            **_costs(s),
        )
        for s in rows
    ]


async def reversals_of(
    session: AsyncSession, settlement_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[schemas.VisitReversal]]:
    """The reversals of these settlements, oldest first, by settlement."""
    if not settlement_ids:
        return {}
    rows = await repositories.reversals_of(session, settlement_ids)
    out: dict[uuid.UUID, list[schemas.VisitReversal]] = {}
    for r in rows:
        out.setdefault(r.settlement_id, []).append(
            schemas.VisitReversal(
                reversal_id=r.id,
                kind=r.kind,
                reversed_at=r.created_at,
                amount=r.amount,
                fund_refund=r.fund_refund,
                account_refund=r.account_refund,
                account_mutual_aid_refund=r.account_mutual_aid_refund,
                cash_refund=r.cash_refund,
                reason=r.reason,
                lines=r.lines,
            )
        )
    return out


def _costs(settlement: Settlement) -> dict[str, Any]:
    costs = msgspec.convert(settlement.detail or {}, schemas.VisitCosts)
    return {f: getattr(costs, f) for f in costs.__struct_fields__}
