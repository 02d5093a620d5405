"""2206 pre-settlement, 2207 settlement, 2208 its cancel: the §7 visit settlement, in yuan."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from ecert.clock import utcnow
from ecert.db.models import Person, Visit
from ecert.gateway.call import Call, flag, national_time, visit_of
from ecert.gateway.exceptions import SumMismatch
from ecert.gateway.money import to_fen, to_yuan
from ecert.gateway.schemas import (
    CancelInfo,
    CancelOutput,
    SetlDetail,
    SetlInfo,
    SettleInput,
    SettlementRefInput,
    SettleOutput,
)
from ecert.settlement import reversal
from ecert.settlement.exceptions import SettlementNotFound
from ecert.settlement.reconciliation.services import clearing_type
from ecert.settlement.schemas import ReversalRequest
from ecert.settlement.services import owned
from ecert.settlement.visits import pricing, schemas
from ecert.settlement.visits.repositories import lines_of

ZERO = to_yuan(0)


async def preview(call: Call, data: SettleInput) -> SettleOutput:
    """2206: the visit priced as 2207 would settle it now; nothing is written."""
    visit, request = await _checked(call, data)
    priced = await pricing.preview(call.session, call.principal, visit.id, request)
    return await _output(call, visit, _builtins(priced), settled=False)


async def settle(call: Call, data: SettleInput) -> SettleOutput:
    """2207: settles the visit through the §7 booking path, once per msgid."""
    visit, request = await _checked(call, data)
    _, body, _ = await pricing.settle(
        call.session, call.runtime, call.principal, visit.id, request, call.native_key
    )
    return await _output(call, visit, body, settled=True)


async def cancel(call: Call, data: SettlementRefInput) -> CancelOutput:
    """2208: the full cancel of a settlement (every pool gets back what it paid)."""
    d = data.data
    try:
        settlement_id = uuid.UUID(d.setl_id)
    except ValueError as exc:
        raise SettlementNotFound() from exc
    settlement = await owned(call.session, call.principal, settlement_id)
    mdtrt_id = str(settlement.visit_id) if settlement.visit_id else None
    if d.mdtrt_id is not None and d.mdtrt_id != mdtrt_id:
        raise SettlementNotFound("this settlement is not of that mdtrt_id")
    request = ReversalRequest(reason="2208 cancel")
    _, body, _ = await reversal.reverse(
        call.session, call.runtime, call.principal, settlement_id, request, call.native_key
    )
    return CancelOutput(
        CancelInfo(
            setl_id=str(body["reversal_id"]),
            init_setl_id=str(body["settlement_id"]),
            mdtrt_id=mdtrt_id,
            setl_time=national_time(utcnow()),
            medfee_sumamt=to_yuan(-body["amount"]),
            fund_pay_sumamt=to_yuan(-body["fund_refund"]),
            acct_pay=to_yuan(-body["account_refund"]),
            acct_mulaid_pay=to_yuan(-body["account_mutual_aid_refund"]),
            psn_cash_pay=to_yuan(-body["cash_refund"]),
        )
    )


async def _checked(call: Call, data: SettleInput) -> tuple[Visit, schemas.VisitSettleRequest]:
    """The visit (the ecToken named again must be its own) and, when the HIS sends its total,
    that total checked against the uploaded lines before anything is priced or written."""
    d = data.data
    visit = await visit_of(call, d.mdtrt_id, d.mdtrt_cert_type, d.mdtrt_cert_no)
    if d.medfee_sumamt is not None:
        theirs = to_fen("medfee_sumamt", d.medfee_sumamt)
        ours = sum(line.amount for line in await lines_of(call.session, visit.id))
        if theirs != ours:
            raise SumMismatch(f"the uploaded lines add up to {to_yuan(ours)} yuan")
    use_account = flag(d.acct_used_flag)
    mutual_aid = use_account and flag(d.acct_mulaid_flag)
    return visit, schemas.VisitSettleRequest(use_account=use_account, mutual_aid=mutual_aid)


def _builtins(priced: schemas.VisitSettlement) -> dict[str, Any]:
    return msgspec.to_builtins(priced)  # type: ignore[no-any-return]


async def _output(call: Call, visit: Visit, r: dict[str, Any], *, settled: bool) -> SettleOutput:
    person = await call.session.get(Person, visit.person_id)
    assert person is not None  # the visit's foreign key
    settlement_id = r.get("settlement_id")
    info = SetlInfo(
        setl_id=str(settlement_id) if settlement_id else None,
        mdtrt_id=str(visit.id),
        psn_no=person.person_no,
        setl_time=national_time(utcnow()) if settled else None,
        med_type=visit.med_type,
        insutype=visit.insurance_type,
        medfee_sumamt=to_yuan(r["total"]),
        fulamt_ownpay_amt=to_yuan(r["fully_self_paid"]),
        overlmt_selfpay=to_yuan(r["over_limit_self_paid"]),
        preselfpay_amt=to_yuan(r["first_self_paid"]),
        inscp_scp_amt=to_yuan(r["eligible_amount"]),
        act_pay_dedc=to_yuan(r["deductible_paid"]),
        hifp_pay=to_yuan(r["fund_paid"]),
        pool_prop_selfpay=to_yuan(r["co_pay"]),
        cvlserv_pay=ZERO,
        hifes_pay=ZERO,
        hifmi_pay=ZERO,
        hifob_pay=ZERO,
        maf_pay=ZERO,
        oth_pay=ZERO,
        fund_pay_sumamt=to_yuan(r["fund_paid"]),
        psn_part_amt=to_yuan(r["person_paid"]),
        acct_pay=to_yuan(r["account_paid"]),
        acct_mulaid_pay=to_yuan(r["account_mutual_aid_paid"]),
        psn_cash_pay=to_yuan(r["cash_paid"]),
        hosp_part_amt=ZERO,
        balc=None if r["balance_after"] is None else to_yuan(r["balance_after"]),
        clr_type=clearing_type(visit.med_type),
        clr_optins=person.area,
    )
    details = [
        SetlDetail(
            fund_pay_type=part["fund_type"],
            inscp_scp_amt=to_yuan(r["eligible_amount"]),
            crt_payb_lmt_amt=None,
            fund_payamt=to_yuan(part["amount"]),
            setl_proc_info=_process(r),
        )
        for part in r["fund_parts"]
    ]
    return SettleOutput(info, details)


def _process(r: dict[str, Any]) -> str:
    """The pooled fund's working in one line, as setl_proc_info carries it."""
    return (
        f"inscp {to_yuan(r['eligible_amount'])} - dedc {to_yuan(r['deductible_paid'])}"
        f" - selfpay {to_yuan(r['co_pay'])} - ovcap {to_yuan(r['over_cap_self_paid'])}"
        f" = fund {to_yuan(r['fund_paid'])}"
    )
