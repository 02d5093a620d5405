"""Whole visits through the national gateway, as HIS vendors send them, against the same visits
through the native API: the same split to the fen, field by field (spec §8)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select

from ecert.clock import business_date
from ecert.db.models import Visit
from ecert.server.runtime import Runtime
from tests.factories import Holder, credit, ec_token, holder, institution, load_policies
from tests.gateway.national import Hospital, envelope, fen, hospital, ok
from tests.helpers import Client
from tests.settlement.visit_steps import (
    AMOXICILLIN,
    CEFIXIME,
    CONSULTATION,
    COSMETIC,
    id_number,
    line,
    load_catalogue,
    open_visit,
    settle,
    visit_body,
)

ALBUMIN = "XB05AAA010B002010100003"
BED = "120100001000000000000002"
#: National setlinfo field → the native §7 field it carries.
SETLINFO = {
    "medfee_sumamt": "total",
    "fulamt_ownpay_amt": "fully_self_paid",
    "overlmt_selfpay": "over_limit_self_paid",
    "preselfpay_amt": "first_self_paid",
    "inscp_scp_amt": "eligible_amount",
    "act_pay_dedc": "deductible_paid",
    "pool_prop_selfpay": "co_pay",
    "hifp_pay": "fund_paid",
    "fund_pay_sumamt": "fund_paid",
    "psn_part_amt": "person_paid",
    "acct_pay": "account_paid",
    "acct_mulaid_pay": "account_mutual_aid_paid",
    "psn_cash_pay": "cash_paid",
    "balc": "balance_after",
}
#: National 2204 result field → the native line split field.
LINE = {
    "det_item_fee_sumamt": "amount",
    "fulamt_ownpay_amt": "fully_self_paid",
    "overlmt_amt": "over_limit_self_paid",
    "preselfpay_amt": "first_self_paid",
    "inscp_scp_amt": "eligible_amount",
}


def national_line(
    sn: str, mdtrt_id: str, code: str, cnt: Any, pric: Any, sumamt: Any
) -> dict[str, Any]:
    """A 2204 line with the fields vendors fill, most of which ecert does not need."""
    return {
        "feedetl_sn": sn,
        "mdtrt_id": mdtrt_id,
        "psn_no": "null",
        "chrg_bchno": "0001",
        "dise_codg": "",
        "rxno": "null",
        "rx_circ_flag": "0",
        "fee_ocur_time": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "med_list_codg": code,
        "medins_list_codg": f"H-{code[-6:]}",
        "medins_list_name": f"项目 {code}",
        "det_item_fee_sumamt": sumamt,
        "cnt": cnt,
        "pric": pric,
        "bilg_dept_codg": "A03",
        "bilg_dept_name": "内科",
        "bilg_dr_codg": "D001",
        "bilg_dr_name": "李医生",
        "hosp_appr_flag": "1",
    }


def as_fen(national: dict[str, Any], mapping: dict[str, str]) -> dict[str, int | None]:
    return {
        native: None if national[key] is None else fen(national[key])
        for key, native in mapping.items()
    }


def native_of(reply: dict[str, Any], mapping: dict[str, str]) -> dict[str, int | None]:
    return {native: reply[native] for native in mapping.values()}


def same_split(setlinfo: dict[str, Any], native: dict[str, Any]) -> None:
    """Every fen field of the native reply, from the national setlinfo."""
    assert as_fen(setlinfo, SETLINFO) == native_of(native, SETLINFO)
    # over_cap_self_paid has no national field: what is left of the eligible amount.
    over_cap = fen(setlinfo["inscp_scp_amt"]) - sum(
        fen(setlinfo[k]) for k in ("act_pay_dedc", "pool_prop_selfpay", "hifp_pay")
    )
    assert over_cap == native["over_cap_self_paid"]


async def person(client: Client, runtime: Runtime, balance: int) -> Holder:
    someone = await holder(client, runtime, id_number=id_number("M"))
    await credit(runtime, someone.person_id, balance)
    return someone


async def register(client: Client, h: Hospital, token: str, med_type: str, **more: Any) -> str:
    data = {
        "psn_no": "null",
        "insutype": "310",
        "begntime": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "mdtrt_cert_type": "01",
        "mdtrt_cert_no": token,
        "ipt_otp_no": "MZ20261201-0001",
        "atddr_no": "D001",
        "dr_name": "李医生",
        "dept_code": "A03",
        "dept_name": "内科",
        "caty": "A03",
        "med_type": med_type,
    }
    diseinfo = [{"diag_code": "J06.900", "diag_name": "急性上呼吸道感染", "maindiag_flag": "1"}]
    out = await ok(
        client, h.headers, envelope("2201", h.code, {"data": data, "diseinfo": diseinfo})
    )
    return str(out["data"]["mdtrt_id"])


def settle_data(mdtrt_id: str, token: str, sumamt: str) -> dict[str, Any]:
    return {
        "data": {
            "psn_no": "null",
            "mdtrt_cert_type": "01",
            "mdtrt_cert_no": token,  # named again: identifies the visit's person, opens nothing
            "med_type": "null",
            "medfee_sumamt": sumamt,
            "psn_setlway": "01",
            "mdtrt_id": mdtrt_id,
            "chrg_bchno": "0001",
            "insutype": "310",
            "acct_used_flag": "1",
            "invono": "null",
        }
    }


async def native_visit(
    client: Client,
    runtime: Runtime,
    headers: dict[str, str],
    someone: Holder,
    med_type: str,
    lines: list[dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(fee upload reply, preview, settlement) of the same visit through the native API."""
    token = await ec_token(client, runtime, someone, headers)
    opened = await open_visit(client, headers, visit_body(token, med_type))
    assert opened.status_code == 201, opened.text
    visit_id = opened.json()["visit_id"]
    uploaded = await client.post(
        f"/v1/visits/{visit_id}/fees", json={"lines": lines}, headers=headers
    )
    assert uploaded.status_code == 200, uploaded.text
    preview = await client.post(
        f"/v1/visits/{visit_id}/settlements/preview", json={"use_account": True}, headers=headers
    )
    assert preview.status_code == 200, preview.text
    settled = await settle(client, headers, visit_id, {"use_account": True})
    assert settled.status_code == 201, settled.text
    return uploaded.json(), preview.json(), settled.json()


async def test_an_outpatient_visit_through_the_gateway_splits_as_natively(
    client: Client, runtime: Runtime
) -> None:
    await load_policies(runtime)
    await load_catalogue(runtime)
    native_hospital = await institution(client, runtime, code="H37010200011")
    h = await hospital(runtime, client, "H37010200012")
    # Amounts as vendors write them: strings with two places, and plain JSON numbers.
    national = [
        ("1", AMOXICILLIN, "2", "12.50", "25.00"),
        ("2", CEFIXIME, "1.5", "30.00", "45.00"),
        ("3", CONSULTATION, 1, 15, 15.0),  # a price cap of 10 yuan: 5 over the limit
        ("4", COSMETIC, "1", "88.88", "88.88"),
    ]
    native = [
        line("1", AMOXICILLIN, "2", 1_250),
        line("2", CEFIXIME, "1.5", 3_000),
        line("3", CONSULTATION, "1", 1_500),
        line("4", COSMETIC, "1", 8_888),
    ]
    upload, preview, settled = await native_visit(
        client, runtime, native_hospital, await person(client, runtime, 3_000), "11", native
    )

    someone = await person(client, runtime, 3_000)
    token = await ec_token(client, runtime, someone, h.headers)
    # 1101 by ecToken: masked, with the account balance in yuan; nothing spent.
    found = await ok(
        client,
        h.headers,
        envelope(
            "1101",
            h.code,
            {
                "data": {
                    "mdtrt_cert_type": "01",
                    "mdtrt_cert_no": token,
                    "card_sn": "null",
                    "begntime": "null",
                    "psn_cert_type": "null",
                    "certno": "null",
                    "psn_name": "null",
                }
            },
        ),
    )
    base = found["baseinfo"]
    assert base["certno"] != someone.id_number
    assert base["certno"].endswith(someone.id_number[-4:])
    assert someone.id_number not in str(found)
    assert (base["gend"], base["psn_cert_type"], base["brdy"]) == ("1", "01", "1980-05-17")
    [insured] = found["insuinfo"]
    assert (insured["insutype"], insured["psn_insu_stas"], insured["insuplc_admdvs"]) == (
        "310",
        "1",
        "370102",
    )
    assert insured["balc"] == 30.0
    assert insured["emp_name"] == "测试单位"

    mdtrt_id = await register(client, h, token, "11")
    lines = [national_line(sn, mdtrt_id, code, c, p, s) for sn, code, c, p, s in national]
    fees = await ok(client, h.headers, envelope("2204", h.code, {"feedetail": lines}))
    assert [r["feedetl_sn"] for r in fees["result"]] == ["1", "2", "3", "4"]
    for mine, theirs in zip(fees["result"], upload["lines"], strict=True):
        assert as_fen(mine, LINE) == native_of(theirs, LINE)
    assert [r["chrgitm_lv"] for r in fees["result"]] == ["01", "02", "01", "03"]

    total = "173.88"  # 25.00 + 45.00 + 15.00 + 88.88
    pre = await ok(client, h.headers, envelope("2206", h.code, settle_data(mdtrt_id, token, total)))
    assert pre["setlinfo"]["setl_id"] is None
    same_split(pre["setlinfo"], preview)
    done = await ok(
        client, h.headers, envelope("2207", h.code, settle_data(mdtrt_id, token, total))
    )
    info = done["setlinfo"]
    same_split(info, settled)
    assert (info["mdtrt_id"], info["med_type"], info["clr_type"]) == (mdtrt_id, "11", "11")
    assert info["psn_no"] == base["psn_no"]
    [part] = done["setldetail"]
    assert (part["fund_pay_type"], fen(part["fund_payamt"])) == ("310100", settled["fund_paid"])
    async with runtime.sessions() as session:  # the ecToken named again opened nothing new
        assert await session.scalar(select(func.count()).select_from(Visit)) == 2

    # 3201 with the HIS's own figures for the day: they match.
    day = business_date().isoformat()
    figures = {
        "insutype": "310",
        "clr_type": "11",
        "setl_optins": "370102",
        "stmt_begndate": day,
        "stmt_enddate": day,
        "medfee_sumamt": info["medfee_sumamt"],
        "fund_pay_sumamt": str(info["fund_pay_sumamt"]),
        "acct_pay": info["acct_pay"],
        "fixmedins_setl_cnt": "1",
        "refd_setl_flag": "0",
    }
    stmt = await ok(client, h.headers, envelope("3201", h.code, {"data": figures}))
    assert stmt["stmtinfo"]["stmt_rslt"] == "0", stmt
    off = await ok(
        client, h.headers, envelope("3201", h.code, {"data": {**figures, "acct_pay": "0.01"}})
    )
    assert off["stmtinfo"]["stmt_rslt"] == "1"
    assert "acct_pay" in off["stmtinfo"]["stmt_rslt_dscr"]


async def test_an_inpatient_visit_with_a_deleted_line_and_a_cancel_splits_as_natively(
    client: Client, runtime: Runtime
) -> None:
    await load_policies(runtime)
    await load_catalogue(runtime)
    native_hospital = await institution(client, runtime, code="H37010200021")
    h = await hospital(runtime, client, "H37010200022")
    kept = [
        ("1", AMOXICILLIN, "10", "12.50", "125.00"),
        ("2", ALBUMIN, "4", "450.00", "1800.00"),
        ("3", BED, "5", "80.00", "400.00"),
        ("4", COSMETIC, "1", "200.00", "200.00"),
    ]
    native = [
        line("1", AMOXICILLIN, "10", 1_250),
        line("2", ALBUMIN, "4", 45_000),
        line("3", BED, "5", 8_000),
        line("4", COSMETIC, "1", 20_000),
    ]
    native_upload, preview, settled = await native_visit(
        client, runtime, native_hospital, await person(client, runtime, 50_000), "21", native
    )
    back = await client.post(
        f"/v1/settlements/{settled['settlement_id']}/reversal",
        json={"reason": "cancel"},
        headers={**native_hospital, "Idempotency-Key": "native-cancel"},
    )
    assert back.status_code == 201, back.text
    reversed_ = back.json()

    someone = await person(client, runtime, 50_000)
    token = await ec_token(client, runtime, someone, h.headers)
    mdtrt_id = await register(client, h, token, "21")
    lines = [national_line(sn, mdtrt_id, code, c, p, s) for sn, code, c, p, s in kept]
    wrong = national_line("5", mdtrt_id, CEFIXIME, "3", "30.00", "90.00")
    first = await ok(client, h.headers, envelope("2204", h.code, {"feedetail": lines[:2]}))
    second = await ok(
        client, h.headers, envelope("2204", h.code, {"feedetail": [*lines[2:], wrong]})
    )
    classified = [*first["result"], *second["result"][:2]]
    for mine, theirs in zip(classified, native_upload["lines"], strict=True):
        assert as_fen(mine, LINE) == native_of(theirs, LINE)
    # 2205: the line entered by mistake goes before settling.
    gone = {"data": {"mdtrt_id": mdtrt_id, "feedetl_sn": "5", "psn_no": "null"}}
    assert (await ok(client, h.headers, envelope("2205", h.code, gone)))["data"]["status"] == "open"

    total = "2525.00"
    data = settle_data(mdtrt_id, token, total)
    pre = await ok(client, h.headers, envelope("2206", h.code, data))
    same_split(pre["setlinfo"], preview)
    done = await ok(client, h.headers, envelope("2207", h.code, data))
    info = done["setlinfo"]
    same_split(info, settled)
    # The hand-worked bill of docs/settlement.md: fund 761.20, account 500.00, cash 1,263.80.
    assert (info["hifp_pay"], info["acct_pay"], info["psn_cash_pay"]) == (761.2, 500.0, 1263.8)
    assert info["clr_type"] == "21"

    # 2208: the full cancel gives each pool back what it paid, as natively.
    ref = {"data": {"psn_no": info["psn_no"], "setl_id": info["setl_id"], "mdtrt_id": mdtrt_id}}
    cancel = (await ok(client, h.headers, envelope("2208", h.code, ref)))["setlinfo"]
    assert cancel["init_setl_id"] == info["setl_id"]
    assert {
        "amount": -fen(cancel["medfee_sumamt"]),
        "fund_refund": -fen(cancel["fund_pay_sumamt"]),
        "account_refund": -fen(cancel["acct_pay"]),
        "account_mutual_aid_refund": -fen(cancel["acct_mulaid_pay"]),
        "cash_refund": -fen(cancel["psn_cash_pay"]),
    } == {
        k: reversed_[k]
        for k in (
            "amount",
            "fund_refund",
            "account_refund",
            "account_mutual_aid_refund",
            "cash_refund",
        )
    }

    # 3202: the settlement and its cancel, line by line; 3201: the day nets to zero.
    day = business_date().isoformat()
    statement = {"stmt_begndate": day, "stmt_enddate": day, "clr_type": "21", "insutype": "310"}
    detail = (await ok(client, h.headers, envelope("3202", h.code, {"data": statement})))["detail"]
    assert [(d["refd_setl_flag"], d["setl_id"]) for d in detail] == [
        ("0", info["setl_id"]),
        ("1", cancel["setl_id"]),
    ]
    assert sum(fen(d["medfee_sumamt"]) for d in detail) == 0
    assert detail[0]["mdtrt_id"] == mdtrt_id
    assert detail[0]["psn_no"] == info["psn_no"]
    figures = {
        **statement,
        "medfee_sumamt": "0.00",
        "fund_pay_sumamt": 0,
        "acct_pay": "0",
        "fixmedins_setl_cnt": 1,
    }
    stmt = await ok(client, h.headers, envelope("3201", h.code, {"data": figures}))
    assert stmt["stmtinfo"]["stmt_rslt"] == "0", stmt
