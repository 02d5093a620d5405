"""Steps shared by the visit tests: a priced person and a hospital, open, upload, settle."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx

from ecert.data import illustrative_catalogue
from ecert.identity import make_id_number
from ecert.imports.schemas import Reject
from ecert.imports.services import run_import
from ecert.server.runtime import Runtime
from tests.factories import Holder, credit, ec_token, holder, institution, load_policies
from tests.helpers import Client

_seq = iter(range(100, 10**6))


def id_number(gender: str = "M", birth: dt.date = dt.date(1980, 5, 17)) -> str:
    """A fresh ID number of the given sex (the 17th digit's parity)."""
    while True:
        seq = next(_seq) % 1000
        if (seq % 2 == 1) == (gender == "M"):
            return make_id_number("370102", birth, seq)


async def setup(
    client: Client,
    runtime: Runtime,
    *,
    balance: int = 50_000,
    gender: str = "M",
    birth: dt.date = dt.date(1980, 5, 17),
    **hospital: Any,
) -> tuple[Holder, dict[str, str]]:
    await load_policies(runtime)
    person = await holder(client, runtime, id_number=id_number(gender, birth))
    await credit(runtime, person.person_id, balance)
    return person, await institution(client, runtime, **hospital)


def visit_body(token: str | None = None, med_type: str = "11", **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "med_type": med_type,
        "his_visit_no": "MZ20261201-0001",
        "dept_code": "A03",
        "dept_name": "内科",
        "doctor_name": "李医生",
        "diagnoses": [{"code": "J06.900", "name": "急性上呼吸道感染", "main": True}],
        **more,
    }
    if token is not None:
        body["ec_token"] = token
    return body


async def open_visit(
    client: Client, headers: dict[str, str], body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    return await client.post(
        "/v1/visits", json=body, headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())}
    )


async def opened(
    client: Client, runtime: Runtime, person: Holder, hospital: dict[str, str], **more: Any
) -> str:
    token = await ec_token(client, runtime, person, hospital)
    response = await open_visit(client, hospital, visit_body(token, **more))
    assert response.status_code == 201, response.text
    return str(response.json()["visit_id"])


def line(
    line_no: str, list_code: str, quantity: str, unit_price: int, **more: Any
) -> dict[str, Any]:
    return {
        "line_no": line_no,
        "list_code": list_code,
        "name": f"项目 {list_code}",
        "quantity": quantity,
        "unit_price": unit_price,
        **more,
    }


async def settle(
    client: Client,
    headers: dict[str, str],
    visit_id: str,
    body: dict[str, Any],
    key: str | None = None,
) -> httpx.Response:
    return await client.post(
        f"/v1/visits/{visit_id}/settlements",
        json=body,
        headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())},
    )


async def load_catalogue(runtime: Runtime) -> None:
    """The packaged illustrative catalogue."""
    rejects: list[Reject] = []
    rows = enumerate(illustrative_catalogue(), start=2)
    await run_import(runtime, "catalogue", rows, on_reject=rejects.append)
    assert rejects == []


AMOXICILLIN = "XJ01CAA040A001010100001"  # A
CEFIXIME = "XJ01DDC010A001010100002"  # B, first self-pay 0.1
CONSULTATION = "110200001000000000000001"  # A, price cap 1,000 fen
COSMETIC = "EX0000000000000000000001"  # C
MENOTROPHIN = "XG03GAA040B002010100004"  # B, women only, maternity types only
PARACETAMOL = "XN02BEA010A001010100006"  # A until 2022-12-31
