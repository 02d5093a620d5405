"""The policy in force for a person: their basic enrolment and the policy that prices it."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.benefits import Policy
from ecert.clock import business_date
from ecert.db.models import Enrolment, EnrolmentStatus, Person
from ecert.errors import NotEnrolled
from ecert.ledger.exceptions import NoPolicy
from ecert.ledger.repositories import find_policy

#: Basic schemes first: a settlement is priced under the person's basic medical insurance.
BASIC_TYPES = ("310", "390")


def business_year() -> int:
    """The year whose policy and usage a bill counts against (Asia/Shanghai business date)."""
    return business_date().year


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
    year = business_year()
    policy = await find_policy(
        session, enrolment.area, enrolment.insurance_type, year, person.category
    )
    if policy is None:
        raise NoPolicy()
    return enrolment, policy, year


class PolicyCache:
    """The policies a worker has parsed, by id, each with the row version it was read at
    (PostgreSQL's ``xmin``, which every update of the row changes). A reader that names the
    policy in force with its version in its own statement (settle's load) gets it without a
    round trip, and an import or agency upload in any worker is seen at the next read: the
    version no longer matches. One entry a policy row, replaced when it changes."""

    def __init__(self) -> None:
        self._held: dict[uuid.UUID, tuple[str, Policy]] = {}

    def get(self, policy_id: uuid.UUID, version: str) -> Policy | None:
        held = self._held.get(policy_id)
        return held[1] if held is not None and held[0] == version else None

    def put(self, policy_id: uuid.UUID, version: str, body: dict[str, Any]) -> Policy:
        policy = msgspec.convert(body, Policy)
        self._held[policy_id] = (version, policy)
        return policy
