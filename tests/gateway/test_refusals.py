"""Refusals are −1 envelopes with err_msg and ecert's stable err_code, at HTTP 200; msgid runs a
writing transaction once; 1101 by ID number is for designated institutions, and audited."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from sqlalchemy import func, select

from ecert.db.models import AuditEvent, Settlement, Visit
from ecert.server.runtime import Runtime
from tests.factories import credit, ec_token, holder, load_policies
from tests.gateway.national import URL, call, envelope, hospital, ok, refused
from tests.gateway.test_visits import national_line, register
from tests.helpers import Client
from tests.settlement.visit_steps import AMOXICILLIN, id_number

QUERY = {"mdtrt_cert_type": "02", "card_sn": "null", "begntime": "null", "psn_cert_type": "01"}


async def test_malformed_and_unknown_are_envelopes(client: Client, runtime: Runtime) -> None:
    h = await hospital(runtime, client, "H37010200041")
    assert await refused(client, h.headers, b"{not json") == "envelope_malformed"
    assert await refused(client, h.headers, b"[1, 2]") == "envelope_malformed"
    no_infno = envelope("9001", h.code, {})
    del no_infno["infno"]
    assert await refused(client, h.headers, no_infno) == "envelope_malformed"
    assert await refused(client, h.headers, envelope("9999", h.code, {})) == "infno_unknown"
    assert await refused(client, h.headers, envelope("1101", h.code, {})) == "input_invalid"
    other = envelope("9001", "H37010299999", {"signIn": {}})
    assert await refused(client, h.headers, other) == "fixmedins_mismatch"
    bad_type = {"data": {**QUERY, "mdtrt_cert_type": "09", "mdtrt_cert_no": "x"}}
    assert await refused(client, h.headers, envelope("1101", h.code, bad_type)) == (
        "mdtrt_cert_type_unsupported"
    )


async def test_business_refusals_no_policy_spent_token_and_amounts(
    client: Client, runtime: Runtime
) -> None:
    h = await hospital(runtime, client, "H37010200042")
    someone = await holder(client, runtime, id_number=id_number("M"))
    await credit(runtime, someone.person_id, 1_000)
    token = await ec_token(client, runtime, someone, h.headers)
    query = {"data": {"mdtrt_cert_type": "01", "mdtrt_cert_no": token}}
    # No benefit policy imported yet for the person's area: nothing can be priced.
    assert await refused(client, h.headers, envelope("1101", h.code, query)) == "no_policy"
    await load_policies(runtime)
    assert (await ok(client, h.headers, envelope("1101", h.code, query)))["baseinfo"]
    mdtrt_id = await register(client, h, token, "11")
    # The ecToken opened its visit: spent for anything else.
    assert await refused(client, h.headers, envelope("1101", h.code, query)) == "ec_token_spent"
    again = envelope(
        "2201",
        h.code,
        {
            "data": {
                "mdtrt_cert_type": "01",
                "mdtrt_cert_no": token,
                "ipt_otp_no": "MZ2",
                "dept_code": "A03",
                "dept_name": "内科",
            }
        },
    )
    assert await refused(client, h.headers, again) == "ec_token_spent"

    def fees(pric: object, total: object) -> dict[str, object]:
        line = national_line("1", mdtrt_id, AMOXICILLIN, "2", pric, total)
        return envelope("2204", h.code, {"feedetail": [{**line, "chrgitm_lv": "01"}]})

    assert await refused(client, h.headers, fees("12.505", "25.01")) == "amount_invalid"
    assert await refused(client, h.headers, fees("-1.00", "-2.00")) == "amount_invalid"
    assert await refused(client, h.headers, fees("abc", "1")) == "amount_invalid"
    assert await refused(client, h.headers, fees("12.50", "25.10")) == "fee_amount_mismatch"
    # Trailing zeros are the same amount: some vendors pad pric to six places.
    assert await ok(client, h.headers, fees("12.500000", 25))
    wrong_cert = {
        "data": {
            "mdtrt_id": mdtrt_id,
            "mdtrt_cert_type": "01",
            "mdtrt_cert_no": "370102" + "x" * 32,
            "medfee_sumamt": "25.00",
        }
    }
    assert await refused(client, h.headers, envelope("2206", h.code, wrong_cert)) == (
        "mdtrt_cert_mismatch"
    )
    wrong_sum = {"data": {"mdtrt_id": mdtrt_id, "medfee_sumamt": "25.01"}}
    assert await refused(client, h.headers, envelope("2207", h.code, wrong_sum)) == (
        "medfee_sumamt_mismatch"
    )
    unknown = {"data": {"mdtrt_id": "not-a-visit", "medfee_sumamt": "1.00"}}
    assert await refused(client, h.headers, envelope("2207", h.code, unknown)) == (
        "visit_not_found"
    )
    cancel = {"data": {"setl_id": "nope"}}
    assert await refused(client, h.headers, envelope("2208", h.code, cancel)) == (
        "settlement_not_found"
    )


async def test_msgid_replays_the_stored_reply_and_refuses_another_body(
    client: Client, runtime: Runtime
) -> None:
    await load_policies(runtime)
    h = await hospital(runtime, client, "H37010200043")
    someone = await holder(client, runtime, id_number=id_number("M"))
    token = await ec_token(client, runtime, someone, h.headers)
    data = {
        "data": {
            "mdtrt_cert_type": "01",
            "mdtrt_cert_no": token,
            "ipt_otp_no": "MZ1",
            "dept_code": "A03",
            "dept_name": "内科",
        }
    }
    body = envelope("2201", h.code, data, msgid="H370102000432026120109000001")
    first = await call(client, h.headers, body)
    # A retry with the same msgid and input (the HIS re-stamps inf_time): the stored reply.
    retry = {**body, "inf_time": (dt.datetime.now() + dt.timedelta(seconds=5)).isoformat()}
    second = await call(client, h.headers, retry)
    assert first.json()["infcode"] == second.json()["infcode"] == 0
    assert second.json()["output"] == first.json()["output"]
    assert second.headers["Idempotent-Replayed"] == "true"
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Visit)) == 1
    changed = {**body, "input": {"data": {**data["data"], "ipt_otp_no": "MZ9"}}}
    assert await refused(client, h.headers, changed) == "idempotency_conflict"
    # Reads are not stored: the same msgid may ask again.
    read = envelope("9001", h.code, {"signIn": {}}, msgid="H370102000432026120109000002")
    assert await ok(client, h.headers, read)
    assert await ok(client, h.headers, read)


async def test_1101_by_id_number_is_audited_and_only_for_designated_institutions(
    client: Client, runtime: Runtime
) -> None:
    await load_policies(runtime)
    h = await hospital(runtime, client, "H37010200044")
    someone = await holder(client, runtime, id_number=id_number("F"), name="王芳")
    await credit(runtime, someone.person_id, 12_345)
    query = {"data": {**QUERY, "certno": someone.id_number, "psn_name": "王芳"}}
    found = await ok(client, h.headers, envelope("1101", h.code, query))
    base = found["baseinfo"]
    assert someone.id_number not in json.dumps(found, ensure_ascii=False)
    assert (base["psn_name"], base["gend"]) == ("王*", "2")
    assert found["insuinfo"][0]["balc"] == 123.45
    wrong_name = {"data": {**query["data"], "psn_name": "李四"}}
    assert await refused(client, h.headers, envelope("1101", h.code, wrong_name)) == (
        "person_not_found"
    )
    unknown = {"data": {**QUERY, "certno": id_number("M")}}
    assert await refused(client, h.headers, envelope("1101", h.code, unknown)) == (
        "person_not_found"
    )

    clinic = await hospital(runtime, client, "H37010200045", designated=False)
    response = await call(client, clinic.headers, envelope("1101", clinic.code, query))
    assert response.status_code == 200
    assert response.json()["err_code"] == "institution_not_designated"
    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                select(
                    AuditEvent.actor, AuditEvent.action, AuditEvent.outcome, AuditEvent.person_id
                )
                .where(AuditEvent.actor.in_((h.client_id, clinic.client_id)))
                .order_by(AuditEvent.id)
            )
        ).all()
    ok_reads = [r for r in rows if r.action == "gateway.person_query"]
    assert [(r.actor, r.outcome, r.person_id) for r in ok_reads] == [
        (h.client_id, "ok", someone.person_id)
    ]
    refusals = {(r.actor, r.outcome) for r in rows if r.action == f"POST {URL}"}
    assert (clinic.client_id, "institution_not_designated") in refusals
    assert (h.client_id, "person_not_found") in refusals
    # The wrong name's refusal names the person it was about; the unknown number names no one.
    about = [r.person_id for r in rows if r.outcome == "person_not_found"]
    assert about == [someone.person_id, None]


async def test_one_msgid_sent_at_once_settles_once(client: Client, runtime: Runtime) -> None:
    """Five concurrent 2207 with one msgid: one settlement; the others replay it or are told
    it is in progress (and may retry)."""
    await load_policies(runtime)
    h = await hospital(runtime, client, "H37010200046")
    someone = await holder(client, runtime, id_number=id_number("M"))
    await credit(runtime, someone.person_id, 10_000)
    token = await ec_token(client, runtime, someone, h.headers)
    mdtrt_id = await register(client, h, token, "11")
    line = {**national_line("1", mdtrt_id, AMOXICILLIN, "4", "12.50", "50.00"), "chrgitm_lv": "01"}
    await ok(client, h.headers, envelope("2204", h.code, {"feedetail": [line]}))
    data = {"data": {"mdtrt_id": mdtrt_id, "acct_used_flag": "1", "medfee_sumamt": "50.00"}}
    body = envelope("2207", h.code, data, msgid="H370102000462026120109000001")
    answers = await asyncio.gather(*(call(client, h.headers, body) for _ in range(5)))
    replies = [a.json() for a in answers]
    settled = [r["output"]["setlinfo"]["setl_id"] for r in replies if r["infcode"] == 0]
    assert len(set(settled)) == 1
    assert {r["err_code"] for r in replies if r["infcode"] == -1} <= {"idempotency_in_progress"}
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Settlement)) == 1
    again = await call(client, h.headers, body)
    assert again.json()["output"]["setlinfo"]["setl_id"] == settled[0]
