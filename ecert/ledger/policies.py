"""The policy in force for a person: their basic enrolment and the policy that prices it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ecert.benefits import Policy
from ecert.clock import business_date
from ecert.db.models import Enrolment, EnrolmentStatus, Person
from ecert.errors import NotEnrolled
from ecert.ledger.exceptions import NoPolicy
from ecert.ledger.repositories import find_policy

#: Basic schemes first: a settlement is priced under the person's basic medical insurance.
BASIC_TYPES = ("310", "390")


async def person_policy(session: AsyncSession, person: Person) -> tuple[Enrolment, Policy, int]:
    """The basic enrolment and the policy that prices this person's bills this business year.
    ``person.enrolments`` must be loaded."""
    basic = sorted(
        (
            e
            for e in person.enrolments
            if e.status == EnrolmentStatus.ACTIVE and e.insurance_type in BASIC_TYPES
        ),
        key=lambda e: BASIC_TYPES.index(e.insurance_type),
    )
    if not basic:
        raise NotEnrolled()
    enrolment = basic[0]
    year = business_date().year
    policy = await find_policy(
        session, enrolment.area, enrolment.insurance_type, year, person.category
    )
    if policy is None:
        raise NoPolicy()
    return enrolment, policy, year
