"""Calling the national gateway the way HIS client libraries do: every envelope field present,
"null" placeholders, amounts as strings, the JSON posted as text/plain."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
from decimal import Decimal
from typing import Any

import httpx

from ecert.security import gateway_keys
from ecert.server.runtime import Runtime
from tests.factories import add_client
from tests.fixtures.auth import bearer, client_token
from tests.helpers import Client

URL = "/fsi/api/rsfComIfsService/callService"
TEXT_PLAIN = {"Content-Type": "text/plain; charset=utf-8"}
_seq = itertools.count(1)


def msgid(code: str) -> str:
    """Institution code (12) + yyyyMMddHHmmss + a 4-digit sequence, as vendors number them."""
    return code + dt.datetime.now().strftime("%Y%m%d%H%M%S") + f"{next(_seq) % 10_000:04d}"


def envelope(infno: str, code: str, data: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "infno": infno,
        "msgid": more.pop("msgid", None) or msgid(code),
        "mdtrtarea_admvs": "370102",
        "insuplc_admdvs": "370102",
        "recer_sys_code": "HIS",
        "dev_no": "null",
        "dev_safe_info": "null",
        "cainfo": "null",
        "signtype": "SM2",
        "infver": "V1.0",
        "opter_type": "1",
        "opter": "0001",
        "opter_name": "收费员",
        "inf_time": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "fixmedins_code": code,
        "fixmedins_name": "测试医院",
        "sign_no": "",
        "input": data,
        **more,
    }


async def call(
    client: Client, headers: dict[str, str], body: dict[str, Any] | bytes
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return await client.post(URL, content=content, headers={**TEXT_PLAIN, **headers})


async def ok(client: Client, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """The output of an answered call (infcode 0), its envelope checked."""
    response = await call(client, headers, body)
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["infcode"] == 0, reply
    assert reply["err_msg"] is None
    assert len(reply["inf_refmsgid"]) == 30
    return reply["output"]  # type: ignore[no-any-return]


async def refused(
    client: Client, headers: dict[str, str], body: dict[str, Any] | bytes, status: int = 200
) -> str:
    """The ``err_code`` of a refusal envelope (infcode −1, with err_msg)."""
    response = await call(client, headers, body)
    assert response.status_code == status, response.text
    reply = response.json()
    assert (reply["infcode"], reply["output"]) == (-1, None), reply
    assert reply["err_msg"], reply
    return str(reply["err_code"])


def fen(yuan: Any) -> int:
    """Yuan on the wire (a JSON number with two places) → fen, exactly."""
    value = Decimal(str(yuan)) * 100
    assert value == value.to_integral_value(), yuan
    return int(value)


async def hospital(runtime: Runtime, client: Client, code: str, **kwargs: Any) -> Hospital:
    client_id, secret = await add_client(runtime, "institution", code=code, **kwargs)
    headers = bearer(await client_token(client, client_id, secret))
    async with runtime.sessions.begin() as session:
        key = await gateway_keys.issue(session, runtime.cipher, client_id)
    assert key is not None
    return Hospital(code, client_id, key, headers)


class Hospital:
    """An institution client: its Bearer headers and its gateway signing key."""

    def __init__(self, code: str, client_id: str, key: str, headers: dict[str, str]) -> None:
        self.code, self.client_id, self.key, self.headers = code, client_id, key, headers

    def signed(self, *, at_ms: int | None = None, key: str | None = None) -> dict[str, str]:
        pairs = {
            "_api_access_key": self.client_id,
            "_api_name": "hssServives",
            "_api_timestamp": str(at_ms if at_ms is not None else int(time.time() * 1000)),
            "_api_version": "1.0.0",
        }
        return {**pairs, "_api_signature": gateway_keys.signature(key or self.key, pairs)}
