"""Family mutual aid (家庭共济, docs/settlement.md): an employee or retiree lets their personal
account pay for a spouse, parent or child.

Authorising, listing and revoking are the holder's person-scoped calls. Paying happens inside the
one booking path (``services.book``): after the relative's own account, the authorising accounts
pay, oldest authorisation first, each with a guarded debit (ledger kind ``family``) on rows that
``ledger.lock_person(also=…)`` has locked in person order. Reversals give the money back to the
holders in reverse drawing order (``refund_mutual_aid``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ecert import ledger
from ecert.db.models import (
    MutualAidAuthorisation,
    MutualAidDraw,
    MutualAidRelation,
    Person,
    Settlement,
    utcnow,
)
from ecert.errors import NotFound
from ecert.identity import names_match, parse_id_number
from ecert.ledger import HOLDER_CATEGORIES
from ecert.persons import find_person, people_by_id, person_name
from ecert.security.audit import record_audit
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime
from ecert.settlement.exceptions import (
    MutualAidNotAllowed,
    MutualAidNotFound,
    MutualAidSelf,
    RelativeNotMatched,
)
from ecert.settlement.repositories import (
    draws_of,
    live_authorisation,
    live_authorisations_of,
)


def _me(principal: Principal) -> uuid.UUID:
    assert principal.person_id is not None  # person_guard
    return principal.person_id


async def authorise(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    *,
    id_number: str,
    name: str,
    relation: MutualAidRelation,
) -> MutualAidAuthorisation:
    """The holder lets their account pay for a relative; the same live pair again is a no-op."""
    holder = await session.get(Person, _me(principal))
    if holder is None:
        raise NotFound("the person is no longer registered")
    if holder.category not in HOLDER_CATEGORIES or await ledger.balance(session, holder.id) is None:
        raise MutualAidNotAllowed()
    relative = await find_person(session, runtime.cipher, parse_id_number(id_number))
    # Unknown and wrong name get the same answer (as the token endpoint does).
    if relative is None or not names_match(person_name(runtime.cipher, relative), name):
        raise RelativeNotMatched()
    if relative.id == holder.id:
        raise MutualAidSelf()
    live = await live_authorisation(session, holder.id, relative.id)
    if live is None:
        row = MutualAidAuthorisation(
            holder_id=holder.id,
            relative_id=relative.id,
            relation=relation.value,
            channel=principal.client_id,
        )
        try:
            async with session.begin_nested():
                session.add(row)
        except IntegrityError:
            # A concurrent request made the same pair live first (partial unique index).
            live = await live_authorisation(session, holder.id, relative.id)
            assert live is not None
        else:
            live = row
            await record_audit(
                session,
                principal,
                holder.id,
                "mutual_aid.authorise",
                "ok",
                {"authorisation_id": str(row.id), "relation": relation.value},
            )
    return live


@dataclass(frozen=True)
class Listed:
    authorisation: MutualAidAuthorisation
    #: The other person of the pair (the relative for a holder, the holder for a relative).
    other: Person


async def listing(session: AsyncSession, principal: Principal) -> list[Listed]:
    """Live authorisations in both directions: whom I authorised, who authorised me."""
    me = _me(principal)
    rows = await live_authorisations_of(session, me)
    others = {r.relative_id if r.holder_id == me else r.holder_id for r in rows}
    people = await people_by_id(session, others)
    await record_audit(session, principal, me, "mutual_aid.list", "ok")
    return [Listed(r, people[r.relative_id if r.holder_id == me else r.holder_id]) for r in rows]


async def revoke(session: AsyncSession, principal: Principal, authorisation_id: uuid.UUID) -> None:
    """The holder ends an authorisation; settlements from then on no longer draw on it."""
    row = await session.get(MutualAidAuthorisation, authorisation_id)
    if row is None or row.holder_id != _me(principal) or row.revoked_at is not None:
        raise MutualAidNotFound()
    row.revoked_at, row.revoked_by = utcnow(), principal.client_id
    await record_audit(
        session,
        principal,
        row.holder_id,
        "mutual_aid.revoke",
        "ok",
        {"authorisation_id": str(row.id)},
    )


# --- paying -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draw:
    authorisation: MutualAidAuthorisation
    amount: int


def plan(
    amount: int, authorisations: Sequence[MutualAidAuthorisation], held: dict[uuid.UUID, int]
) -> list[Draw]:
    """Take ``amount`` from the accounts in order, each as much as it holds (pure)."""
    draws, left = [], amount
    for a in authorisations:
        take = min(left, held.get(a.holder_id, 0))
        if take > 0:
            draws.append(Draw(a, take))
            left -= take
    if left:
        raise ValueError(f"{left} fen of mutual aid have no account to come from")
    return draws


def detail_of(draws: Sequence[Draw]) -> dict[str, object]:
    """What the settlement stores (``settlements.detail``): the total and each source."""
    return {
        "account_mutual_aid_paid": sum(d.amount for d in draws),
        "mutual_aid": [
            {
                "authorisation_id": str(d.authorisation.id),
                "relation": d.authorisation.relation,
                "amount": d.amount,
            }
            for d in draws
        ],
    }


async def debit(
    session: AsyncSession, settlement_id: uuid.UUID, draws: Sequence[Draw], memo: str
) -> None:
    """Debit each holder (guarded: never below 0) and record the draw, in the caller's
    transaction; the holders' rows must already be locked (``lock_person(also=…)``)."""
    for seq, d in enumerate(draws):
        await ledger.move(
            session,
            d.authorisation.holder_id,
            -d.amount,
            kind="family",
            settlement_id=settlement_id,
            memo=memo,
        )
        session.add(
            MutualAidDraw(
                settlement_id=settlement_id,
                authorisation_id=d.authorisation.id,
                holder_id=d.authorisation.holder_id,
                seq=seq,
                amount=d.amount,
                refunded=0,
            )
        )


async def holders_drawn(session: AsyncSession, settlement_id: uuid.UUID) -> list[uuid.UUID]:
    """The holders a settlement drew on (pass them to ``lock_person(also=…)`` before refunding)."""
    return [d.holder_id for d in await draws_of(session, settlement_id)]


async def refunded_so_far(session: AsyncSession, settlement_id: uuid.UUID) -> tuple[int, int]:
    """(mutual aid paid, given back so far) for a settlement."""
    draws = await draws_of(session, settlement_id)
    return sum(d.amount for d in draws), sum(d.refunded for d in draws)


async def refund_mutual_aid(session: AsyncSession, settlement: Settlement, amount: int) -> int:
    """Give ``amount`` fen of a settlement's mutual aid back to the holders' accounts, the last
    drawn first (ledger kind ``family``, positive), in the caller's transaction. Lock first with
    ``ledger.lock_person(settlement.person_id, …, also=holders_drawn(…))``. Returns the new
    total given back; ValueError if more than what is left was asked."""
    if amount < 0:
        raise ValueError("a refund is not negative")
    draws = await draws_of(session, settlement.id)
    left = amount
    for d in reversed(draws):
        give = min(left, d.amount - d.refunded)
        if give:
            await ledger.move(
                session,
                d.holder_id,
                give,
                kind="family",
                settlement_id=settlement.id,
                memo="reversal",
            )
            d.refunded += give
            left -= give
    if left:
        raise ValueError(f"{left} fen more than the mutual aid left to give back")
    return sum(d.refunded for d in draws)
