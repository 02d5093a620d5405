"""Steps of the cross-province tests: A's insured person, B's hospital, a routed visit."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import func, select

from ecert.db.models import ClearingRecord, Settlement
from ecert.server.runtime import Runtime
from tests.factories import Holder, add_client, credit, holder, institution, load_policies
from tests.federation.conftest import AREA_B, Province
from tests.fixtures.auth import bearer, client_token
from tests.settlement.visit_steps import visit_body

HOSPITAL_B = "H44010600001"


async def insured_in_a(a: Province, balance: int = 0) -> Holder:
    await load_policies(a.runtime)
    person = await holder(a.client, a.runtime)
    if balance:
        await credit(a.runtime, person.person_id, balance)
    return person


async def hospital_in_b(b: Province) -> dict[str, str]:
    return await institution(b.client, b.runtime, code=HOSPITAL_B, area=AREA_B, level="3")


async def agency(p: Province) -> dict[str, str]:
    return bearer(await client_token(p.client, *await add_client(p.runtime, "agency")))


def keyed(headers: dict[str, str], key: str | None = None) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key or uuid.uuid4().hex}


async def routed_visit(
    a: Province, b: Province, person: Holder, hospital: dict[str, str], **more: Any
) -> str:
    """Scan A's code at B's hospital and open a visit with it: both go to A."""
    verified = await b.client.post(
        "/v1/verify", json={"qr": await person.qr(a.client)}, headers=hospital
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["person"]["insured_area"] == "370102"
    token = verified.json()["ec_token"]
    opened = await b.client.post(
        "/v1/visits", json=visit_body(token, **more), headers=keyed(hospital)
    )
    assert opened.status_code == 201, opened.text
    return str(opened.json()["visit_id"])


async def upload(b: Province, hospital: dict[str, str], visit_id: str, *lines: Any) -> None:
    response = await b.client.post(
        f"/v1/visits/{visit_id}/fees", json={"lines": list(lines)}, headers=hospital
    )
    assert response.status_code == 200, response.text


async def settle(
    b: Province, hospital: dict[str, str], visit_id: str, key: str | None = None, **body: Any
) -> httpx.Response:
    return await b.client.post(
        f"/v1/visits/{visit_id}/settlements", json=body, headers=keyed(hospital, key)
    )


async def count(p: Province | Runtime, model: type[Settlement] | type[ClearingRecord]) -> int:
    runtime = p.runtime if isinstance(p, Province) else p
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def fee(line_no: str, amount: int, quantity: str = "1", item_class: str = "A") -> dict[str, Any]:
    unit = amount // int(quantity)
    return {
        "line_no": line_no,
        "list_code": f"X{line_no:0>5}",
        "name": f"项目 {line_no}",
        "quantity": quantity,
        "unit_price": unit,
        "item_class": item_class,
    }
