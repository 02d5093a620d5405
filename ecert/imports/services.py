"""Validate rows one by one and apply them in batches of upserts: idempotent on re-import.

A bad row is rejected with its line number and a reason (never the ID number); good rows land.
Paid (or back-paid) contribution months credit the personal account exactly once, guarded by the
row's ``credited`` flag, whichever import brings them.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from ecert import ledger, persons
from ecert.benefits import Policy
from ecert.db.models import utcnow
from ecert.errors import EcertError
from ecert.identity import normalise_name, parse_id_number
from ecert.imports import repositories, schemas
from ecert.imports.readers import Row
from ecert.server.runtime import Runtime

BATCH = 1000
#: PostgreSQL's persons and contributions merges (COPY into staging): larger batches spread each
#: transaction's fixed cost (staging table, planning, commit) over more rows; memory stays
#: bounded by the batch.
MERGE_BATCH = 5000
MERGED = {"persons", "contributions"}
#: How often (rows) validation hands the event loop to the batch being written meanwhile.
YIELD_EVERY = 200
KINDS: dict[str, type[msgspec.Struct]] = {
    "persons": schemas.PersonRow,
    "enrolments": schemas.EnrolmentRow,
    "contributions": schemas.ContributionRow,
    "institutions": schemas.InstitutionRow,
    "policies": Policy,
    "catalogue": schemas.CatalogueRow,
}


#: msgspec quotes the offending value in some messages ("Invalid enum value '…'"); a shifted CSV
#: column can put an ID number or a name there, so quoted values never reach a reject.
_QUOTED = re.compile(r" ?'[^']*'")


def _reason(exc: msgspec.ValidationError) -> str:
    """msgspec's message (it names the field) without any value it quotes."""
    return _QUOTED.sub("", str(exc))


def validate(
    kind: str, line: int, raw: dict[str, Any] | str, checked: dict[str, str] | None = None
) -> msgspec.Struct | schemas.Reject:
    """One row, converted and checked. ``checked`` (the caller's, per batch) remembers ID numbers
    already normalised: a contributions file repeats each person's number every month."""
    if isinstance(raw, str):
        return schemas.Reject(line=line, reason=raw)
    try:
        row = msgspec.convert(raw, KINDS[kind], strict=False)
    except msgspec.ValidationError as exc:
        return schemas.Reject(line=line, reason=_reason(exc))
    if isinstance(row, schemas.PersonRow):
        try:
            row = msgspec.structs.replace(row, name=normalise_name(row.name))
        except EcertError as exc:
            return schemas.Reject(line=line, reason=f"name: {exc.detail}")
    number = getattr(row, "id_number", None)
    if number is not None:
        normalised = checked.get(number) if checked is not None else None
        if normalised is None:
            try:
                normalised = parse_id_number(number).value
            except EcertError as exc:
                return schemas.Reject(line=line, reason=f"id_number: {exc.detail}")
            if checked is not None:
                checked[number] = normalised
        if normalised != number:
            row = msgspec.structs.replace(row, id_number=normalised)
    return row


async def _persons(
    session: AsyncSession, runtime: Runtime, batch: list[tuple[int, Any]]
) -> list[schemas.Reject]:
    facts = (
        persons.PersonFacts(parse_id_number(r.id_number), r.name, r.area, r.category)
        for _, r in batch
    )
    await persons.upsert_persons(session, runtime.cipher, facts)
    return []


def _last_wins(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    # One statement cannot touch the same key twice; a file may: the later line wins.
    return list({tuple(r[k] for k in keys): r for r in rows}.values())


async def _by_person(
    session: AsyncSession,
    runtime: Runtime,
    batch: list[tuple[int, Any]],
    make: Callable[[uuid.UUID, Any], dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[schemas.Reject]]:
    ids = await persons.find_person_ids(session, runtime.cipher, {r.id_number for _, r in batch})
    rows, rejects = [], []
    for line, r in batch:
        if r.id_number not in ids:
            rejects.append(schemas.Reject(line=line, reason="no such person: import persons first"))
        else:
            rows.append(make(ids[r.id_number], r))
    return rows, rejects


def _row(person_id: uuid.UUID, row: msgspec.Struct, **extra: Any) -> dict[str, Any]:
    """A table row from an import row: its fields but the ID number, the person, timestamps."""
    now = utcnow()
    fields = {k: v for k, v in msgspec.structs.asdict(row).items() if k != "id_number"}
    return {
        "id": uuid.uuid4(),
        "person_id": person_id,
        **fields,
        **extra,
        "created_at": now,
        "updated_at": now,
    }


async def _enrolments(
    session: AsyncSession, runtime: Runtime, batch: list[tuple[int, Any]]
) -> list[schemas.Reject]:
    rows, rejects = await _by_person(session, runtime, batch, _row)
    await repositories.upsert_enrolments(session, _last_wins(rows, "person_id", "insurance_type"))
    return rejects


async def _contributions(
    session: AsyncSession, runtime: Runtime, batch: list[tuple[int, Any]]
) -> list[schemas.Reject]:
    if session.get_bind().dialect.name == "postgresql":
        return await _contributions_merged(session, runtime, batch)
    rows, rejects = await _by_person(
        session, runtime, batch, lambda pid, r: _row(pid, r, credited=False)
    )
    rows = _last_wins(rows, "person_id", "month")
    await repositories.upsert_contributions(session, rows)
    claimed = await repositories.claim_credits(session, {r["person_id"] for r in rows})
    by_person: dict[uuid.UUID, list[tuple[int, str]]] = {}
    for person_id, month, amount in sorted(claimed, key=lambda c: (str(c[0]), c[1])):
        by_person.setdefault(person_id, []).append((amount, f"contribution {month}"))
    await ledger.credit_many(session, by_person)
    return rejects


async def _contributions_merged(
    session: AsyncSession, runtime: Runtime, batch: list[tuple[int, Any]]
) -> list[schemas.Reject]:
    """PostgreSQL: staged by ``COPY`` and merged set-based, credits in the same statement."""
    ids = await persons.find_person_ids(session, runtime.cipher, {r.id_number for _, r in batch})
    records, rejects = [], []
    for line, r in batch:
        person_id = ids.get(r.id_number)
        if person_id is None:
            rejects.append(schemas.Reject(line=line, reason="no such person: import persons first"))
        else:
            records.append(repositories.staged(line, person_id, r))
    await repositories.merge_contributions(session, records, utcnow())
    return rejects


async def _institutions(
    session: AsyncSession, runtime: Runtime, batch: list[tuple[int, Any]]
) -> list[schemas.Reject]:
    now = utcnow()
    rows = [
        {"id": uuid.uuid4(), **msgspec.structs.asdict(r), "created_at": now, "updated_at": now}
        for _, r in batch
    ]
    await repositories.upsert_institutions(session, _last_wins(rows, "code"))
    return []


async def _policies(
    session: AsyncSession, runtime: Runtime, batch: list[tuple[int, Any]]
) -> list[schemas.Reject]:
    await ledger.upsert_policies(session, [msgspec.to_builtins(r) for _, r in batch])
    return []


async def _catalogue(
    session: AsyncSession, runtime: Runtime, batch: list[tuple[int, Any]]
) -> list[schemas.Reject]:
    await ledger.upsert_catalogue(session, [msgspec.structs.asdict(r) for _, r in batch])
    return []


APPLY = {
    "persons": _persons,
    "enrolments": _enrolments,
    "contributions": _contributions,
    "institutions": _institutions,
    "policies": _policies,
    "catalogue": _catalogue,
}


async def run_import(
    runtime: Runtime,
    kind: str,
    source: Iterable[Row],
    *,
    on_reject: Callable[[schemas.Reject], None],
) -> int:
    """Apply every good row, one transaction a batch; return how many landed.

    Pipelined: while one batch is written, the next one is read and validated (the database
    works in its own process meanwhile); at most two batches are held. A batch's rejects, its
    unreadable lines and its unknown people alike, are reported in line order once it landed."""
    accepted = 0
    merged = kind in MERGED and runtime.engine.dialect.name == "postgresql"
    size = MERGE_BATCH if merged else BATCH
    batch: list[tuple[int, Any]] = []
    rejects: list[schemas.Reject] = []
    checked: dict[str, str] = {}  # cleared with each batch: ID numbers do not linger in memory
    writing: asyncio.Future[None] | None = None

    async def land(batch: list[tuple[int, Any]], rejects: list[schemas.Reject]) -> None:
        nonlocal accepted
        async with runtime.sessions.begin() as session:
            rejected = await APPLY[kind](session, runtime, batch)
        for reject in sorted([*rejects, *rejected], key=lambda r: r.line):
            on_reject(reject)
        accepted += len(batch) - len(rejected)

    try:
        for count, (line, raw) in enumerate(source, start=1):
            row = validate(kind, line, raw, checked)
            if isinstance(row, schemas.Reject):
                rejects.append(row)
            else:
                batch.append((line, row))
            if len(batch) >= size:
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(land(batch, rejects))
                batch, rejects = [], []
                checked.clear()
            elif count % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let the batch being written take its next round trip
    finally:
        if writing is not None:
            # Land the batch in flight even when reading failed: what was read stays landed.
            await writing
    if batch or rejects:
        await land(batch, rejects)
    return accepted
