"""The issuance queries of the hot mint path. Plain async functions taking the caller's session;
none commits."""

from __future__ import annotations

import uuid
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.db.models import ECert
from ecert.suspension import in_force


class MintState(NamedTuple):
    """What minting needs of an e-cert, and whether its person is suspended."""

    ecert_id: uuid.UUID
    pseudonym: str
    version: int
    status: str
    suspended: bool


_PERSON = bindparam("person_id", type_=ECert.person_id.type)
#: Built once (Core, five columns, no ORM identity map): the statement's cache key is then
#: found without rebuilding the select on every mint.
_MINT_STATE = select(
    ECert.id, ECert.pseudonym, ECert.version, ECert.status, in_force(_PERSON)
).where(ECert.person_id == _PERSON, ECert.channel == bindparam("channel"))


async def mint_state(session: AsyncSession, person_id: uuid.UUID, channel: str) -> MintState | None:
    """The person's e-cert on ``channel`` as minting sees it; None when there is none."""
    row = (await session.execute(_MINT_STATE, {"person_id": person_id, "channel": channel})).first()
    if row is None:
        return None
    return MintState(row[0], row[1], row[2], str(row[3]), bool(row[4]))
