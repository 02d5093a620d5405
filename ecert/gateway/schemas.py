"""National input and output shapes (field names as the national interface spells them).

Inputs accept unknown fields: HIS clients send every field of the national record whether ecert
uses it or not. Amounts in inputs are yuan as strings or numbers (:mod:`ecert.gateway.money`);
amounts in outputs are ``Decimal`` yuan with two places.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import msgspec

Text = Annotated[str, msgspec.Meta(max_length=200)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
#: Yuan as HIS clients write it; read by ``money.to_fen``.
Yuan = str | int | float
CertType = Annotated[str, msgspec.Meta(max_length=2)]


# 9001 sign-in
class SignIn(msgspec.Struct):
    opter_no: Text | None = None
    mac: Text | None = None
    ip: Text | None = None


class SignInInput(msgspec.Struct):
    sign_in: SignIn = msgspec.field(name="signIn")


class SignInOut(msgspec.Struct):
    sign_time: str
    sign_no: str


class SignInOutput(msgspec.Struct):
    signinoutb: SignInOut


# 1101 person query
class PersonQuery(msgspec.Struct):
    mdtrt_cert_type: CertType
    mdtrt_cert_no: Text | None = None
    card_sn: Text | None = None
    begntime: Text | None = None
    psn_cert_type: Text | None = None
    certno: Text | None = None
    psn_name: Text | None = None


class PersonQueryInput(msgspec.Struct):
    data: PersonQuery


class BaseInfo(msgspec.Struct):
    psn_no: str
    psn_cert_type: str
    #: Always masked (first 6 and last 4 kept at most): the number never leaves in clear here.
    certno: str
    psn_name: str
    gend: str | None
    naty: str | None
    brdy: str | None
    age: int | None


class InsuInfo(msgspec.Struct):
    balc: Decimal
    insutype: str
    psn_type: str
    psn_insu_stas: str
    psn_insu_date: str
    paus_insu_date: str | None
    cvlserv_flag: str
    insuplc_admdvs: str
    emp_name: str | None


class PersonOutput(msgspec.Struct):
    baseinfo: BaseInfo
    insuinfo: list[InsuInfo]
    idetinfo: list[dict[str, str]]


# 2201 registration, 2202 its cancel
class Register(msgspec.Struct):
    mdtrt_cert_type: CertType
    mdtrt_cert_no: Text
    ipt_otp_no: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    dept_code: Annotated[str, msgspec.Meta(min_length=1, max_length=30)]
    dept_name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    psn_no: Text | None = None
    insutype: Text | None = None
    begntime: Text | None = None
    atddr_no: Annotated[str, msgspec.Meta(min_length=1, max_length=30)] | None = None
    dr_name: Annotated[str, msgspec.Meta(min_length=1, max_length=50)] | None = None
    caty: Text | None = None
    #: Not in the national 2201 (it comes with 2203/2401 there): 11 unless sent.
    med_type: Text = "11"


class Diagnosis(msgspec.Struct):
    diag_code: Annotated[str, msgspec.Meta(min_length=1, max_length=30)]
    diag_name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    maindiag_flag: Text | None = None


class RegisterInput(msgspec.Struct):
    data: Register
    diseinfo: Annotated[list[Diagnosis], msgspec.Meta(max_length=50)] | None = None


class Registered(msgspec.Struct):
    mdtrt_id: str
    psn_no: str
    ipt_otp_no: str


class RegisterOutput(msgspec.Struct):
    data: Registered


class VisitRef(msgspec.Struct):
    mdtrt_id: Id
    psn_no: Text | None = None
    ipt_otp_no: Text | None = None
    mdtrt_cert_type: CertType | None = None
    mdtrt_cert_no: Text | None = None


class VisitRefInput(msgspec.Struct):
    data: VisitRef


class Done(msgspec.Struct):
    """What 2202 and 2205 answer: the visit and its status now."""

    mdtrt_id: str
    status: str


class DoneOutput(msgspec.Struct):
    data: Done


# 2204 fee details, 2205 delete
class FeeDetail(msgspec.Struct):
    feedetl_sn: Annotated[str, msgspec.Meta(min_length=1, max_length=30)]
    mdtrt_id: Id
    med_list_codg: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    cnt: Yuan
    pric: Yuan
    det_item_fee_sumamt: Yuan | None = None
    medins_list_codg: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    medins_list_name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    psn_no: Text | None = None
    fee_ocur_time: Text | None = None
    bilg_dr_codg: Annotated[str, msgspec.Meta(min_length=1, max_length=30)] | None = None
    #: The hospital's own class (01 甲 A, 02 乙 B, 03 丙 C): used only without a catalogue.
    chrgitm_lv: Text | None = None
    mdtrt_cert_type: CertType | None = None
    mdtrt_cert_no: Text | None = None


class FeeInput(msgspec.Struct):
    feedetail: Annotated[list[FeeDetail], msgspec.Meta(min_length=1, max_length=500)]


class FeeResult(msgspec.Struct):
    feedetl_sn: str
    det_item_fee_sumamt: Decimal
    cnt: str
    pric: Decimal
    chrgitm_lv: str
    selfpay_prop: Decimal | None
    fulamt_ownpay_amt: Decimal
    overlmt_amt: Decimal
    preselfpay_amt: Decimal
    inscp_scp_amt: Decimal
    memo: str


class FeeOutput(msgspec.Struct):
    result: list[FeeResult]


class FeeDelete(msgspec.Struct):
    mdtrt_id: Id
    feedetl_sn: Annotated[str, msgspec.Meta(min_length=1, max_length=30)]
    psn_no: Text | None = None
    mdtrt_cert_type: CertType | None = None
    mdtrt_cert_no: Text | None = None


class FeeDeleteInput(msgspec.Struct):
    data: FeeDelete


# 2206 pre-settlement, 2207 settlement, 2208 its cancel
class Settle(msgspec.Struct):
    mdtrt_id: Id
    psn_no: Text | None = None
    mdtrt_cert_type: CertType | None = None
    mdtrt_cert_no: Text | None = None
    med_type: Text | None = None
    medfee_sumamt: Yuan | None = None
    insutype: Text | None = None
    #: "1": the personal account pays what it can.
    acct_used_flag: Text | None = None
    #: ecert's addition: "1" lets relatives' accounts pay too (家庭共济).
    acct_mulaid_flag: Text | None = None


class SettleInput(msgspec.Struct):
    data: Settle


class SetlInfo(msgspec.Struct):
    setl_id: str | None
    mdtrt_id: str
    psn_no: str
    setl_time: str | None
    med_type: str
    insutype: str
    medfee_sumamt: Decimal
    fulamt_ownpay_amt: Decimal
    overlmt_selfpay: Decimal
    preselfpay_amt: Decimal
    inscp_scp_amt: Decimal
    act_pay_dedc: Decimal
    hifp_pay: Decimal
    pool_prop_selfpay: Decimal
    cvlserv_pay: Decimal
    hifes_pay: Decimal
    hifmi_pay: Decimal
    hifob_pay: Decimal
    maf_pay: Decimal
    oth_pay: Decimal
    fund_pay_sumamt: Decimal
    psn_part_amt: Decimal
    acct_pay: Decimal
    acct_mulaid_pay: Decimal
    psn_cash_pay: Decimal
    hosp_part_amt: Decimal
    balc: Decimal | None
    clr_type: str
    clr_optins: str


class SetlDetail(msgspec.Struct):
    fund_pay_type: str
    inscp_scp_amt: Decimal
    crt_payb_lmt_amt: Decimal | None
    fund_payamt: Decimal
    setl_proc_info: str


class SettleOutput(msgspec.Struct):
    setlinfo: SetlInfo
    setldetail: list[SetlDetail]


class SettlementRef(msgspec.Struct):
    setl_id: Id
    mdtrt_id: Id | None = None
    psn_no: Text | None = None


class SettlementRefInput(msgspec.Struct):
    data: SettlementRef


class CancelInfo(msgspec.Struct):
    """2208: what went back, as negative amounts of the cancelled settlement."""

    setl_id: str
    init_setl_id: str
    mdtrt_id: str | None
    setl_time: str
    medfee_sumamt: Decimal
    fund_pay_sumamt: Decimal
    acct_pay: Decimal
    acct_mulaid_pay: Decimal
    psn_cash_pay: Decimal


class CancelOutput(msgspec.Struct):
    setlinfo: CancelInfo


# 3201 totals check, 3202 details
class Statement(msgspec.Struct):
    stmt_begndate: Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}")]
    stmt_enddate: Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}")] | None = None
    insutype: Annotated[str, msgspec.Meta(pattern=r"^\d{3}$")] | None = None
    clr_type: Text | None = None
    setl_optins: Text | None = None
    medfee_sumamt: Yuan | None = None
    fund_pay_sumamt: Yuan | None = None
    acct_pay: Yuan | None = None
    fixmedins_setl_cnt: int | str | None = None
    refd_setl_flag: Text | None = None


class StatementInput(msgspec.Struct):
    data: Statement


class StmtInfo(msgspec.Struct):
    setl_optins: str | None
    stmt_rslt: str
    stmt_rslt_dscr: str


class StatementOutput(msgspec.Struct):
    stmtinfo: StmtInfo


class DetailLine(msgspec.Struct):
    setl_id: str
    init_setl_id: str | None
    mdtrt_id: str | None
    psn_no: str
    setl_time: str
    med_type: str
    clr_type: str
    insutype: str
    #: "0" a settlement, "1" a cancel or refund of one.
    refd_setl_flag: str
    medfee_sumamt: Decimal
    fund_pay_sumamt: Decimal
    acct_pay: Decimal
    psn_cash_pay: Decimal


class DetailOutput(msgspec.Struct):
    detail: list[DetailLine]
