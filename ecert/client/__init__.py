"""The institution client SDK: typed, async, over httpx (``docs/client.md``).

    async with InstitutionClient(url, PrivateKeyJwt(client_id, pem)) as ecert:
        verified = await ecert.verify(scanned_qr)
        visit = await ecert.open_visit(VisitCreate(ec_token=verified.ec_token, ...))

Requests and results are the msgspec structs of the API schema itself (re-exported here).
"""

from __future__ import annotations

from ecert.benefits import BillItem
from ecert.client.auth import PrivateKeyJwt
from ecert.client.blocking import BlockingInstitutionClient
from ecert.client.errors import EcertClientError, ProblemError
from ecert.client.institution import InstitutionClient
from ecert.ledger import SettlementView
from ecert.settlement.reconciliation.schemas import (
    DetailLine,
    Reconciliation,
    ReconciliationCheck,
    ReconciliationResult,
)
from ecert.settlement.replies import ReversalReply
from ecert.settlement.schemas import (
    ReturnLine,
    ReversalRequest,
    SettlementRequest,
    SettlementResult,
)
from ecert.settlement.visits.schemas import (
    Diagnosis,
    FeeLineIn,
    FeeUploadResult,
    VisitCreate,
    VisitOpened,
    VisitSettlement,
    VisitSettleRequest,
    VisitView,
)
from ecert.verify.schemas import VerifyResponse

__all__ = [
    "BillItem",
    "BlockingInstitutionClient",
    "DetailLine",
    "Diagnosis",
    "EcertClientError",
    "FeeLineIn",
    "FeeUploadResult",
    "InstitutionClient",
    "PrivateKeyJwt",
    "ProblemError",
    "Reconciliation",
    "ReconciliationCheck",
    "ReconciliationResult",
    "ReturnLine",
    "ReversalReply",
    "ReversalRequest",
    "SettlementRequest",
    "SettlementResult",
    "SettlementView",
    "VerifyResponse",
    "VisitCreate",
    "VisitOpened",
    "VisitSettleRequest",
    "VisitSettlement",
    "VisitView",
]
