"""Registering and finding insured people by ID number, without storing the number in clear.

Shared by the import, the demo and the token endpoint; it imports no domain.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import Person
from ecert.identity import IdNumber, normalise_name, parse_id_number
from ecert.security.pii import PiiCipher

CATEGORIES = ("employee", "retired", "resident")


async def find_person(session: AsyncSession, cipher: PiiCipher, number: IdNumber) -> Person | None:
    person: Person | None = await session.scalar(
        select(Person).where(Person.id_hash.in_(cipher.lookup_hashes(number.value)))
    )
    return person


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
    return open_id_number(cipher, person.id_cipher)


def person_name(cipher: PiiCipher, person: Person) -> str:
    return open_name(cipher, person.name_cipher)


def open_id_number(cipher: PiiCipher, sealed: bytes) -> str:
    """The ID number from its ciphertext column (for paths that read columns, not rows)."""
    return cipher.decrypt(sealed, context="person.id")


def open_name(cipher: PiiCipher, sealed: bytes) -> str:
    return cipher.decrypt(sealed, context="person.name")
