"""``InstitutionClient``: a hospital or pharmacy talking to ecert (verify, visits, settle,
reverse, reconcile), with typed results and safe retries.

Retries: a request that cannot change anything twice (a read, a fee upload, a preview, a money
write with its ``Idempotency-Key``) is sent again on a timeout, a dropped connection or a 5xx,
with the same key, so ecert answers a repeat with the stored result. Any other request (verify
spends the QR code) is sent again only when it never left (the connection was refused).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import TypeVar

import httpx
import msgspec

from ecert.client.auth import PrivateKeyJwt
from ecert.client.errors import ProblemError
from ecert.ledger import SettlementView
from ecert.settlement.reconciliation.schemas import (
    DetailLine,
    Reconciliation,
    ReconciliationCheck,
    ReconciliationResult,
)
from ecert.settlement.replies import ReversalReply
from ecert.settlement.schemas import ReversalRequest, SettlementRequest, SettlementResult
from ecert.settlement.visits.schemas import (
    FeeLineIn,
    FeeUpload,
    FeeUploadResult,
    VisitCreate,
    VisitOpened,
    VisitSettlement,
    VisitSettleRequest,
    VisitView,
)
from ecert.verify.schemas import VerifyRequest, VerifyResponse

T = TypeVar("T")

#: Worth another try with the same Idempotency-Key: the answer may have been lost, not refused.
RETRY_STATUSES = frozenset({500, 502, 503, 504})
_DETAIL_LINES = msgspec.json.Decoder(DetailLine)
#: The request never reached ecert: every request may be sent again.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


class InstitutionClient:
    """Async client for one institution. Use as ``async with InstitutionClient(...) as ecert``,
    or pass an ``httpx.AsyncClient`` of your own (``http``; its ``base_url`` is used)."""

    def __init__(
        self,
        base_url: str,
        auth: PrivateKeyJwt,
        *,
        http: httpx.AsyncClient | None = None,
        retries: int = 3,
        backoff_s: float = 0.2,
        timeout_s: float = 10.0,
    ) -> None:
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout_s)
        self._auth = auth
        self._retries = retries
        self._backoff_s = backoff_s

    async def __aenter__(self) -> InstitutionClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    # -- verify ------------------------------------------------------------------------------

    async def verify(self, qr: str, business_type: str | None = None) -> VerifyResponse:
        """The person behind a scanned code, and an ``ec_token`` for one visit or settlement."""
        body = VerifyRequest(qr=qr, business_type=business_type)
        return await self._call("POST", "/v1/verify", VerifyResponse, body, safe=False)

    # -- visits (spec §7) --------------------------------------------------------------------

    async def open_visit(
        self, visit: VisitCreate, *, idempotency_key: str | None = None
    ) -> VisitOpened:
        return await self._call(
            "POST", "/v1/visits", VisitOpened, visit, key=idempotency_key or _key()
        )

    async def get_visit(self, visit_id: uuid.UUID | str) -> VisitView:
        return await self._call("GET", f"/v1/visits/{visit_id}", VisitView)

    async def add_fees(self, visit_id: uuid.UUID | str, lines: list[FeeLineIn]) -> FeeUploadResult:
        """Upload fee lines; sending the same lines again is a no-op, so it is retried."""
        body = FeeUpload(lines=lines)
        return await self._call("POST", f"/v1/visits/{visit_id}/fees", FeeUploadResult, body)

    async def delete_fee(self, visit_id: uuid.UUID | str, line_no: str) -> None:
        path = f"/v1/visits/{visit_id}/fees/{line_no}"
        await self._exchange("DELETE", path, None, None, safe=False, params=None)

    async def cancel_visit(self, visit_id: uuid.UUID | str) -> VisitView:
        return await self._call("POST", f"/v1/visits/{visit_id}/cancel", VisitView)

    async def preview_visit(
        self, visit_id: uuid.UUID | str, request: VisitSettleRequest | None = None
    ) -> VisitSettlement:
        """Pre-settlement (2206): the split, nothing written."""
        path = f"/v1/visits/{visit_id}/settlements/preview"
        return await self._call("POST", path, VisitSettlement, request or VisitSettleRequest())

    async def settle_visit(
        self,
        visit_id: uuid.UUID | str,
        request: VisitSettleRequest | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> VisitSettlement:
        path = f"/v1/visits/{visit_id}/settlements"
        body = request or VisitSettleRequest()
        return await self._call("POST", path, VisitSettlement, body, key=idempotency_key or _key())

    # -- one-shot bills (spec §5) and reversals ----------------------------------------------

    async def preview(self, bill: SettlementRequest) -> SettlementResult:
        return await self._call("POST", "/v1/settlements/preview", SettlementResult, bill)

    async def settle(
        self, bill: SettlementRequest, *, idempotency_key: str | None = None
    ) -> SettlementResult:
        return await self._call(
            "POST", "/v1/settlements", SettlementResult, bill, key=idempotency_key or _key()
        )

    async def get_settlement(self, settlement_id: uuid.UUID | str) -> SettlementView:
        return await self._call("GET", f"/v1/settlements/{settlement_id}", SettlementView)

    async def reverse(
        self,
        settlement_id: uuid.UUID | str,
        request: ReversalRequest,
        *,
        idempotency_key: str | None = None,
    ) -> ReversalReply:
        """Cancel (neither ``amount`` nor ``lines``), reverse ``amount``, or return ``lines``."""
        path = f"/v1/settlements/{settlement_id}/reversal"
        return await self._call("POST", path, ReversalReply, request, key=idempotency_key or _key())

    # -- reconciliation ----------------------------------------------------------------------

    async def reconciliation(self, date: dt.date) -> Reconciliation:
        """ecert's totals and lines of the institution's business day."""
        params = {"date": date.isoformat()}
        return await self._call("GET", "/v1/reconciliation", Reconciliation, params=params)

    async def reconciliation_details(self, date: dt.date) -> list[DetailLine]:
        """Every settlement and reversal of the day (3202), for a line-by-line check."""
        params = {"date": date.isoformat()}
        response = await self._exchange(
            "GET", "/v1/reconciliation/details", None, None, safe=True, params=params
        )
        return _DETAIL_LINES.decode_lines(response.content)

    async def reconcile(self, figures: ReconciliationCheck) -> ReconciliationResult:
        """Check the institution's own figures for a day (3201): match or the differences."""
        return await self._call("POST", "/v1/reconciliation", ReconciliationResult, figures)

    # -- the wire ----------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        result: type[T],
        body: msgspec.Struct | None = None,
        *,
        key: str | None = None,
        safe: bool = True,
        params: dict[str, str] | None = None,
    ) -> T:
        response = await self._exchange(method, path, body, key, safe=safe, params=params)
        return msgspec.json.decode(response.content, type=result)

    async def _exchange(
        self,
        method: str,
        path: str,
        body: msgspec.Struct | None,
        key: str | None,
        *,
        safe: bool,
        params: dict[str, str] | None,
    ) -> httpx.Response:
        """The successful response; a refusal raises :class:`ProblemError`."""
        content = msgspec.json.encode(body) if body is not None else None
        response = await self._send(method, path, content, key, safe=safe, params=params)
        if response.is_error:
            raise ProblemError.from_response(response)
        return response

    async def _send(
        self,
        method: str,
        path: str,
        content: bytes | None,
        key: str | None,
        *,
        safe: bool,
        params: dict[str, str] | None,
    ) -> httpx.Response:
        headers = {"Content-Type": "application/json"} if content is not None else {}
        if key is not None:
            headers["Idempotency-Key"] = key  # the same key on every attempt
        fresh_token = False
        attempt = 0
        while True:
            headers["Authorization"] = f"Bearer {await self._auth.token(self._http)}"
            try:
                response = await self._http.request(
                    method, path, content=content, headers=headers, params=params
                )
            except httpx.TransportError as exc:
                if attempt >= self._retries or not (safe or isinstance(exc, NOT_SENT)):
                    raise
                attempt += 1
                await self._pause(attempt, None)
                continue
            if response.status_code == 401 and not fresh_token:
                # A token revoked or signed by a retired key: one fresh token, then the answer.
                self._auth.forget()
                fresh_token = True
                continue
            if response.status_code in RETRY_STATUSES and safe and attempt < self._retries:
                attempt += 1
                await self._pause(attempt, response.headers.get("Retry-After"))
                continue
            return response

    async def _pause(self, attempt: int, retry_after: str | None) -> None:
        delay = self._backoff_s * 2 ** (attempt - 1)
        if retry_after is not None and retry_after.isdigit():
            delay = max(delay, float(retry_after))
        await asyncio.sleep(delay)


def _key() -> str:
    return str(uuid.uuid4())
