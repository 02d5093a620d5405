"""Staff sign-in on the console: the cookie, CSRF, roles, lockout, and the operator in the audit."""

from __future__ import annotations

import pyotp
from sqlalchemy import select

from ecert.agency import staff
from ecert.db.models import AuditEvent, StaffRole
from ecert.server.runtime import Runtime
from tests.agency.helpers import CSRF, PASSWORD, add_staff, sign_in
from tests.factories import add_client, add_person, holder
from tests.fixtures.app import AppFactory, open_client
from tests.fixtures.auth import bearer, client_token
from tests.helpers import Client


async def test_clerk_takes_a_hotline_report_and_the_audit_names_them(
    client: Client, runtime: Runtime
) -> None:
    person = await holder(client, runtime, name="钱十一")
    await add_staff(runtime, "wang", StaffRole.CLERK, name="王柜员")
    response = await client.post("/v1/agency/session", json={"login": "wang", "password": PASSWORD})
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert "Path=/v1/agency" in cookie
    assert response.json()["role"] == "clerk"

    found = await client.post(
        "/v1/agency/persons/search", json={"id_number": person.id_number}, headers=CSRF
    )
    assert found.status_code == 200, found.text
    assert person.id_number not in found.text
    assert "*" in found.json()["id_number"]
    person_no = found.json()["person_no"]
    issued = await client.post(
        "/v1/agency/cards/issue", json={"person_no": person_no}, headers=CSRF
    )
    assert issued.status_code == 201, issued.text
    # The cookie alone is not enough to change anything: a cross-site form cannot add a header.
    forged = await client.post("/v1/agency/cards/loss-reports", json={"person_no": person_no})
    assert forged.status_code == 403
    reported = await client.post(
        "/v1/agency/cards/loss-reports", json={"person_no": person_no}, headers=CSRF
    )
    assert reported.status_code == 200, reported.text
    assert reported.json()["status"] == "provisionally_reported"

    trail = await client.get(f"/v1/agency/persons/{person_no}/audit")
    assert trail.status_code == 200, trail.text
    body = trail.json()
    assert body["intact"] is True
    reports = [r for r in body["rows"] if r["action"] == "card.report"]
    assert reports
    assert reports[0]["actor"] == "staff:wang"
    assert reports[0]["opter_name"] == "王柜员"


async def test_person_file_and_lookups_at_the_counter(client: Client, runtime: Runtime) -> None:
    person = await holder(client, runtime)
    await add_staff(runtime, "li", StaffRole.SUPERVISOR, name="李主管")
    await sign_in(client, "li")
    found = await client.post(
        "/v1/agency/persons/search", json={"id_number": person.id_number}, headers=CSRF
    )
    person_no = found.json()["person_no"]
    for part in ("", "/enrolment", "/contributions", "/account", "/transactions"):
        response = await client.get(f"/v1/agency/persons/{person_no}{part}")
        assert response.status_code == 200, (part, response.text)
    assert (await client.get(f"/v1/agency/persons/{person_no}")).json()["ecerts"]
    async with runtime.sessions() as session:
        reads = (
            await session.scalars(select(AuditEvent).where(AuditEvent.actor == "staff:li"))
        ).all()
    assert {"agency.person.find", "agency.person.read", "lookup.enrolment"} <= {
        r.action for r in reads
    }
    assert all(r.detail and r.detail["opter_name"] == "李主管" for r in reads)


async def test_a_clerk_cannot_rotate_keys_or_import(client: Client, runtime: Runtime) -> None:
    await add_staff(runtime, "zhao", StaffRole.CLERK)
    await add_staff(runtime, "ops", StaffRole.OPERATOR, name="运维")
    await sign_in(client, "zhao")
    refused = await client.post("/v1/agency/keys/rotate", json={"purpose": "qr"}, headers=CSRF)
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    imported = await client.post(
        "/v1/agency/imports/persons",
        content=b"id_number,name,area,category\n",
        headers={**CSRF, "Content-Type": "text/csv"},
    )
    assert imported.status_code == 403
    await sign_in(client, "ops")
    rotated = await client.post("/v1/agency/keys/rotate", json={"purpose": "qr"}, headers=CSRF)
    assert rotated.status_code == 200, rotated.text
    # An operator is not at the counter.
    counter = await client.post("/v1/agency/persons/search", json={"id_number": "x"}, headers=CSRF)
    assert counter.status_code == 403
    # An agency OAuth client (a system, not a person) keeps every agency route, as before.
    client.cookies.clear()
    system = bearer(await client_token(client, *await add_client(runtime, "agency")))
    assert (
        await client.post("/v1/agency/keys/rotate", json={"purpose": "qr"}, headers=system)
    ).status_code == 200


async def test_failed_sign_ins_lock_the_login_and_are_audited(
    client: Client, runtime: Runtime
) -> None:
    await add_staff(runtime, "sun", StaffRole.CLERK)
    for _ in range(5):
        wrong = await client.post("/v1/agency/session", json={"login": "sun", "password": "wrong"})
        assert wrong.status_code == 401
        assert wrong.json()["code"] == "staff_sign_in_failed"
    locked = await client.post("/v1/agency/session", json={"login": "sun", "password": PASSWORD})
    assert locked.status_code == 403
    assert locked.json()["code"] == "staff_locked"
    async with runtime.sessions() as session:
        refusals = (
            await session.scalars(select(AuditEvent.outcome).where(AuditEvent.actor == "staff:sun"))
        ).all()
    assert refusals.count("staff_sign_in_failed") == 5
    assert "staff_locked" in refusals


async def test_totp_is_required_when_set_and_disabled_staff_are_out(
    client: Client, runtime: Runtime
) -> None:
    uri = await add_staff(runtime, "zhou", StaffRole.CLERK, totp=True)
    assert uri is not None
    secret = pyotp.parse_uri(uri).secret
    without = await client.post("/v1/agency/session", json={"login": "zhou", "password": PASSWORD})
    assert without.status_code == 401
    signed = await client.post(
        "/v1/agency/session",
        json={"login": "zhou", "password": PASSWORD, "totp": pyotp.TOTP(secret).now()},
    )
    assert signed.status_code == 200, signed.text
    assert (await client.get("/v1/agency/session")).json()["login"] == "zhou"


async def test_sign_out_and_disable_end_the_session(make_app: AppFactory) -> None:
    app = make_app(client_status_refresh_s=0)  # the disable is seen at the next request
    runtime: Runtime = app.state.runtime
    async with open_client(app) as client:
        await add_staff(runtime, "wu", StaffRole.CLERK)
        await sign_in(client, "wu")
        out = await client.delete("/v1/agency/session", headers=CSRF)
        assert out.status_code == 204
        assert not client.cookies.get("ecert_staff")
        assert (await client.get("/v1/agency/session")).status_code == 401

        await sign_in(client, "wu")
        assert (await client.get("/v1/agency/session")).status_code == 200
        async with runtime.sessions.begin() as session:
            await staff.set_active(session, "wu", False)
        assert (await client.get("/v1/agency/session")).status_code == 401
        refused = await client.post(
            "/v1/agency/session", json={"login": "wu", "password": PASSWORD}
        )
        assert refused.status_code == 401


async def test_family_links_and_a_suspension_show_in_the_file(
    client: Client, runtime: Runtime
) -> None:
    person = await holder(client, runtime, name="钱十一")
    _, child = await add_person(runtime, name="钱小宝", category="resident")
    await add_staff(runtime, "he", StaffRole.CLERK, name="何柜员")
    await sign_in(client, "he")
    consent = await client.post(
        "/v1/agency/family/consents",
        json={
            "holder_id_number": person.id_number,
            "relative_id_number": child,
            "relation": "child",
        },
        headers=CSRF,
    )
    assert consent.status_code == 200, consent.text
    found = await client.post(
        "/v1/agency/persons/search", json={"id_number": person.id_number}, headers=CSRF
    )
    person_no = found.json()["person_no"]
    suspended = await client.post(
        "/v1/agency/ecerts/suspend",
        json={"person_no": person_no, "reason": "电话申请"},
        headers=CSRF,
    )
    assert suspended.json() == {"affected": 1, "status": "suspended"}
    body = (await client.get(f"/v1/agency/persons/{person_no}")).json()
    assert body["ecerts"][0]["status"] == "suspended"
    assert body["suspensions"][0]["reason"] == "电话申请"
    assert body["suspensions"][0]["imposed_by"] == "staff:he"
    [link] = body["family"]
    assert (link["side"], link["relation"], link["status"]) == ("holder", "child", "active")
    assert link["other"]["name"] == "钱**"
    assert child not in str(body)
