// Shared helpers for the two demo pages: API calls with problem+json errors, money, i18n text.
"use strict";
const ecert = {
  token: null,
  async call(method, path, body, extraHeaders) {
    const headers = Object.assign({}, extraHeaders || {});
    if (ecert.token) headers["Authorization"] = "Bearer " + ecert.token;
    let payload;
    if (body instanceof Blob || typeof body === "string") { payload = body; }
    else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
    const response = await fetch(path, { method, headers, body: payload });
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (!response.ok) {
      const error = new Error((data && (data.detail || data.title)) || response.statusText);
      error.code = data && data.code;
      throw error;
    }
    return data;
  },
  yuan(fen) { return (fen / 100).toFixed(2); },
  show(id, on) { document.getElementById(id).classList.toggle("hidden", !on); },
  alert(id, error) { document.getElementById(id).textContent = error ? `${error.code || ""} ${error.message}` : ""; },
  // Words for codes, as a counter clerk or an insured person reads them (docs/agency.md).
  labels: {
    insurance: { "310": "职工基本医疗保险", "320": "公务员医疗补助", "330": "大额医疗费用补助", "340": "离休人员医疗保障", "390": "城乡居民基本医疗保险", "392": "城乡居民大病医疗保险", "510": "生育保险" },
    enrolment: { active: "正常参保", paused: "暂停参保", terminated: "终止参保" },
    category: { employee: "在职职工", retired: "退休人员", resident: "城乡居民" },
    ecert: { active: "正常", suspended: "已暂停", revoked: "已注销" },
    card: { active: "正常", provisionally_reported: "临时挂失", formally_reported: "正式挂失（冻结）", replaced: "已补换" },
    cardEvent: { issued: "发卡", provisional_report: "临时挂失", cancel_report: "解挂", lapsed: "到期自动解挂", formal_report: "正式挂失", replaced_lost: "挂失补卡", replaced_damaged: "损坏换卡", replaced_errata: "更正换卡" },
    movement: { credit: "月度划入", debit: "结算支付", reversal: "退款", family: "家庭共济" },
    contribution: { paid: "已缴", arrears: "欠缴", back_paid: "补缴" },
    relation: { spouse: "配偶", parent: "父母", child: "子女" },
  },
  word(table, code) { const w = ecert.labels[table][code]; return w ? w : String(code ?? "—"); },
  insurance(code) { const w = ecert.labels.insurance[code]; return w ? `${w} ${code}` : String(code); },
  month(yyyymm) { return yyyymm ? `${yyyymm.slice(0, 4)}年${Number(yyyymm.slice(-2))}月` : "—"; },
  esc(text) { const d = document.createElement("div"); d.textContent = String(text ?? ""); return d.innerHTML; },
};
if ("serviceWorker" in navigator) {
  // Static assets stay available offline; API calls always go to the network.
  navigator.serviceWorker.register("sw.js").catch(() => {});
}
