"""Card state machine (seed documents and city rules).

active → provisionally_reported (phone/online/hotline: card settlement stops at once)
  → back to active by un-suspension (解挂), or by itself ("lapsed": restored) when no formal
    report follows within N working days (per area), or → formally_reported (frozen for good)
    → replaced.
A damaged card is replaced from active. The e-cert is untouched throughout.
"""

from __future__ import annotations

import secrets
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from ecert.cards import repositories, schemas
from ecert.cards.workdays import calendar
from ecert.config import Settings
from ecert.db.models import Card, CardEvent, CardStatus, Person, utcnow
from ecert.errors import Conflict, NotFound, ValidationFailed
from ecert.identity import parse_id_number
from ecert.persons import find_by_ref, find_person, get_person, rename, renumber
from ecert.security.audit import record_audit
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime

#: Card events shown with the card, newest first.
HISTORY = 50


class NoCard(NotFound):
    """Raised when the person holds no card (or no card has the given number)."""

    code = "no_card"
    title = "No social security card is on record"


class CardStateConflict(Conflict):
    """Raised when the card's state does not allow the action."""

    code = "card_state"
    title = "The card's state does not allow this"


def lapse_workdays(settings: Settings, area: str) -> int:
    """N: working days a provisional report stands before the card is restored, for ``area``."""
    for pair in filter(None, settings.card_lapse_by_area.split(",")):
        key, _, days = pair.partition(":")
        if key.strip() == area:
            return int(days)
    return settings.card_lapse_workdays


def _new_number(area: str) -> str:
    return f"{area[:2]}{secrets.randbelow(10**14):014d}"


def _move(session: AsyncSession, card: Card, to: CardStatus, action: str, actor: str) -> None:
    session.add(
        CardEvent(
            card_id=card.id, action=action, from_status=card.status, to_status=to, actor=actor
        )
    )
    card.status = to


def _lapse_if_due(session: AsyncSession, card: Card) -> None:
    """Restore a provisional report whose working-day window has passed (applied on read)."""
    if (
        card.status == CardStatus.PROVISIONALLY_REPORTED
        and card.lapse_at
        and card.lapse_at <= utcnow()
    ):
        _move(session, card, CardStatus.ACTIVE, "lapsed", "system")
        card.lapse_at = None


async def current(session: AsyncSession, person_id: uuid.UUID) -> Card:
    """The person's card in use, restoring a provisional report that has lapsed."""
    card = await repositories.card_in_use(session, person_id)
    if card is None:
        raise NoCard()
    _lapse_if_due(session, card)
    return card


def masked(number: str) -> str:
    """Only the last four digits of a card number are shown."""
    return "*" * (len(number) - 4) + number[-4:]


async def view(session: AsyncSession, card: Card) -> schemas.CardView:
    """The card with the history of every card the person has held, newest first."""
    await session.flush()  # the events of this request are part of the history
    events = await repositories.history(session, card.person_id, HISTORY)
    return schemas.CardView(
        number=masked(card.number),
        status=card.status,
        usable=card.status == CardStatus.ACTIVE,
        reported_at=card.reported_at,
        restores_at=card.lapse_at,
        history=[
            schemas.CardEventView(
                at=e.at,
                action=e.action,
                from_status=e.from_status,
                to_status=e.to_status,
                card=masked(number),
            )
            for e, number in events
        ],
    )


async def issue(session: AsyncSession, person: Person, actor: str) -> Card:
    """A new active card (first issue, or the new card of a replacement)."""
    card = Card(person_id=person.id, number=_new_number(person.area), status=CardStatus.ACTIVE)
    session.add(card)
    await session.flush()
    session.add(
        CardEvent(
            card_id=card.id,
            action="issued",
            from_status=None,
            to_status=CardStatus.ACTIVE,
            actor=actor,
        )
    )
    return card


async def issue_first(session: AsyncSession, principal: Principal, person: Person) -> Card:
    """The agency issues a person's card; one card in use at a time (replace it instead)."""
    try:
        await current(session, person.id)
    except NoCard:
        card = await issue(session, person, principal.client_id)
        await record_audit(session, principal, person.id, "card.issue", "ok")
        return card
    raise CardStateConflict("the person already holds a card: replace it instead")


async def report_provisional(
    session: AsyncSession, runtime: Runtime, principal: Principal, person: Person
) -> Card:
    card = await current(session, person.id)
    if card.status != CardStatus.ACTIVE:
        raise CardStateConflict("only an active card can be reported lost")
    now = utcnow()
    card.reported_at = now
    card.lapse_at = calendar(runtime.settings.workday_file).deadline(
        now, lapse_workdays(runtime.settings, person.area)
    )
    _move(
        session, card, CardStatus.PROVISIONALLY_REPORTED, "provisional_report", principal.client_id
    )
    await record_audit(session, principal, person.id, "card.report", "ok")
    return card


async def cancel_report(session: AsyncSession, principal: Principal, person: Person) -> Card:
    """Un-suspension: only while the report is provisional."""
    card = await current(session, person.id)
    if card.status != CardStatus.PROVISIONALLY_REPORTED:
        raise CardStateConflict("only a provisional loss report can be cancelled")
    card.lapse_at = None
    _move(session, card, CardStatus.ACTIVE, "cancel_report", principal.client_id)
    await record_audit(session, principal, person.id, "card.cancel_report", "ok")
    return card


async def report_formal(session: AsyncSession, principal: Principal, person: Person) -> Card:
    card = await current(session, person.id)
    if card.status not in (CardStatus.ACTIVE, CardStatus.PROVISIONALLY_REPORTED):
        raise CardStateConflict("the card is already frozen or replaced")
    card.reported_at = card.reported_at or utcnow()
    card.lapse_at = None
    _move(session, card, CardStatus.FORMALLY_REPORTED, "formal_report", principal.client_id)
    await record_audit(session, principal, person.id, "card.formal_report", "ok")
    return card


async def replace(session: AsyncSession, principal: Principal, person: Person, reason: str) -> Card:
    """Lost cards need a formal report first; a damaged card is handed back while active.
    The personal account belongs to the person, so the balance carries over untouched."""
    card = await current(session, person.id)
    allowed = CardStatus.FORMALLY_REPORTED if reason == "lost" else CardStatus.ACTIVE
    if card.status != allowed:
        raise CardStateConflict(f"a {reason} card is replaced from the {allowed} state")
    new = await issue(session, person, principal.client_id)
    card.replaced_by = new.id
    _move(session, card, CardStatus.REPLACED, f"replaced_{reason}", principal.client_id)
    await record_audit(session, principal, person.id, "card.replace", "ok", {"reason": reason})
    return new


async def errata(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    person: Person,
    *,
    name: str | None,
    id_number: str | None,
) -> Card:
    """Correct a wrong name or ID number; both wrong at once means a new card."""
    if not name and not id_number:
        raise ValidationFailed("give the corrected name, ID number, or both")
    card = await current(session, person.id)
    cipher = runtime.cipher
    if name:
        rename(cipher, person, name)
    if id_number:
        number = parse_id_number(id_number)
        other = await find_person(session, cipher, number)
        if other is not None and other.id != person.id:
            raise Conflict("another person holds this ID number")
        renumber(cipher, person, number)
    await record_audit(
        session,
        principal,
        person.id,
        "card.errata",
        "ok",
        {"name": bool(name), "id_number": bool(id_number)},
    )
    if name and id_number:
        new = await issue(session, person, principal.client_id)
        card.replaced_by = new.id
        _move(session, card, CardStatus.REPLACED, "replaced_errata", principal.client_id)
        return new
    return card


async def check(session: AsyncSession, principal: Principal, number: str) -> Card:
    """A card terminal asks before accepting a card: only an active card may settle."""
    card = await repositories.card_by_number(session, number)
    if card is None:
        raise NoCard()
    _lapse_if_due(session, card)
    await record_audit(
        session, principal, card.person_id, "card.check", "ok", {"status": card.status}
    )
    return card


async def sweep(session: AsyncSession) -> int:
    """Restore every provisional report whose working-day window has passed."""
    due = await repositories.reports_due(session, utcnow())
    for card in due:
        _lapse_if_due(session, card)
    await session.flush()
    return len(due)


async def me(session: AsyncSession, principal: Principal) -> Person:
    """The signed-in person; one without a record has no card either."""
    person = await get_person(session, principal.person_id) if principal.person_id else None
    if person is None:
        raise NoCard()
    return person


async def person_by_number(
    session: AsyncSession, runtime: Runtime, id_number: str | None, person_no: str | None = None
) -> Person:
    person = await find_by_ref(session, runtime.cipher, id_number, person_no)
    if person is None:
        raise NotFound("no insured person has this ID number or person number")
    return person


async def named(
    session: AsyncSession,
    runtime: Runtime,
    data: schemas.AgencyCardAction | schemas.Replacement | schemas.Errata,
) -> Person:
    """The person an agency card request names (ID number or person number)."""
    return await person_by_number(session, runtime, data.id_number, data.person_no)
