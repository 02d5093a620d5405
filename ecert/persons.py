"""Registering and finding insured people by ID number, without storing the number in clear.

Shared by the import, the demo and the token endpoint; it imports no domain.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import Person
from ecert.errors import ValidationFailed
from ecert.identity import IdNumber, normalise_name, parse_id_number
from ecert.security.pii import PiiCipher

CATEGORIES = ("employee", "retired", "resident")


async def find_person(session: AsyncSession, cipher: PiiCipher, number: IdNumber) -> Person | None:
    person: Person | None = await session.scalar(
        select(Person).where(Person.id_hash.in_(cipher.lookup_hashes(number.value)))
    )
    return person


async def find_by_ref(
    session: AsyncSession, cipher: PiiCipher, id_number: str | None, person_no: str | None
) -> Person | None:
    """The person an agency request names: by ID number (body, prompt or file, never a URL) or
    by the opaque person number the console and the CLI may use instead."""
    if person_no is not None:
        found: Person | None = await session.scalar(
            select(Person).where(Person.person_no == person_no)
        )
        return found
    if id_number is None:
        raise ValidationFailed("name the person by id_number or person_no")
    return await find_person(session, cipher, parse_id_number(id_number))


async def upsert_person(
    session: AsyncSession,
    cipher: PiiCipher,
    *,
    id_number: str,
    name: str,
    area: str,
    category: str,
) -> Person:
    """Create the person, or update name/area/category of the one with this ID number."""
    number = parse_id_number(id_number)
    person = await find_person(session, cipher, number)
    name_cipher = cipher.encrypt(normalise_name(name), context="person.name")
    if person is None:
        person = Person(
            id_hash=cipher.lookup_hash(number.value),
            id_cipher=cipher.encrypt(number.value, context="person.id"),
            name_cipher=name_cipher,
            id_kind=number.kind.value,
            gender=number.sex,
            birth_date=number.birth_date,
            area=area,
            category=category,
            person_no=secrets.token_hex(8).upper(),
        )
        session.add(person)
    else:
        person.name_cipher = name_cipher
        person.area = area
        person.category = category
    await session.flush()
    return person


def person_id_number(cipher: PiiCipher, person: Person) -> str:
    return cipher.decrypt(person.id_cipher, context="person.id")


def person_name(cipher: PiiCipher, person: Person) -> str:
    return cipher.decrypt(person.name_cipher, context="person.name")
