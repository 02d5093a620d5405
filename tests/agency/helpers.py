"""Staff for the agency tests."""

from __future__ import annotations

from ecert.agency import staff
from ecert.db.models import StaffRole
from ecert.server.runtime import Runtime
from tests.helpers import Client

PASSWORD = "counter-pass-1"
CSRF = {"X-ECert-CSRF": "1"}


async def add_staff(
    runtime: Runtime, login: str, role: StaffRole, *, name: str = "王柜员", totp: bool = False
) -> str | None:
    async with runtime.sessions.begin() as session:
        return await staff.add(session, runtime, login, name, role, PASSWORD, totp=totp)


async def sign_in(client: Client, login: str, password: str = PASSWORD) -> None:
    response = await client.post("/v1/agency/session", json={"login": login, "password": password})
    assert response.status_code == 200, response.text
