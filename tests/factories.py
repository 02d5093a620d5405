"""Scenario factories shared by verify and settlement tests."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from ecert import ledger
from ecert.clock import business_date
from ecert.data import illustrative_policies
from ecert.db.models import ECert, Enrolment, Person
from ecert.identity import make_id_number
from ecert.oauth.services import register_client
from ecert.persons import upsert_person
from ecert.qr import codec
from ecert.server.runtime import Runtime
from tests.fixtures.auth import bearer, client_token, person_token
from tests.helpers import Client

_seq = iter(range(1, 10**6))


def new_id_number(area: str = "370102", birth: dt.date = dt.date(1980, 5, 17)) -> str:
    return make_id_number(area, birth, next(_seq) % 1000)


async def add_client(runtime: Runtime, kind: str, **kwargs: Any) -> tuple[str, str | None]:
    if kind == "institution":
        kwargs.setdefault("code", f"H370102{next(_seq):05d}")
        kwargs.setdefault("level", "3")
        kwargs.setdefault("area", "370102")
    async with runtime.sessions.begin() as session:
        client, secret = await register_client(
            session,
            cipher=runtime.cipher,
            kind=kind,
            name=kwargs.pop("name", f"test {kind}"),
            **kwargs,
        )
        return client.client_id, secret


async def add_person(
    runtime: Runtime,
    *,
    id_number: str | None = None,
    name: str = "张三",
    area: str = "370102",
    category: str = "employee",
    enrolment_status: str | None = "active",
    insurance_type: str = "310",
) -> tuple[Person, str]:
    number = id_number or new_id_number(area)
    async with runtime.sessions.begin() as session:
        person = await upsert_person(
            session, runtime.cipher, id_number=number, name=name, area=area, category=category
        )
        if enrolment_status is not None:
            session.add(
                Enrolment(
                    person_id=person.id,
                    insurance_type=insurance_type,
                    area=area,
                    employer="测试单位",
                    status=enrolment_status,
                    start_date=dt.date(2020, 1, 1),
                )
            )
    return person, number


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
