"""Scenario factories shared by verify and settlement tests."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select, update

from ecert import ledger
from ecert.clock import business_date
from ecert.data import illustrative_policies
from ecert.db.models import ECert, Enrolment
from ecert.qr import codec
from ecert.server.runtime import Runtime
from tests.helpers import Client, add_client, add_person, bearer, client_token, person_token

DEVICE = {"device_id": "phone-1", "device_name": "Mate 60"}


@dataclass
class Holder:
    """A person with an activated e-cert, and the channel's person-scoped headers."""

    person_id: object
    id_number: str
    name: str
    headers: dict[str, str]

    async def qr(self, client: Client) -> str:
        response = await client.post("/v1/me/ecert/qr", headers=self.headers)
        assert response.status_code == 200, response.text
        return str(response.json()["qr"])


async def holder(
    client: Client, runtime: Runtime, *, name: str = "张三", **person: object
) -> Holder:
    channel = await add_client(runtime, "channel")
    row, id_number = await add_person(runtime, name=name, **person)  # type: ignore[arg-type]
    headers = bearer(await person_token(client, runtime, channel, id_number, name))
    response = await client.post("/v1/me/ecert", json=DEVICE, headers=headers)
    assert response.status_code == 200, response.text
    return Holder(row.id, id_number, name, headers)


async def institution(
    client: Client,
    runtime: Runtime,
    *,
    code: str = "H37010200001",
    level: str = "3",
    area: str = "370102",
    scopes: str | None = None,
) -> dict[str, str]:
    creds = await add_client(
        runtime, "institution", code=code, level=level, area=area, scopes=scopes
    )
    return bearer(await client_token(client, *creds))


async def mint_at(runtime: Runtime, holder: Holder, *, iat: int, ver: int | None = None) -> str:
    """A QR token signed by the real active key but issued at a chosen time."""
    async with runtime.sessions() as session:
        ecert = await session.scalar(select(ECert).where(ECert.person_id == holder.person_id))
    assert ecert is not None
    signer = runtime.keys.signer("qr")
    claims = codec.new_claims(
        runtime.settings.issuer_area,
        ecert.pseudonym,
        ver or ecert.version,
        iat,
        runtime.settings.qr_ttl_s,
    )
    return codec.encode(claims, signer.private, signer.kid)


async def set_enrolment(runtime: Runtime, holder: Holder, status: str) -> None:
    async with runtime.sessions.begin() as session:
        await session.execute(
            update(Enrolment).where(Enrolment.person_id == holder.person_id).values(status=status)
        )


def now() -> int:
    return int(time.time())


async def load_policies(runtime: Runtime) -> None:
    """The packaged illustrative policies, for the current business year."""
    async with runtime.sessions.begin() as session:
        await ledger.upsert_policies(session, illustrative_policies(business_date().year))


async def credit(runtime: Runtime, person_id: object, amount: int) -> None:
    async with runtime.sessions.begin() as session:
        await ledger.credit(session, person_id, amount, "test credit")  # type: ignore[arg-type]


async def ec_token(
    client: Client, runtime: Runtime, person: Holder, headers: dict[str, str]
) -> str:
    response = await client.post(
        "/v1/verify", json={"qr": await person.qr(client)}, headers=headers
    )
    assert response.status_code == 200, response.text
    return str(response.json()["ec_token"])
