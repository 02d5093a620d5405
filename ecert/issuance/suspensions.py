"""Suspending and resuming a person's e-certs: who imposed a suspension decides who lifts it.

The suspension itself is a row on the person (see ``ecert.suspension``). Each e-cert mirrors
it in its status and moves to a new version, so that outstanding codes die and offline scanners
learn of it through the revocation feed.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from ecert import suspension
from ecert.db.models import ECertStatus, PersonSuspension, SuspensionKind
from ecert.issuance.exceptions import ChannelNotBound, SuspendedByAgency
from ecert.issuance.repositories import find_ecert, person_ecerts
from ecert.issuance.services import bump_version
from ecert.security.audit import record_audit
from ecert.security.tokens import Principal


def _kind_of(principal: Principal) -> SuspensionKind:
    return SuspensionKind.AGENCY if principal.kind == "agency" else SuspensionKind.PERSON


async def _mirror(session: AsyncSession, person_id: uuid.UUID, *, suspend: bool) -> int:
    """Carry the person's state onto each e-cert; returns how many changed."""
    ecerts = await person_ecerts(session, person_id)
    before, after = (
        (ECertStatus.ACTIVE, ECertStatus.SUSPENDED)
        if suspend
        else (ECertStatus.SUSPENDED, ECertStatus.ACTIVE)
    )
    changed = 0
    for ecert in ecerts:
        if ecert.status != before:
            continue
        ecert.status = after
        # Resuming moves to a new version too: codes shown while suspended stay dead.
        bump_version(session, ecert, "suspended" if suspend else "resumed")
        changed += 1
    return changed


async def suspend(
    session: AsyncSession, principal: Principal, person_id: uuid.UUID, reason: str
) -> int:
    """Suspend all of a person's e-certs (the agency, or the person through any channel)."""
    kind = _kind_of(principal)
    if kind not in await suspension.kinds_in_force(session, person_id):
        session.add(
            PersonSuspension(
                person_id=person_id, kind=kind, imposed_by=principal.client_id, reason=reason
            )
        )
    changed = await _mirror(session, person_id, suspend=True)
    await record_audit(
        session, principal, person_id, "ecert.suspend", "ok", {"reason": reason, "kind": kind}
    )
    return changed


async def _bound_here(session: AsyncSession, principal: Principal, person_id: uuid.UUID) -> bool:
    ecert = await find_ecert(session, person_id, principal.client_id)
    return ecert is not None and ecert.status != ECertStatus.REVOKED and ecert.device_id is not None


async def resume(session: AsyncSession, principal: Principal, person_id: uuid.UUID) -> int:
    """Lift what the caller may lift; the e-certs come back once nothing is in force.

    The agency lifts any suspension. A person lifts only their own, and only through a channel
    where their e-cert is bound: a channel they never used cannot undo a lost-phone report.
    """
    kinds = await suspension.kinds_in_force(session, person_id)
    liftable = set(SuspensionKind)
    if principal.kind != "agency":
        liftable = {SuspensionKind.PERSON}
        if SuspensionKind.AGENCY in kinds:
            raise SuspendedByAgency()
        if kinds and not await _bound_here(session, principal, person_id):
            raise ChannelNotBound()
    # Only the kinds this caller may lift, even if another suspension landed meanwhile.
    await suspension.lift(session, person_id, liftable, principal.client_id)
    changed = 0
    if not await suspension.kinds_in_force(session, person_id):
        changed = await _mirror(session, person_id, suspend=False)
    await record_audit(
        session, principal, person_id, "ecert.resume", "ok", {"lifted": sorted(kinds)}
    )
    return changed
