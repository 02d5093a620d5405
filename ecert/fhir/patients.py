"""Who a FHIR ``patient`` Reference names, for the caller at hand."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import Person
from ecert.errors import Forbidden, NotFound, ValidationFailed
from ecert.fhir import repositories
from ecert.fhir.codes import EC_TOKEN, PERSON
from ecert.security.tokens import Principal
from ecert.settlement.context import pricing_context
from ecert.settlement.exceptions import EcTokenSpent


def identifier_of(reference: Any) -> tuple[str, str]:
    """(system, value) of a patient Reference; only identifier references are taken."""
    identifier = getattr(reference, "identifier", None)
    system = getattr(identifier, "system", None)
    value = getattr(identifier, "value", None)
    if system not in (EC_TOKEN, PERSON) or not value:
        raise ValidationFailed(
            f"name the patient by Reference.identifier with system {EC_TOKEN} or {PERSON}"
        )
    return system, value


async def person_of(session: AsyncSession, principal: Principal, reference: Any) -> Person:
    """The person: an institution names them by the ec_token of a verified scan (before or after
    it opened a visit here), a channel acting for a person by that person's number."""
    system, value = identifier_of(reference)
    if system == PERSON:
        if principal.person_id is None:
            raise Forbidden(f"institutions name the patient by {EC_TOKEN}")
        person = await session.get(Person, principal.person_id)
        if person is None:
            raise NotFound("the person is no longer registered")
        if person.person_no != value:
            raise Forbidden("this token acts for another person")
        return person
    if principal.institution_code is None:
        raise Forbidden(f"a channel names the patient by {PERSON}")
    try:
        # Binding, lifetime, designation and suspension checks; nothing is spent.
        return (await pricing_context(session, principal, value)).person
    except EcTokenSpent:
        visit = await repositories.visit_of_token(session, principal.institution_code, value)
        if visit is None:
            raise
        person = await session.get(Person, visit.person_id)
        assert person is not None  # the visit's foreign key
        return person
