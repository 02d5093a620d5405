"""2201 registration, 2202 its cancel, 2204 fee details, 2205 deleting one: the §7 visit."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from ecert.db.models import Person
from ecert.gateway.call import CARD, EC_TOKEN, Call, parse_time, visit_of
from ecert.gateway.exceptions import CertTypeUnsupported, InputInvalid
from ecert.gateway.money import to_fen, to_yuan
from ecert.gateway.schemas import (
    Done,
    DoneOutput,
    FeeDeleteInput,
    FeeDetail,
    FeeInput,
    FeeOutput,
    FeeResult,
    Registered,
    RegisterInput,
    RegisterOutput,
    VisitRefInput,
)
from ecert.settlement.visits import fees, schemas, services

#: The national item levels (chrgitm_lv) and ecert's classes.
LEVELS: dict[str, Literal["A", "B", "C"]] = {"01": "A", "02": "B", "03": "C"}
CLASSES: dict[str, str] = {v: k for k, v in LEVELS.items()}


async def register(call: Call, data: RegisterInput) -> RegisterOutput:
    """2201: opens a §7 visit with the ecToken (01, spent by it) or a card (03)."""
    d = data.data
    if d.mdtrt_cert_type not in (EC_TOKEN, CARD):
        raise CertTypeUnsupported("a visit opens with an ecToken (01) or a card (03)")
    diagnoses = [
        schemas.Diagnosis(x.diag_code, x.diag_name, main=x.maindiag_flag == "1")
        for x in data.diseinfo or []
    ]
    try:
        body = schemas.VisitCreate(
            med_type=d.med_type,
            his_visit_no=d.ipt_otp_no,
            dept_code=d.dept_code,
            dept_name=d.dept_name,
            diagnoses=diagnoses,
            ec_token=d.mdtrt_cert_no if d.mdtrt_cert_type == EC_TOKEN else None,
            card_no=d.mdtrt_cert_no if d.mdtrt_cert_type == CARD else None,
            doctor_code=d.atddr_no,
            doctor_name=d.dr_name,
            admitted_at=parse_time("begntime", d.begntime),
        )
        # The same checks as the native body's (med_type, token and card patterns).
        body = msgspec.convert(msgspec.to_builtins(body), schemas.VisitCreate)
    except msgspec.ValidationError as exc:
        raise InputInvalid(str(exc)) from exc
    _, opened, _ = await services.open_visit(
        call.session, call.runtime, call.principal, body, call.native_key
    )
    visit_id = str(opened["visit_id"])
    visit = await visit_of(call, visit_id)
    person = await call.session.get(Person, visit.person_id)
    assert person is not None  # the visit's foreign key
    return RegisterOutput(Registered(visit_id, person.person_no, d.ipt_otp_no))


async def cancel(call: Call, data: VisitRefInput) -> DoneOutput:
    """2202: cancels a visit nothing settled (again: a no-op)."""
    d = data.data
    visit = await visit_of(call, d.mdtrt_id, d.mdtrt_cert_type, d.mdtrt_cert_no)
    visit = await services.cancel(call.session, call.principal, visit.id)
    return DoneOutput(Done(str(visit.id), visit.status))


async def upload(call: Call, data: FeeInput) -> FeeOutput:
    """2204: fee lines of one visit; the catalogue classifies them, as natively."""
    ids = {x.mdtrt_id for x in data.feedetail}
    if len(ids) != 1:
        raise InputInvalid("all lines of one 2204 belong to one mdtrt_id")
    first = data.feedetail[0]
    visit = await visit_of(call, ids.pop(), first.mdtrt_cert_type, first.mdtrt_cert_no)
    lines = [_line(x) for x in data.feedetail]
    try:
        upload = msgspec.convert(msgspec.to_builtins({"lines": lines}), schemas.FeeUpload)
    except msgspec.ValidationError as exc:
        raise InputInvalid(str(exc)) from exc
    result = await fees.add(call.session, call.principal, visit.id, upload)
    sent = {x.line_no: x for x in lines}
    return FeeOutput([_result(sent[s.line_no], s) for s in result.lines])


async def delete(call: Call, data: FeeDeleteInput) -> DoneOutput:
    """2205: deletes one fee line (``feedetl_sn``) of an open visit."""
    d = data.data
    visit = await visit_of(call, d.mdtrt_id, d.mdtrt_cert_type, d.mdtrt_cert_no)
    await fees.remove(call.session, call.principal, visit.id, d.feedetl_sn)
    return DoneOutput(Done(str(visit.id), visit.status))


def _line(x: FeeDetail) -> schemas.FeeLineIn:
    quantity = x.cnt if isinstance(x.cnt, str) else str(x.cnt)
    try:
        # The native check (positive, at most four places) refuses anything else.
        quantity = format(Decimal(quantity.strip()).normalize(), "f")
    except ArithmeticError as exc:
        raise InputInvalid(f"line {x.feedetl_sn}: cnt must be a decimal quantity") from exc
    amount = x.det_item_fee_sumamt
    sn = x.feedetl_sn
    return schemas.FeeLineIn(
        line_no=x.feedetl_sn,
        list_code=x.med_list_codg,
        hospital_code=x.medins_list_codg,
        name=x.medins_list_name or x.medins_list_codg or x.med_list_codg,
        quantity=quantity,
        unit_price=to_fen(f"line {x.feedetl_sn} pric", x.pric),
        amount=None if amount is None else to_fen(f"line {sn} det_item_fee_sumamt", amount),
        item_class=LEVELS.get(x.chrgitm_lv or ""),
        ordered_at=parse_time("fee_ocur_time", x.fee_ocur_time),
        doctor_code=x.bilg_dr_codg,
    )


def _result(line: schemas.FeeLineIn, split: schemas.LineSplit) -> FeeResult:
    ratio = split.first_self_pay_ratio
    return FeeResult(
        feedetl_sn=split.line_no,
        det_item_fee_sumamt=to_yuan(split.amount),
        cnt=line.quantity,
        pric=to_yuan(line.unit_price),
        chrgitm_lv=CLASSES[split.item_class],
        selfpay_prop=None if ratio is None else Decimal(str(ratio)),
        fulamt_ownpay_amt=to_yuan(split.fully_self_paid),
        overlmt_amt=to_yuan(split.over_limit_self_paid),
        preselfpay_amt=to_yuan(split.first_self_paid),
        inscp_scp_amt=to_yuan(split.eligible_amount),
        memo=split.reason,
    )
