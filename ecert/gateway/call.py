"""What every transaction handler gets, and the helpers the visit transactions share."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from ecert.clock import BUSINESS_TZ
from ecert.db.models import Visit
from ecert.gateway.envelope import Envelope
from ecert.gateway.exceptions import CertMismatch, InputInvalid
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime
from ecert.settlement.visits.exceptions import VisitNotFound
from ecert.settlement.visits.services import owned

EC_TOKEN, ID_NUMBER, CARD = "01", "02", "03"


@dataclass(frozen=True)
class Call:
    session: AsyncSession
    runtime: Runtime
    principal: Principal
    envelope: Envelope

    @property
    def native_key(self) -> str:
        """The Idempotency-Key a §7 service gets for this msgid (apart from the gateway's own)."""
        return f"fsi-native:{self.envelope.msgid}"


def visit_id(mdtrt_id: str) -> uuid.UUID:
    """``mdtrt_id`` is the §7 visit id; anything else is no visit of this institution."""
    try:
        return uuid.UUID(mdtrt_id)
    except ValueError as exc:
        raise VisitNotFound() from exc


async def visit_of(
    call: Call, mdtrt_id: str, cert_type: str | None = None, cert_no: str | None = None
) -> Visit:
    """The caller's visit; an ecToken named again must be the one that opened it (§8: it
    identifies the visit's person and opens nothing new)."""
    visit = await owned(call.session, call.principal, visit_id(mdtrt_id))
    if cert_type == EC_TOKEN and cert_no is not None and cert_no != visit.ec_token:
        raise CertMismatch()
    return visit


def national_time(at: dt.datetime) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in Asia/Shanghai."""
    return at.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M:%S")


def parse_time(field: str, text: str | None) -> dt.datetime | None:
    """A national ``yyyy-MM-dd HH:mm:ss`` (Asia/Shanghai) time, or None."""
    if text is None:
        return None
    try:
        local = dt.datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError as exc:
        raise InputInvalid(f"{field} must be yyyy-MM-dd HH:mm:ss") from exc
    return local.replace(tzinfo=BUSINESS_TZ)


def flag(value: str | None) -> bool:
    """National yes/no flags: "1" is yes."""
    return value is not None and value.strip() == "1"
