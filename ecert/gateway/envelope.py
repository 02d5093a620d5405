"""The national request and reply envelopes (spec §8), read the way HIS clients write them.

HIS client libraries post the JSON as ``text/plain; charset=utf-8``, fill every envelope field
and write ``"null"`` or ``""`` where they have nothing: those placeholders read as absent, in the
envelope and in ``input`` alike. Unknown envelope keys are ignored (vendors add their own).
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Annotated, Any

import msgspec

from ecert.clock import BUSINESS_TZ, utcnow
from ecert.gateway.exceptions import EnvelopeMalformed

PLACEHOLDERS = frozenset({"", "null", "NULL", "None"})
_encoder = msgspec.json.Encoder(decimal_format="number")

Short = Annotated[str, msgspec.Meta(max_length=200)]


class ReplyEnvelope(msgspec.Struct, kw_only=True):
    """The reply envelope as the OpenAPI schema shows it (:func:`reply` writes it)."""

    infcode: int
    inf_refmsgid: str
    refmsg_time: str
    respond_time: str
    err_msg: str | None = None
    #: ecert's stable problem code (docs/errors.md), beside the national fields.
    err_code: str | None = None
    warn_msg: str | None = None
    cainfo: str | None = None
    signtype: str | None = None
    request_id: str | None = None
    output: dict[str, Any] | None = None


class Envelope(msgspec.Struct, kw_only=True):
    """The request envelope; only ``infno`` and ``msgid`` are required."""

    infno: Annotated[str, msgspec.Meta(pattern=r"^\d{4}$")]
    #: The idempotency key (30 characters on the national platform; a little slack here).
    msgid: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
    mdtrtarea_admvs: Short | None = None
    insuplc_admdvs: Short | None = None
    recer_sys_code: Short | None = None
    dev_no: Short | None = None
    dev_safe_info: Short | None = None
    cainfo: str | None = None
    signtype: Short | None = None
    infver: Short | None = None
    opter_type: Short | None = None
    opter: Short | None = None
    opter_name: Short | None = None
    inf_time: Short | None = None
    fixmedins_code: Short | None = None
    fixmedins_name: Short | None = None
    sign_no: Short | None = None
    input: dict[str, Any] | None = None


def clean(value: Any) -> Any:
    """Placeholders ("null", "") become None, all the way down."""
    if isinstance(value, str):
        return None if value.strip() in PLACEHOLDERS else value
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def parse(body: bytes) -> Envelope:
    """The envelope of a request body (any content type); :class:`EnvelopeMalformed` if not."""
    try:
        raw = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise EnvelopeMalformed("the body is not JSON") from exc
    if not isinstance(raw, dict):
        raise EnvelopeMalformed("the body is not a JSON object")
    try:
        return msgspec.convert(clean(raw), Envelope)
    except msgspec.ValidationError as exc:
        raise EnvelopeMalformed(f"envelope: {exc}") from exc


def peek_msgid(body: bytes) -> str | None:
    """The msgid of a body that may not parse, to echo in a refusal (None if there is none)."""
    try:
        raw = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    msgid = raw.get("msgid") if isinstance(raw, dict) else None
    return msgid[:64] if isinstance(msgid, str) else None


def stamp(at: dt.datetime) -> str:
    """``yyyyMMddHHmmssSSS`` in Asia/Shanghai, as the national replies write times."""
    local = at.astimezone(BUSINESS_TZ)
    return local.strftime("%Y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}"


def reply(
    area: str,
    received: dt.datetime,
    output: Any,
    *,
    error: tuple[str, str] | None = None,
    request_id: str | None = None,
) -> bytes:
    """The reply envelope: ``infcode`` 0 with ``output``, or −1 with ``err_msg`` and ecert's
    stable ``err_code`` (an added field; national clients ignore what they do not know)."""
    now = utcnow()
    local = now.astimezone(BUSINESS_TZ)
    body: dict[str, Any] = {
        "infcode": -1 if error else 0,
        # Area (6) + time (14) + sequence (10), as the national platform numbers its replies.
        "inf_refmsgid": area + local.strftime("%Y%m%d%H%M%S") + f"{secrets.randbelow(10**10):010d}",
        "refmsg_time": stamp(received),
        "respond_time": stamp(now),
        "err_msg": error[1] if error else None,
        "err_code": error[0] if error else None,
        "warn_msg": None,
        "cainfo": None,
        "signtype": None,
        "request_id": request_id,
        "output": output,
    }
    return _encoder.encode(body)
