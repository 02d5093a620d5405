"""The person's file at the counter, their audit trail with its chain checked, key rotation."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession

from ecert.agency import repositories, schemas
from ecert.db.models import Person
from ecert.errors import NotFound
from ecert.identity import mask_id_number, mask_name
from ecert.persons import find_by_ref, person_id_number, person_name
from ecert.security import auditchain, keys
from ecert.security.audit import record_audit
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime


def summary(runtime: Runtime, person: Person) -> schemas.PersonSummary:
    """Masked: the counter screen faces the person and whoever queues behind them."""
    return schemas.PersonSummary(
        person_no=person.person_no,
        name=mask_name(person_name(runtime.cipher, person)),
        id_number=mask_id_number(person_id_number(runtime.cipher, person)),
        gender=person.gender,
        birth_date=person.birth_date,
        area=person.area,
        category=person.category,
    )


async def search(
    session: AsyncSession, runtime: Runtime, principal: Principal, id_number: str
) -> schemas.PersonSummary:
    """Find a person by ID number (audited); the console continues with the person number."""
    person = await find_by_ref(session, runtime.cipher, id_number, None)
    if person is None:
        raise NotFound("no insured person has this ID number")
    await record_audit(session, principal, person.id, "agency.person.find", "ok")
    return summary(runtime, person)


async def person(
    session: AsyncSession, principal: Principal, person_no: str
) -> tuple[Person, Principal]:
    """The person a console route names, and the caller acting for them (for the lookups)."""
    found = await repositories.person_by_no(session, person_no)
    if found is None:
        raise NotFound("no insured person has this person number")
    return found, replace(principal, person_id=found.id)


async def file(
    session: AsyncSession, runtime: Runtime, principal: Principal, person_no: str
) -> schemas.PersonFile:
    """Who they are, their e-certs, suspensions in force and family links (audited read)."""
    found, _ = await person(session, principal, person_no)
    await record_audit(session, principal, found.id, "agency.person.read", "ok")
    return schemas.PersonFile(
        person=summary(runtime, found),
        ecerts=[
            schemas.ECertView(
                e.number[-4:], e.channel, e.status, e.version, e.device_name, e.bound_at
            )
            for e in await repositories.ecerts(session, found.id)
        ],
        suspensions=[
            schemas.SuspensionView(s.kind, s.reason, s.imposed_by, s.imposed_at)
            for s in await repositories.suspensions(session, found.id)
        ],
        family=[
            schemas.FamilyLinkView(
                side="holder" if link.holder_id == found.id else "relative",
                relation=link.relation,
                status=link.status,
                other=summary(runtime, other),
            )
            for link, other in await repositories.family(session, found.id)
        ],
    )


async def trail(
    session: AsyncSession, runtime: Runtime, principal: Principal, person_no: str
) -> schemas.AuditTrail:
    """The person's newest audit rows, each checked against the audit key and its chain: a row
    changed fails its MAC; a row deleted after it breaks its successor's link."""
    found, _ = await person(session, principal, person_no)
    rows = await repositories.trail(session, found.id)
    key = auditchain.audit_key(runtime)
    linked = await repositories.successors(session, {r.row_hash for r in rows if r.row_hash})
    heads = await repositories.chain_heads(session)
    shown = []
    for row in rows:
        mac_ok = (
            row.row_hash is not None
            and row.prev_hash is not None
            and (auditchain.row_mac(key, row, row.prev_hash) == row.row_hash)
        )
        # The newest row of its chain has no successor yet: it is the chain head instead.
        linked_ok = row.row_hash in linked or row.row_hash in heads
        detail = row.detail or {}
        name = detail.get("opter_name")
        shown.append(
            schemas.AuditRow(
                at=row.at,
                actor=row.actor,
                actor_kind=row.actor_kind,
                opter_name=name if isinstance(name, str) else None,
                action=row.action,
                outcome=row.outcome,
                intact=bool(mac_ok and linked_ok),
            )
        )
    await record_audit(session, principal, found.id, "agency.audit.read", "ok")
    return schemas.AuditTrail(rows=shown, intact=all(r.intact for r in shown))


async def rotate_keys(runtime: Runtime, purpose: str) -> str | None:
    """Promote the next key of ``purpose`` in a transaction of its own, then tell every worker.

    Returns the new active kid, or None when another process rotated at the same moment.
    """
    settings = runtime.settings
    ttl = settings.access_token_ttl_s if purpose == "access" else settings.qr_ttl_s
    async with runtime.sessions.begin() as session:
        await keys.ensure_active_keys(session, runtime.cipher)
        kid = await keys.rotate(
            session,
            runtime.cipher,
            purpose,
            overlap_s=ttl + settings.leeway_s + settings.key_refresh_s,
        )
    async with runtime.sessions() as session:
        await keys.publish_version(session, runtime.store, attempts=3)
    return kid
