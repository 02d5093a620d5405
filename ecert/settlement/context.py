"""Everything a bill is priced against: the token's person, institution, enrolment, policy."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Literal, Protocol, cast

from sqlalchemy.ext.asyncio import AsyncSession

from ecert import ledger
from ecert.benefits import INPATIENT_TYPES, Bill, BillItem, Level, Policy
from ecert.db.models import EcToken, Institution, Person, utcnow
from ecert.errors import ECertRevoked, ECertSuspended, NotDesignated, NotEnrolled
from ecert.ledger import NoPolicy, PolicyCache, person_policy
from ecert.security.tokens import Principal
from ecert.settlement import repositories
from ecert.settlement.exceptions import (
    EcTokenExpired,
    EcTokenInvalid,
    EcTokenSpent,
    EcTokenWrongInstitution,
    MedTypeNotAllowed,
)
from ecert.suspension import refuse_if

MATERNITY_TYPES = frozenset({"51", "52"})


class PersonFacts(Protocol):
    """What pricing reads of a person: an ORM row or the hot path's plain one."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def area(self) -> str: ...
    @property
    def gender(self) -> str | None: ...
    @property
    def birth_date(self) -> dt.date | None: ...


class InstitutionFacts(Protocol):
    @property
    def code(self) -> str: ...
    @property
    def area(self) -> str: ...
    @property
    def level(self) -> str: ...
    @property
    def kind(self) -> str: ...


class EnrolmentFacts(Protocol):
    @property
    def insurance_type(self) -> str: ...
    @property
    def area(self) -> str: ...


@dataclass(frozen=True)
class PersonContext:
    """Who is billed where, under which enrolment and policy (a visit has no live token)."""

    person: PersonFacts
    institution: InstitutionFacts
    enrolment: EnrolmentFacts
    policy: Policy
    year: int

    def bill(self, med_type: str, items: list[BillItem], referred: bool) -> Bill:
        # Out of area = another prefecture (first four digits of the division code).
        where: Literal["none", "referred", "unreferred"] = "none"
        if self.institution.area[:4] != self.person.area[:4]:
            where = "referred" if referred else "unreferred"
        level = cast(Level, self.institution.level)  # the table's CHECK allows only these
        return Bill(med_type=med_type, items=items, level=level, out_of_area=where)

    def allow(self, med_type: str) -> None:
        """Refuse a medical type that does not fit the institution or the person."""
        allow_med_type(med_type, self.institution.kind, self.person.gender)


def allow_med_type(med_type: str, institution_kind: str, gender: str | None) -> None:
    """41 only at a pharmacy, admissions only at a hospital, maternity only for women.

    The one rule for one-shot bills and visits alike (docs/settlement.md), checked before a token
    is spent.
    """
    if med_type == "41" and institution_kind != "pharmacy":
        raise MedTypeNotAllowed("41 (pharmacy purchase) is for pharmacies")
    if med_type in INPATIENT_TYPES and institution_kind != "hospital":
        raise MedTypeNotAllowed("inpatient medical types are for hospitals")
    if med_type in MATERNITY_TYPES and gender != "F":
        raise MedTypeNotAllowed("maternity medical types are for women")


@dataclass(frozen=True)
class PricingContext(PersonContext):
    token: EcToken
    #: The ORM row (callers show or open it), where pricing needs only ``PersonFacts``.
    person: Person


async def pricing_context(
    session: AsyncSession, principal: Principal, ec_token: str
) -> PricingContext:
    # One round trip for the token, its institution, e-cert, person and enrolments.
    row = await repositories.token_context(session, ec_token)
    if row is None:
        raise EcTokenInvalid()
    token, institution, ecert, person, suspended = row
    if token.institution_code != principal.institution_code:
        raise EcTokenWrongInstitution()
    if token.expires_at < utcnow():
        raise EcTokenExpired()
    if institution is None or not institution.designated:
        raise NotDesignated()
    if token.spent_at is not None:
        raise EcTokenSpent()
    # A revocation that lands before the settlement refuses it; one after it comes after.
    if ecert is None or ecert.status == "revoked":
        raise ECertRevoked()
    refuse_if(suspended)
    if ecert.status == "suspended":
        raise ECertSuspended()
    if token.ecert_version != ecert.version:  # rebound, unbound or suspended since verify
        raise ECertRevoked("the e-cert changed since this token was issued; verify again")
    enrolment, policy, year = await person_policy(session, person)
    return PricingContext(person, institution, enrolment, policy, year, token)


async def loaded_context(
    session: AsyncSession,
    policies: PolicyCache,
    principal: Principal,
    loaded: repositories.Loaded | None,
    year: int,
) -> PersonContext:
    """:func:`pricing_context`'s checks, in its order, on the hot path's plain load
    (``repositories.load``); the policy from the worker's cache when its version still holds."""
    if loaded is None:
        raise EcTokenInvalid()
    if loaded.institution_code != principal.institution_code:
        raise EcTokenWrongInstitution()
    if loaded.expires_at < utcnow():
        raise EcTokenExpired()
    institution = loaded.institution
    if institution is None or not institution.designated:
        raise NotDesignated()
    if loaded.spent:
        raise EcTokenSpent()
    if loaded.ecert_status is None or loaded.ecert_status == "revoked":
        raise ECertRevoked()
    refuse_if(loaded.suspended)
    if loaded.ecert_status == "suspended":
        raise ECertSuspended()
    if loaded.token_version != loaded.ecert_version:
        raise ECertRevoked("the e-cert changed since this token was issued; verify again")
    enrolment, person = loaded.enrolment, loaded.person
    if enrolment is None:
        raise NotEnrolled()
    if loaded.policy_version is not None:  # PostgreSQL: named by the load, with its version
        policy_id, version = loaded.policy_version
        policy = policies.get(policy_id, version)
        if policy is None:
            policy = policies.put(
                policy_id, version, await repositories.policy_body(session, policy_id)
            )
    elif loaded.locked is None:  # SQLite: read here (no version to cache it by)
        found = await ledger.find_policy(
            session, enrolment.area, enrolment.insurance_type, year, person.category
        )
        if found is None:
            raise NoPolicy()
        policy = found
    else:
        raise NoPolicy()
    return PersonContext(person, institution, enrolment, policy, year)


async def designated_institution(session: AsyncSession, principal: Principal) -> Institution:
    """The caller's institution; refused unless designated (before anything is spent)."""
    institution = await repositories.institution_fresh(session, principal.institution_code)
    if institution is None or not institution.designated:
        raise NotDesignated()
    return institution


async def spend(session: AsyncSession, token: EcToken) -> None:
    """Spend the token on the settlement (or visit) it opens: the first caller wins.

    A guarded update, so that of two concurrent settlements with different Idempotency-Keys
    exactly one sees the row change; the loser's transaction rolls back. It belongs to the
    caller's transaction, so a settlement that fails later leaves the token unspent.
    """
    if not await repositories.spend_token(session, token.id):
        raise EcTokenSpent()
