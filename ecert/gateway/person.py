"""9001 sign-in and 1101 person query (by ecToken, ID number or card)."""

from __future__ import annotations

import secrets

from ecert import ledger
from ecert.cards import services as cards
from ecert.clock import business_date, utcnow
from ecert.db.models import Person
from ecert.gateway import repositories
from ecert.gateway.call import CARD, EC_TOKEN, ID_NUMBER, Call, national_time
from ecert.gateway.exceptions import CertTypeUnsupported, InputInvalid, PersonNotFound
from ecert.gateway.money import to_yuan
from ecert.gateway.schemas import (
    BaseInfo,
    InsuInfo,
    PersonOutput,
    PersonQuery,
    PersonQueryInput,
    SignInInput,
    SignInOut,
    SignInOutput,
)
from ecert.identity import age_on, mask_id_number, mask_name, names_match, parse_id_number
from ecert.persons import find_person, person_id_number, person_name
from ecert.security.audit import concerning, record_audit, refusal_reason
from ecert.settlement.context import designated_institution, pricing_context
from ecert.settlement.visits.exceptions import CardNotUsable
from ecert.verify.services import FULL_IDENTITY_SCOPE

#: ecert's person categories as national ``psn_type`` (11 in-service, 12 retired employee,
#: 1501 urban-rural resident; illustrative, areas refine them).
PSN_TYPES = {"employee": "11", "retired": "12", "resident": "1501"}
#: Enrolment status as national ``psn_insu_stas``: 1 insured, 2 paused, 4 terminated.
INSU_STATES = {"active": "1", "paused": "2", "terminated": "4"}
GENDERS = {"M": "1", "F": "2"}


async def sign_in(call: Call, _: SignInInput) -> SignInOutput:
    """9001: a sign number for the operator's session (carried in ``sign_no``, not checked)."""
    now = utcnow()
    number = now.strftime("%Y%m%d%H%M%S") + f"{secrets.randbelow(10**16):016d}"
    return SignInOutput(SignInOut(sign_time=national_time(now), sign_no=number))


async def person_query(call: Call, data: PersonQueryInput) -> PersonOutput:
    """1101: who the credential names, masked, with each insurance and the account balance."""
    query = data.data
    if query.mdtrt_cert_type == EC_TOKEN:
        if not query.mdtrt_cert_no:
            raise InputInvalid("mdtrt_cert_no must carry the ecToken")
        # Every check a 2201 would make (binding, lifetime, designation, state); nothing spent.
        person = (await pricing_context(call.session, call.principal, query.mdtrt_cert_no)).person
    elif query.mdtrt_cert_type == ID_NUMBER:
        person = await _by_id_number(call, query)
    elif query.mdtrt_cert_type == CARD:
        if not query.mdtrt_cert_no:
            raise InputInvalid("mdtrt_cert_no must carry the card number")
        await designated_institution(call.session, call.principal)
        card = await cards.check(call.session, call.principal, query.mdtrt_cert_no)
        if card.status != "active":
            raise CardNotUsable()
        found = await call.session.get(Person, card.person_id)
        assert found is not None  # the card's foreign key
        person = found
    else:
        raise CertTypeUnsupported()
    await record_audit(
        call.session,
        call.principal,
        person.id,
        "gateway.person_query",
        "ok",
        {"mdtrt_cert_type": query.mdtrt_cert_type},
    )
    return await _answer(call, person)


async def _by_id_number(call: Call, query: PersonQuery) -> Person:
    """02: designated institutions only (checked first); an unknown number and a wrong name get
    the same answer, so the query tells no one who is insured. Audited either way."""
    await designated_institution(call.session, call.principal)
    raw = query.certno or query.mdtrt_cert_no
    if not raw:
        raise InputInvalid("certno (or mdtrt_cert_no) must carry the ID number")
    person = await find_person(call.session, call.runtime.cipher, parse_id_number(raw))
    if person is None:
        refusal_reason("unknown ID number")
        raise PersonNotFound()
    concerning(person.id)
    if query.psn_name and not names_match(person_name(call.runtime.cipher, person), query.psn_name):
        refusal_reason("name does not match")
        raise PersonNotFound()
    return person


async def _answer(call: Call, person: Person) -> PersonOutput:
    cipher = call.runtime.cipher
    name = person_name(cipher, person)
    balance = await ledger.balance(call.session, person.id)
    enrolments = await repositories.enrolments_of(call.session, person.id)
    full = FULL_IDENTITY_SCOPE in call.principal.scopes
    return PersonOutput(
        baseinfo=BaseInfo(
            psn_no=person.person_no,
            psn_cert_type="01",
            certno=mask_id_number(person_id_number(cipher, person)),
            psn_name=name if full else mask_name(name),
            gend=GENDERS.get(person.gender or ""),
            naty=None,
            brdy=person.birth_date.isoformat() if person.birth_date else None,
            age=age_on(person.birth_date, business_date()) if person.birth_date else None,
        ),
        insuinfo=[
            InsuInfo(
                balc=to_yuan(balance or 0),
                insutype=e.insurance_type,
                psn_type=PSN_TYPES.get(person.category, "99"),
                psn_insu_stas=INSU_STATES.get(e.status, "9"),
                psn_insu_date=e.start_date.isoformat(),
                paus_insu_date=e.end_date.isoformat() if e.end_date else None,
                cvlserv_flag="0",
                insuplc_admdvs=e.area,
                emp_name=e.employer,
            )
            for e in enrolments
        ],
        idetinfo=[],
    )
