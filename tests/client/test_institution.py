"""The institution SDK (ecert.client) against the app through httpx's ASGI transport: a whole
visit as a hospital runs it, typed refusals, retries with the same Idempotency-Key, the token."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from litestar import Litestar
from sqlalchemy import func, select

from ecert.client import (
    BillItem,
    Diagnosis,
    FeeLineIn,
    InstitutionClient,
    PrivateKeyJwt,
    ProblemError,
    ReconciliationCheck,
    ReturnLine,
    ReversalRequest,
    SettlementRequest,
    VisitCreate,
    VisitSettleRequest,
)
from ecert.clock import business_date
from ecert.db.models import Settlement
from ecert.server.runtime import Runtime
from tests.factories import Holder, add_client
from tests.helpers import Client
from tests.settlement.visit_steps import setup

Hook = Callable[[httpx.Request], httpx.Response | None]


class Wire(httpx.AsyncBaseTransport):
    """The app's ASGI transport, with a hook that may answer or fail a request first, and a
    record of what was sent."""

    def __init__(self, app: Litestar, hook: Hook | None = None) -> None:
        self.inner = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        self.hook = hook
        self.sent: list[httpx.Request] = []
        self.refused: list[tuple[httpx.Request, int, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        if self.hook is not None and (answer := self.hook(request)) is not None:
            return answer
        response = await self.inner.handle_async_request(request)
        if response.status_code >= 400:
            await response.aread()
            self.refused.append((request, response.status_code, response.json()["code"]))
        return response


async def assert_documented(client: Client, refused: list[tuple[httpx.Request, int, str]]) -> None:
    """Every refusal the SDK met is one the OpenAPI schema lists for its route and status."""
    schema = (await client.get("/schema/openapi.json")).json()
    for request, status, code in refused:
        for path, item in schema["paths"].items():
            pattern = "^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path)) + "$"
            if re.match(pattern, request.url.path) and request.method.lower() in item:
                response = item[request.method.lower()]["responses"][str(status)]
                problem = response["content"]["application/problem+json"]["schema"]
                assert code in problem["properties"]["code"]["enum"], (path, status, code)
                break
        else:
            raise AssertionError(f"no documented route for {request.method} {request.url.path}")


async def _hospital(
    app: Litestar, runtime: Runtime, wire: Wire
) -> tuple[InstitutionClient, httpx.AsyncClient]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    client_id, _ = await add_client(runtime, "institution", public_key_pem=public.decode())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    http = httpx.AsyncClient(transport=wire, base_url="http://testserver")
    auth = PrivateKeyJwt(client_id, pem, audience=runtime.settings.issuer_url)
    return InstitutionClient("http://testserver", auth, http=http, backoff_s=0), http


def _visit(ec_token: str, med_type: str = "11") -> VisitCreate:
    return VisitCreate(
        med_type=med_type,
        his_visit_no="MZ20261201-0042",
        dept_code="A03",
        dept_name="内科",
        diagnoses=[Diagnosis(code="J06.900", name="急性上呼吸道感染", main=True)],
        ec_token=ec_token,
    )


def _line(line_no: str, item_class: str, quantity: str, unit_price: int) -> FeeLineIn:
    return FeeLineIn(
        line_no=line_no,
        list_code=f"TEST{line_no}",
        name=f"项目 {line_no}",
        quantity=quantity,
        unit_price=unit_price,
        item_class=item_class,  # type: ignore[arg-type]
    )


async def _person(client: Client, runtime: Runtime) -> Holder:
    person, _ = await setup(client, runtime)
    return person


async def test_a_whole_visit_through_the_sdk(
    app: Litestar, client: Client, runtime: Runtime
) -> None:
    person = await _person(client, runtime)
    wire = Wire(app)
    ecert, http = await _hospital(app, runtime, wire)
    async with http, ecert:
        verified = await ecert.verify(await person.qr(client))
        assert verified.person.id_number != person.id_number  # masked
        opened = await ecert.open_visit(_visit(verified.ec_token))
        assert (opened.status, opened.med_type) == ("open", "11")
        lines = [_line("1", "A", "2", 1500), _line("2", "B", "1", 4000), _line("3", "C", "1", 900)]
        uploaded = await ecert.add_fees(opened.visit_id, lines)
        assert [each.line_no for each in uploaded.lines] == ["1", "2", "3"]
        again = await ecert.add_fees(opened.visit_id, lines[:1])  # re-sent: a no-op
        assert again.lines[0].amount == 3000
        await ecert.add_fees(opened.visit_id, [_line("9", "A", "1", 100)])
        await ecert.delete_fee(opened.visit_id, "9")
        preview = await ecert.preview_visit(opened.visit_id, VisitSettleRequest(use_account=True))
        assert preview.settlement_id is None
        assert preview.total == 3000 + 4000 + 900
        key = str(uuid.uuid4())
        settled = await ecert.settle_visit(
            opened.visit_id, VisitSettleRequest(use_account=True), idempotency_key=key
        )
        assert settled.settlement_id is not None
        payments = settled.fund_paid + settled.account_paid + settled.account_mutual_aid_paid
        assert settled.total == payments + settled.cash_paid
        assert (settled.total, settled.fund_paid) == (preview.total, preview.fund_paid)
        same = await ecert.settle_visit(
            opened.visit_id, VisitSettleRequest(use_account=True), idempotency_key=key
        )
        assert same == settled
        shown = await ecert.get_visit(opened.visit_id)
        assert shown.status == "settled"
        assert [s.settlement_id for s in shown.settlements] == [settled.settlement_id]
        returned = await ecert.reverse(
            settled.settlement_id,
            ReversalRequest(reason="退药", lines=[ReturnLine(line_no="1", quantity="1")]),
        )
        assert returned.kind == "lines"
        assert returned.repriced is not None
        assert returned.repriced.total == settled.total - 1500
        assert returned.amount == sum(returned.refunds.values())
        stored = await ecert.get_settlement(settled.settlement_id)
        assert stored.reversed_total == returned.amount
        day = await ecert.reconciliation(business_date())
        assert (day.settlements.count, day.reversals.count) == (1, 1)
        details = await ecert.reconciliation_details(business_date())
        assert [(d.kind, d.settlement_id) for d in details] == [
            ("settlement", settled.settlement_id),
            ("reversal", settled.settlement_id),
        ]
        check = await ecert.reconcile(
            ReconciliationCheck(
                date=business_date(),
                settlement_count=1,
                total=day.net.total,
                fund_paid=day.net.fund_paid,
                account_paid=day.net.account_paid,
            )
        )
        assert check.result == "match"
    tokens = [r for r in wire.sent if r.url.path == "/oauth/token"]
    assert len(tokens) == 1  # one token, cached for every call
    assert wire.refused == []


async def test_a_one_shot_bill_and_its_cancel(
    app: Litestar, client: Client, runtime: Runtime
) -> None:
    person = await _person(client, runtime)
    ecert, http = await _hospital(app, runtime, Wire(app))
    async with http, ecert:
        verified = await ecert.verify(await person.qr(client))
        items = [BillItem(code="X1", name="阿莫西林", item_class="A", amount=8000)]
        bill = SettlementRequest(ec_token=verified.ec_token, med_type="11", items=items)
        preview = await ecert.preview(bill)
        settled = await ecert.settle(bill)
        assert settled.settlement_id is not None
        assert (settled.total, settled.fund_paid) == (preview.total, preview.fund_paid)
        cancelled = await ecert.reverse(settled.settlement_id, ReversalRequest(reason="撤销"))
        assert (cancelled.kind, cancelled.amount, cancelled.remaining) == ("full", 8000, 0)
        assert cancelled.repriced is None
        stored = await ecert.get_settlement(settled.settlement_id)
        assert stored.status == "reversed"


async def test_refusals_are_typed_problems(app: Litestar, client: Client, runtime: Runtime) -> None:
    person = await _person(client, runtime)
    wire = Wire(app)
    ecert, http = await _hospital(app, runtime, wire)
    async with http, ecert:
        with pytest.raises(ProblemError) as malformed:
            await ecert.verify("not a code")
        assert (malformed.value.status, malformed.value.code) == (422, "qr_malformed")
        assert malformed.value.request_id
        verified = await ecert.verify(await person.qr(client))
        await ecert.open_visit(_visit(verified.ec_token))
        with pytest.raises(ProblemError) as spent:
            await ecert.open_visit(_visit(verified.ec_token))
        assert (spent.value.status, spent.value.code) == (409, "ec_token_spent")
        with pytest.raises(ProblemError) as unknown:
            await ecert.get_visit(uuid.uuid4())
        assert unknown.value.code == "visit_not_found"
    assert len(wire.refused) == 3
    await assert_documented(client, wire.refused)


async def test_a_lost_answer_is_retried_with_the_same_key(
    app: Litestar, client: Client, runtime: Runtime
) -> None:
    """The first settle reaches ecert but its answer is lost (a read timeout); the second gets
    a 503 before ecert; the third gets the stored settlement. One settlement, one key."""
    person = await _person(client, runtime)
    wire = Wire(app)
    ecert, http = await _hospital(app, runtime, wire)
    async with http, ecert:
        verified = await ecert.verify(await person.qr(client))
        opened = await ecert.open_visit(_visit(verified.ec_token))
        await ecert.add_fees(opened.visit_id, [_line("1", "A", "1", 5000)])
        settles: list[httpx.Request] = []

        def flaky(request: httpx.Request) -> httpx.Response | None:
            if not request.url.path.endswith("/settlements"):
                return None
            settles.append(request)
            if len(settles) == 2:
                return httpx.Response(503, headers={"Retry-After": "0"})
            return None

        inner = wire.inner

        class LosesFirstAnswer(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                response = await inner.handle_async_request(request)
                if request.url.path.endswith("/settlements") and len(settles) == 1:
                    raise httpx.ReadTimeout("answer lost", request=request)
                return response

        wire.hook, wire.inner = flaky, LosesFirstAnswer()  # type: ignore[assignment]
        settled = await ecert.settle_visit(opened.visit_id)
    assert len(settles) == 3
    assert len({r.headers["Idempotency-Key"] for r in settles}) == 1
    assert settled.total == 5000
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Settlement)) == 1


async def test_verify_is_not_resent_after_it_left(
    app: Litestar, client: Client, runtime: Runtime
) -> None:
    """Verify spends the QR code: a timeout after sending is the caller's to handle."""
    person = await _person(client, runtime)

    def times_out(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/verify":
            raise httpx.ReadTimeout("no answer", request=request)
        return None

    wire = Wire(app, times_out)
    ecert, http = await _hospital(app, runtime, wire)
    async with http, ecert:
        with pytest.raises(httpx.ReadTimeout):
            await ecert.verify(await person.qr(client))
    assert [r.url.path for r in wire.sent].count("/v1/verify") == 1


async def test_a_refused_token_is_fetched_once_more(
    app: Litestar, client: Client, runtime: Runtime
) -> None:
    wire = Wire(app)
    ecert, http = await _hospital(app, runtime, wire)
    async with http, ecert:
        await ecert.reconciliation(business_date())
        ecert._auth._token = "expired.or.revoked"  # as if ecert no longer accepted it
        day = await ecert.reconciliation(business_date())
    assert day.settlements.count == 0
    assert [r.url.path for r in wire.sent].count("/oauth/token") == 2
