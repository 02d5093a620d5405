"""The one owner of personal data: seal, open, build and find insured people.

The ID number and the name exist only sealed (``ecert.security.pii``); a person is found by the
keyed hash of the ID number. Nothing else in ecert encrypts, decrypts or hashes them, builds a
``Person`` row or looks one up by ID number — the import, the demo, the token endpoint, card
errata and PII key maintenance all come here. It imports no domain.

It is also the repository of ``persons``: its queries live here (plain async functions taking
the caller's session; none commits), not in a separate module.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import Person, utcnow
from ecert.db.upsert import bulk_upsert
from ecert.errors import ValidationFailed
from ecert.identity import IdNumber, normalise_name, parse_id_number
from ecert.security.pii import PiiCipher
from ecert.security.piimaint import Batch

CATEGORIES = ("employee", "retired", "resident")
#: Associated data bound to each sealed column: a blob moved to the other column will not open.
ID_CONTEXT = "person.id"
NAME_CONTEXT = "person.name"
#: (model, column, context) of the sealed person columns, for ``ecert pii reencrypt``.
SEALED_COLUMNS: tuple[tuple[Any, str, str], ...] = (
    (Person, "id_cipher", ID_CONTEXT),
    (Person, "name_cipher", NAME_CONTEXT),
)


@dataclass(frozen=True, slots=True)
class PersonFacts:
    """What the core system says about a person: a checked ID number and a normalised name."""

    number: IdNumber
    name: str
    area: str
    category: str


def _identity(cipher: PiiCipher, number: IdNumber) -> dict[str, Any]:
    """The columns that follow from the ID number: its hash, its seal, and what it encodes."""
    return {
        "id_hash": cipher.lookup_hash(number.value),
        "id_cipher": cipher.encrypt(number.value, context=ID_CONTEXT),
        "id_kind": number.kind.value,
        "gender": number.sex,
        "birth_date": number.birth_date,
    }


def _seal_name(cipher: PiiCipher, name: str) -> bytes:
    return cipher.encrypt(normalise_name(name), context=NAME_CONTEXT)


def _person_no() -> str:
    return secrets.token_hex(8).upper()


def rename(cipher: PiiCipher, person: Person, name: str) -> None:
    person.name_cipher = _seal_name(cipher, name)


def renumber(cipher: PiiCipher, person: Person, number: IdNumber) -> None:
    """Give ``person`` another ID number (card errata); the caller checks nobody else holds it."""
    for column, value in _identity(cipher, number).items():
        setattr(person, column, value)


async def get_person(session: AsyncSession, person_id: uuid.UUID) -> Person | None:
    return await session.get(Person, person_id)


async def people_by_id(session: AsyncSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Person]:
    """The registered ones of these people, by id."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = (await session.scalars(select(Person).where(Person.id.in_(wanted)))).all()
    return {p.id: p for p in rows}


async def find_person(session: AsyncSession, cipher: PiiCipher, number: IdNumber) -> Person | None:
    """The person with this ID number."""
    query = select(Person).where(Person.id_hash.in_(cipher.lookup_hashes(number.value)))
    person: Person | None = await session.scalar(query)
    return person


async def find_person_ids(
    session: AsyncSession, cipher: PiiCipher, numbers: Iterable[str]
) -> dict[str, uuid.UUID]:
    """Person ids by normalised ID number, for those of ``numbers`` that are registered."""
    by_hash = {h: n for n in numbers for h in cipher.lookup_hashes(n)}
    found = await session.execute(
        select(Person.id_hash, Person.id).where(Person.id_hash.in_(list(by_hash)))
    )
    return {by_hash[h]: pid for h, pid in found.all()}


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
    if person is None:
        person = Person(
            **_identity(cipher, number),
            name_cipher=_seal_name(cipher, name),
            area=area,
            category=category,
            person_no=_person_no(),
        )
        session.add(person)
    else:
        rename(cipher, person, name)
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
    return cipher.decrypt(sealed, context=ID_CONTEXT)


def open_name(cipher: PiiCipher, sealed: bytes) -> str:
    return cipher.decrypt(sealed, context=NAME_CONTEXT)


async def upsert_persons(
    session: AsyncSession, cipher: PiiCipher, people: Iterable[PersonFacts]
) -> None:
    """:func:`upsert_person` for an import batch, in one bulk statement; a later entry for the
    same ID number wins (one statement cannot touch a key twice)."""
    now = utcnow()
    rows: dict[str, dict[str, Any]] = {}
    for facts in people:
        identity = _identity(cipher, facts.number)
        rows[facts.number.value] = {
            "id": uuid.uuid4(),
            **identity,
            "name_cipher": _seal_name(cipher, facts.name),
            "area": facts.area,
            "category": facts.category,
            "person_no": _person_no(),
            "created_at": now,
            "updated_at": now,
        }
    if cipher.other_hash_keys:
        # During a hash key rotation, re-hash these people first: the upsert matches on the
        # active key's hash and would otherwise add a second row for one still under an old key.
        for number in rows:
            active, *old = cipher.lookup_hashes(number)
            await session.execute(
                update(Person).where(Person.id_hash.in_(old)).values(id_hash=active)
            )
    await bulk_upsert(
        session,
        Person.__table__,
        list(rows.values()),
        keys=("id_hash",),
        update=("name_cipher", "area", "category", "updated_at"),
    )


class DuplicatePerson(Exception):
    """Two rows hold one ID number under different hash keys (written during a one-phase hash
    key change); they must be merged by hand before the rehash can go on."""

    def __init__(self, person_id: object, twin_id: object) -> None:
        super().__init__(
            f"persons {person_id} and {twin_id} hold the same ID number under different hash "
            "keys: merge them (keep one, move its enrolments, accounts and e-certs), then run "
            "`ecert pii rehash` again"
        )


async def rehash_batch(session: AsyncSession, cipher: PiiCipher, after: Any, size: int) -> Batch:
    """Give the next ``size`` people the active hash key's lookup hash (``ecert pii rehash``;
    resumable and compare-and-set, as the walks of :mod:`ecert.security.piimaint`)."""
    query = select(Person.id, Person.id_hash, Person.id_cipher).order_by(Person.id).limit(size)
    if after is not None:
        query = query.where(Person.id > after)
    rows = (await session.execute(query)).all()
    changed = 0
    for pk, old, blob in rows:
        new = cipher.lookup_hash(cipher.decrypt(blob, context=ID_CONTEXT))
        if new == old:
            continue
        twin = await session.scalar(select(Person.id).where(Person.id_hash == new))
        if twin is not None:
            raise DuplicatePerson(pk, twin)
        result = await session.execute(
            update(Person).where(Person.id == pk, Person.id_hash == old).values(id_hash=new)
        )
        changed += result.rowcount  # type: ignore[attr-defined]
    return Batch(len(rows), changed, rows[-1][0] if rows else None)
