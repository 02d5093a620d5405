"""A hospital of province B settles a person insured in province A at its own ecert (spec §9)."""

from __future__ import annotations

import time

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.clock import business_date
from ecert.db.models import ClearingRecord, Settlement
from ecert.qr import codec
from tests.factories import add_client
from tests.federation.conftest import Province, asgi
from tests.federation.steps import (
    agency,
    count,
    fee,
    hospital_in_b,
    insured_in_a,
    keyed,
    routed_visit,
    settle,
    upload,
)
from tests.fixtures.auth import bearer, client_token


async def test_outpatient_visit_is_priced_by_the_insured_province(
    provinces: tuple[Province, Province],
) -> None:
    a, b = provinces
    person = await insured_in_a(a, balance=50_000)
    hospital = await hospital_in_b(b)
    visit_id = await routed_visit(a, b, person, hospital)
    await upload(b, hospital, visit_id, fee("1", 150_000))
    preview = await b.client.post(
        f"/v1/visits/{visit_id}/settlements/preview", json={"use_account": True}, headers=hospital
    )
    assert preview.status_code == 200, preview.text
    settled = await settle(b, hospital, visit_id, use_account=True)
    assert settled.status_code == 201, settled.text
    got = settled.json()
    # A's outpatient policy at a level-3 hospital: deductible 100,000, ratio 0.5 less 0.2 out of
    # area without a referral: the fund pays 50,000 × 0.3; the account all of its 50,000.
    assert (got["fund_paid"], got["account_paid"], got["cash_paid"]) == (15_000, 50_000, 85_000)
    reduction = [s for s in got["steps"] if s["rule"] == "out_of_area_reduction"]
    assert reduction
    assert reduction[0]["amount"] == 10_000
    assert {k: v for k, v in preview.json().items() if k != "settlement_id"} == {
        k: v for k, v in got.items() if k != "settlement_id"
    }
    # A moved its own account; B holds a clearing record, not a settlement.
    account = await a.client.get("/v1/me/account", headers=person.headers)
    assert account.json()["balance"] == 0
    assert (await count(a, Settlement), await count(b, Settlement)) == (1, 0)
    assert await count(b, ClearingRecord) == 1
    shown = await b.client.get(f"/v1/settlements/{got['settlement_id']}", headers=hospital)
    assert shown.status_code == 200
    assert shown.json()["fund_paid"] == 15_000


async def test_inpatient_partial_return_and_both_clearing_reports_agree(
    provinces: tuple[Province, Province],
) -> None:
    a, b = provinces
    hospital = await hospital_in_b(b)
    outpatient = await routed_visit(a, b, await insured_in_a(a, balance=50_000), hospital)
    await upload(b, hospital, outpatient, fee("1", 150_000))
    assert (await settle(b, hospital, outpatient, use_account=True)).status_code == 201
    inpatient = await routed_visit(a, b, await insured_in_a(a), hospital, med_type="21")
    await upload(b, hospital, inpatient, fee("1", 1_000_000), fee("2", 100_000, quantity="2"))
    settled = await settle(b, hospital, inpatient, use_account=False, referred=True)
    assert settled.status_code == 201, settled.text
    # Inpatient level 3: deductible 100,000; ratio 0.88 less 0.1 with a referral.
    assert settled.json()["fund_paid"] == 780_000
    returned = await b.client.post(
        f"/v1/settlements/{settled.json()['settlement_id']}/reversal",
        json={"reason": "退药", "lines": [{"line_no": "2", "quantity": "1"}]},
        headers=keyed(hospital),
    )
    assert returned.status_code == 201, returned.text
    # What remains (1,050,000) prices to 741,000 from the fund: 39,000 back to it, 11,000 cash.
    assert returned.json()["refunds"] == {
        "fund": 39_000,
        "account": 0,
        "account_mutual_aid": 0,
        "cash": 11_000,
    }
    month = business_date().strftime("%Y-%m")
    report_a = await a.client.get(f"/v1/clearing?month={month}", headers=await agency(a))
    report_b = await b.client.get(f"/v1/clearing?month={month}", headers=await agency(b))
    assert report_a.status_code == report_b.status_code == 200, report_a.text + report_b.text
    (a_with_b,) = report_a.json()["peers"]
    (b_with_a,) = report_b.json()["peers"]
    assert (a_with_b["province"], b_with_a["province"]) == ("440106", "370102")
    assert b_with_a["owed_to_us"] == a_with_b["we_owe"]
    owed = b_with_a["owed_to_us"]
    # 15,000 + 50,000 (outpatient fund and account) + 780,000 − 39,000 (inpatient fund, net).
    assert (owed["settlements"], owed["reversals"], owed["amount"]) == (2, 1, 806_000)
    assert b_with_a["net"] == 806_000 == -a_with_b["net"]


class LoseTheReply(httpx.AsyncBaseTransport):
    """Delivers the first settlement to the other province, then times out on its reply."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.armed = inner, True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.armed and request.url.path.endswith("/settlements"):
            self.armed = False
            await response.aread()  # the other province committed and answered
            raise httpx.ReadTimeout("injected: the reply was lost", request=request)
        return response


async def _lost_settlement(
    a: Province, b: Province, key: str
) -> tuple[dict[str, str], str, httpx.Response]:
    """A routed outpatient settlement that A commits and whose reply B never gets."""
    b.route_to(LoseTheReply(asgi(a.app)))
    hospital = await hospital_in_b(b)
    visit_id = await routed_visit(a, b, await insured_in_a(a), hospital)
    await upload(b, hospital, visit_id, fee("1", 150_000))
    lost = await settle(b, hospital, visit_id, key=key)
    assert (lost.status_code, lost.json()["code"]) == (503, "province_unavailable")
    return hospital, visit_id, lost


async def test_routed_settle_retried_after_a_timeout_settles_once(
    provinces: tuple[Province, Province],
) -> None:
    a, b = provinces
    hospital, visit_id, lost = await _lost_settlement(a, b, "his-0001")
    assert lost.headers["retry-after"]
    # A settled; B recorded nothing, since no reply arrived.
    assert (await count(a, Settlement), await count(b, ClearingRecord)) == (1, 0)
    retried = await settle(b, hospital, visit_id, key="his-0001")
    again = await settle(b, hospital, visit_id, key="his-0001")
    assert retried.status_code == again.status_code == 201, retried.text
    assert retried.headers["idempotent-replayed"] == "true"
    assert retried.json()["settlement_id"] == again.json()["settlement_id"]
    assert (await count(a, Settlement), await count(b, ClearingRecord)) == (1, 1)


class Down(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("injected: connection refused", request=request)


async def test_a_province_that_is_down_is_a_retryable_problem_and_nothing_is_half_recorded(
    provinces: tuple[Province, Province],
) -> None:
    a, b = provinces
    hospital = await hospital_in_b(b)
    visit_id = await routed_visit(a, b, await insured_in_a(a), hospital)
    await upload(b, hospital, visit_id, fee("1", 150_000))
    (peer,) = b.federation.peers.values()
    await peer.close()
    peer.transport = Down()
    refused = await settle(b, hospital, visit_id)
    assert (refused.status_code, refused.json()["code"]) == (503, "province_unavailable")
    assert int(refused.headers["retry-after"]) > 0
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert (await count(a, Settlement), await count(b, ClearingRecord)) == (0, 0)
    scanned = await b.client.post("/v1/verify", json={"qr": "x" * 40}, headers=hospital)
    assert scanned.status_code != 503  # an unreadable code is still refused here, not routed


async def test_a_province_client_acts_only_for_its_own_hospitals(
    provinces: tuple[Province, Province],
) -> None:
    a, b = provinces
    (peer,) = b.federation.peers.values()
    # B's province client at A, naming one of A's own hospitals.
    reply = await peer.call("POST", "/v1/verify", body=b'{"qr": "x"}', on_behalf="H37010200009")
    assert reply.status == 403
    # Without acting for a hospital it reaches no institution route either.
    plain = await peer.call("POST", "/v1/verify", body=b'{"qr": "x"}', on_behalf=None)
    assert plain.status == 403
    # And an institution of A cannot register hospitals as a province.
    own = bearer(await client_token(a.client, *await add_client(a.runtime, "institution")))
    put = await a.client.put(
        "/v1/federation/institutions/H44010600009",
        json={"name": "x", "kind": "hospital", "level": "3", "area": "440106", "designated": True},
        headers=own,
    )
    assert put.status_code == 403


async def test_a_code_of_a_province_not_on_the_trust_list_is_refused_before_anything_is_spent(
    provinces: tuple[Province, Province],
) -> None:
    _, b = provinces
    hospital = await hospital_in_b(b)
    numeric = "424" + "1" * 19 + "11" + "0000"  # Beijing's province digits
    refused = await b.client.post("/v1/verify", json={"qr": numeric}, headers=hospital)
    assert (refused.status_code, refused.json()["code"]) == (422, "province_not_trusted")


class Recording(httpx.AsyncBaseTransport):
    """Passes requests on and remembers their paths."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.paths = inner, list[str]()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await self.inner.handle_async_request(request)


async def test_a_forged_code_is_refused_with_the_issuers_published_keys_before_it_is_routed(
    provinces: tuple[Province, Province],
) -> None:
    a, b = provinces
    seen = Recording(asgi(a.app))
    b.route_to(seen)
    hospital = await hospital_in_b(b)
    person = await insured_in_a(a)
    genuine = await person.qr(a.client)
    header = codec.read_header(genuine)
    claims = codec.decode(
        genuine, a.runtime.keys.signer("qr").public, now=int(time.time()), leeway_s=5
    )
    # The same claims and kid, signed by a key that is not A's.
    forged = codec.encode(claims, ec.generate_private_key(ec.SECP256R1()), header.kid)
    refused = await b.client.post("/v1/verify", json={"qr": forged}, headers=hospital)
    assert (refused.status_code, refused.json()["code"]) == (422, "qr_signature_invalid")
    # A's kid under another key: unknown. Neither reached A's /v1/verify.
    other_kid = header.kid[:-1] + ("A" if header.kid[-1] != "A" else "B")
    unknown = codec.encode(claims, ec.generate_private_key(ec.SECP256R1()), other_kid)
    refused = await b.client.post("/v1/verify", json={"qr": unknown}, headers=hospital)
    assert refused.json()["code"] == "qr_unknown_key"
    assert "/v1/verify" not in seen.paths
    assert "/.well-known/jwks.json" in seen.paths
    accepted = await b.client.post("/v1/verify", json={"qr": genuine}, headers=hospital)
    assert accepted.status_code == 200, accepted.text


async def test_a_lost_reply_never_retried_is_recorded_by_the_clearing_sync(
    provinces: tuple[Province, Province],
) -> None:
    a, b = provinces
    hospital, visit_id, _ = await _lost_settlement(a, b, "his-0002")
    month = business_date().strftime("%Y-%m")
    agency_a, agency_b = await agency(a), await agency(b)

    async def owed() -> tuple[dict[str, int], dict[str, int]]:
        report_a = await a.client.get(f"/v1/clearing?month={month}", headers=agency_a)
        report_b = await b.client.get(f"/v1/clearing?month={month}", headers=agency_b)
        return report_b.json()["peers"][0]["owed_to_us"], report_a.json()["peers"][0]["we_owe"]

    treated, insured = await owed()
    assert (treated["amount"], insured["amount"]) == (0, 15_000)
    synced = await b.client.post(f"/v1/clearing/sync?month={month}", headers=agency_b)
    assert synced.status_code == 200, synced.text
    assert synced.json()["added"] == 1
    treated, insured = await owed()
    assert treated == insured
    again = await b.client.post(f"/v1/clearing/sync?month={month}", headers=agency_b)
    assert again.json()["added"] == 0
    # The hospital's late retry gets the same settlement and records nothing more.
    assert (await settle(b, hospital, visit_id, key="his-0002")).status_code == 201
    assert await count(b, ClearingRecord) == 1


async def test_a_one_shot_settlement_and_its_cancel_are_routed_too(
    provinces: tuple[Province, Province],
) -> None:
    a, b = provinces
    hospital = await hospital_in_b(b)
    person = await insured_in_a(a)
    verified = await b.client.post(
        "/v1/verify", json={"qr": await person.qr(a.client)}, headers=hospital
    )
    bill = {
        "ec_token": verified.json()["ec_token"],
        "med_type": "11",
        "items": [{"code": "X1", "name": "诊查", "item_class": "A", "amount": 150_000}],
    }
    settled = await b.client.post("/v1/settlements", json=bill, headers=keyed(hospital))
    assert settled.status_code == 201, settled.text
    assert settled.json()["fund_paid"] == 15_000
    sid = settled.json()["settlement_id"]
    cancelled = await b.client.post(
        f"/v1/settlements/{sid}/reversal", json={"reason": "撤销"}, headers=keyed(hospital)
    )
    assert cancelled.status_code == 201, cancelled.text
    assert (await count(a, Settlement), await count(b, ClearingRecord)) == (1, 2)
    month = business_date().strftime("%Y-%m")
    report = await b.client.get(f"/v1/clearing?month={month}", headers=await agency(b))
    owed = report.json()["peers"][0]["owed_to_us"]
    assert (owed["settlements"], owed["reversals"], owed["amount"]) == (1, 1, 0)
