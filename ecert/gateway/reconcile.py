"""3201 totals check and 3202 details of one business day, from §7's reconciliation."""

from __future__ import annotations

import datetime as dt

import msgspec

from ecert.gateway.call import Call, national_time
from ecert.gateway.exceptions import InputInvalid
from ecert.gateway.money import to_fen, to_yuan
from ecert.gateway.schemas import (
    DetailLine,
    DetailOutput,
    Statement,
    StatementInput,
    StatementOutput,
    StmtInfo,
)
from ecert.settlement.reconciliation import schemas, services

#: ecert's 3201 figures and their national names, for the result's description.
NAMES = {
    "settlement_count": "fixmedins_setl_cnt",
    "total": "medfee_sumamt",
    "fund_paid": "fund_pay_sumamt",
    "account_paid": "acct_pay",
}


async def check(call: Call, data: StatementInput) -> StatementOutput:
    """3201: the institution's net figures for one day against ecert's."""
    d = data.data
    day = _day(d)
    missing = [
        n
        for n in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay", "fixmedins_setl_cnt")
        if getattr(d, n) is None
    ]
    if missing:
        raise InputInvalid(f"3201 needs {', '.join(missing)}")
    try:
        figures = schemas.ReconciliationCheck(
            date=day,
            settlement_count=int(str(d.fixmedins_setl_cnt)),
            total=to_fen("medfee_sumamt", d.medfee_sumamt, allow_negative=True),
            fund_paid=to_fen("fund_pay_sumamt", d.fund_pay_sumamt, allow_negative=True),
            account_paid=to_fen("acct_pay", d.acct_pay, allow_negative=True),
            clearing_type=d.clr_type,  # type: ignore[arg-type]  # checked by the convert below
            insurance_type=d.insutype,
        )
        figures = msgspec.convert(msgspec.to_builtins(figures), schemas.ReconciliationCheck)
    except (ValueError, msgspec.ValidationError) as exc:
        raise InputInvalid(f"3201: {exc}") from exc
    result = await services.check(call.session, call.principal.institution_code or "", figures)
    differences = [
        f"{NAMES[key]} {_show(key, ours)} ≠ {_show(key, getattr(result.theirs, key))}"
        for key, ours in msgspec.structs.asdict(result.ours).items()
        if key in NAMES and ours != getattr(result.theirs, key)
    ]
    return StatementOutput(
        StmtInfo(
            setl_optins=d.setl_optins,
            stmt_rslt="0" if result.result == "match" else "1",
            stmt_rslt_dscr="; ".join(differences) if differences else "对账一致 match",
        )
    )


async def details(call: Call, data: StatementInput) -> DetailOutput:
    """3202: every settlement and cancel of the day, line by line (the native stream)."""
    d = data.data
    day = _day(d)
    if d.clr_type not in (None, "11", "21", "41", "99"):
        raise InputInvalid("clr_type is 11, 21, 41 or 99")
    stream = services.detail_stream(
        call.runtime.sessions,
        call.principal.institution_code or "",
        day,
        d.clr_type,  # type: ignore[arg-type]  # checked above
        d.insutype,
    )
    lines: list[DetailLine] = []
    async for chunk in stream:
        for raw in chunk.splitlines():
            line = msgspec.json.decode(raw, type=schemas.DetailLine)
            sign = 1 if line.kind == "settlement" else -1
            lines.append(
                DetailLine(
                    setl_id=str(line.id),
                    init_setl_id=None if line.kind == "settlement" else str(line.settlement_id),
                    mdtrt_id=str(line.visit_id) if line.visit_id else None,
                    psn_no=line.person_no,
                    setl_time=national_time(line.at),
                    med_type=line.med_type,
                    clr_type=line.clearing_type,
                    insutype=line.insurance_type,
                    refd_setl_flag="0" if line.kind == "settlement" else "1",
                    medfee_sumamt=to_yuan(sign * line.total),
                    fund_pay_sumamt=to_yuan(sign * line.fund_paid),
                    acct_pay=to_yuan(sign * line.account_paid),
                    psn_cash_pay=to_yuan(sign * line.cash_paid),
                )
            )
    return DetailOutput(lines)


def _day(d: Statement) -> dt.date:
    try:
        day = dt.date.fromisoformat(d.stmt_begndate[:10])
        end = dt.date.fromisoformat(d.stmt_enddate[:10]) if d.stmt_enddate else day
    except ValueError as exc:
        raise InputInvalid("stmt_begndate and stmt_enddate are yyyy-MM-dd") from exc
    if end != day:
        raise InputInvalid("ecert reconciles one business day at a time")
    return day


def _show(key: str, value: int | None) -> str:
    if value is None:
        return "-"
    return str(value) if key == "settlement_count" else str(to_yuan(value))
