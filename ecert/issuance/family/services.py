"""Family codes: a holder shows QR codes for up to five relatives who consented.

Consent is the relative's own person-scoped confirmation, or a record made by the agency. A
relative's codes carry the relative's own pseudonym (an e-cert bound under the holder's family
binding), so a scanner sees the relative; the audit log records who showed them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import ECertStatus, FamilyLink, Person, utcnow
from ecert.errors import (
    Conflict,
    ECertSuspended,
    Forbidden,
    NotEnrolled,
    NotFound,
    ValidationFailed,
)
from ecert.identity import names_match, parse_id_number
from ecert.issuance.family.repositories import link_between, links_of, live_link_count
from ecert.issuance.repositories import find_ecert, has_active_enrolment
from ecert.issuance.services import bump_version, claim_ecert, new_number, sign_code
from ecert.persons import find_person, person_name
from ecert.security.audit import record_audit
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime
from ecert.suspension import ensure_not_suspended

MAX_RELATIVES = 5


class FamilyLimit(Conflict):
    """Raised when a holder already has five relatives (pending or active)."""

    code = "family_limit"
    title = "A person may show codes for at most five relatives"


class LinkNotFound(NotFound):
    """Raised for an unknown link or one that does not concern the caller."""

    code = "family_link_not_found"
    title = "No such family link for this person"


def _me(principal: Principal) -> uuid.UUID:
    assert principal.person_id is not None
    return principal.person_id


async def _relative(session: AsyncSession, runtime: Runtime, id_number: str, name: str) -> Person:
    person = await find_person(session, runtime.cipher, parse_id_number(id_number))
    # One answer for "unknown" and "wrong name": the route must not confirm who is insured.
    if person is None or not names_match(person_name(runtime.cipher, person), name):
        raise ValidationFailed("no insured person matches this ID number and name")
    return person


async def request_link(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    *,
    relation: str,
    id_number: str,
    name: str,
) -> FamilyLink:
    holder = _me(principal)
    relative = await _relative(session, runtime, id_number, name)
    if relative.id == holder:
        raise ValidationFailed("a person cannot be their own relative")
    existing = await link_between(session, holder, relative.id)
    if existing is not None and existing.status != "revoked":
        return existing
    if await live_link_count(session, holder) >= MAX_RELATIVES:
        raise FamilyLimit()
    if existing is None:
        existing = FamilyLink(holder_id=holder, relative_id=relative.id, relation=relation)
        session.add(existing)
    existing.relation, existing.status = relation, "pending"
    existing.consent_source = existing.consented_at = None
    await session.flush()
    await record_audit(
        session,
        principal,
        relative.id,
        "family.request",
        "ok",
        {"holder": str(holder), "relation": relation},
    )
    return existing


async def consent(session: AsyncSession, principal: Principal, link_id: uuid.UUID) -> FamilyLink:
    """The relative confirms with their own person-scoped token."""
    link = await session.get(FamilyLink, link_id)
    if link is None or link.relative_id != _me(principal) or link.status == "revoked":
        raise LinkNotFound()
    link.status, link.consent_source, link.consented_at = "active", "relative", utcnow()
    await record_audit(
        session,
        principal,
        link.relative_id,
        "family.consent",
        "ok",
        {"holder": str(link.holder_id)},
    )
    return link


async def agency_consent(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    *,
    holder_id_number: str,
    relative_id_number: str,
    relation: str,
) -> FamilyLink:
    """The agency records a consent given at its counter (e.g. for an elderly parent)."""
    holder = await find_person(session, runtime.cipher, parse_id_number(holder_id_number))
    relative = await find_person(session, runtime.cipher, parse_id_number(relative_id_number))
    if holder is None or relative is None or holder.id == relative.id:
        raise ValidationFailed("both people must be insured and different")
    link = await link_between(session, holder.id, relative.id)
    revived = link is None or link.status == "revoked"
    if revived and await live_link_count(session, holder.id) >= MAX_RELATIVES:
        raise FamilyLimit()
    if link is None:
        link = FamilyLink(holder_id=holder.id, relative_id=relative.id, relation=relation)
        session.add(link)
    link.relation, link.status = relation, "active"
    link.consent_source, link.consented_at = "agency", utcnow()
    await session.flush()
    await record_audit(
        session,
        principal,
        relative.id,
        "family.consent",
        "ok",
        {"holder": str(holder.id), "source": "agency"},
    )
    return link


async def links(session: AsyncSession, principal: Principal) -> Sequence[FamilyLink]:
    """Links where the caller is the holder or the relative (pending requests included)."""
    return await links_of(session, _me(principal))


async def revoke(session: AsyncSession, principal: Principal, link_id: uuid.UUID) -> None:
    """Either side may end the link; the relative's family codes die with it."""
    link = await session.get(FamilyLink, link_id)
    me = _me(principal)
    if link is None or me not in (link.holder_id, link.relative_id) or link.status == "revoked":
        raise LinkNotFound()
    link.status = "revoked"
    ecert = await find_ecert(session, link.relative_id, f"family:{link.holder_id}")
    if ecert is not None and ecert.status != ECertStatus.REVOKED:
        ecert.status = ECertStatus.REVOKED
        bump_version(session, ecert, "family_ended")
    await record_audit(session, principal, link.relative_id, "family.revoke", "ok")


async def mint_for_relative(
    session: AsyncSession, runtime: Runtime, principal: Principal, link_id: uuid.UUID
) -> tuple[str, dt.datetime, dt.datetime]:
    """A QR code carrying the relative's pseudonym, shown by the holder."""
    link = await session.get(FamilyLink, link_id)
    if link is None or link.holder_id != _me(principal):
        raise LinkNotFound()
    if link.status != "active":
        raise Forbidden("the relative has not consented")
    if not await has_active_enrolment(session, link.relative_id):
        raise NotEnrolled()
    # The relative's suspension is on the relative: it covers a family e-cert made after it. The
    # holder's too: a lost phone must not go on showing the relatives' codes.
    await ensure_not_suspended(session, link.relative_id)
    await ensure_not_suspended(session, link.holder_id)
    channel = f"family:{link.holder_id}"
    ecert = await find_ecert(session, link.relative_id, channel)
    if ecert is None:
        relative = await session.get(Person, link.relative_id)
        assert relative is not None
        ecert, _ = await claim_ecert(
            session, link.relative_id, channel, new_number(relative.area, prefix="F")
        )
    if ecert.status == ECertStatus.REVOKED:  # consent given again after the link had ended
        ecert.status = ECertStatus.ACTIVE
        bump_version(session, ecert, "family_renewed")
    if ecert.status == ECertStatus.SUSPENDED:
        raise ECertSuspended()
    code = sign_code(runtime, ecert.pseudonym, ecert.version)
    await record_audit(
        session, principal, link.relative_id, "family.qr", "ok", {"shown_by": str(link.holder_id)}
    )
    return code
