// The agency counter. The staff session is an HttpOnly cookie the page never sees; every call
// sends the CSRF header. After a search the page holds only the opaque person number.
"use strict";
const CSRF = { "X-ECert-CSRF": "1" };
const $ = (id) => document.getElementById(id);
let personNo = null;
// What an audit row's action means, for the person at the counter asking who looked at them.
const ACTIONS = {
  "card.issue": "发卡", "card.report": "电话挂失", "card.formal_report": "正式挂失", "card.cancel_report": "解挂",
  "card.replace": "补换卡", "card.errata": "信息更正", "card.read": "查看社保卡", "card.check": "终端验卡",
  "ecert.suspend": "暂停凭证", "ecert.resume": "恢复凭证", "agency.person.find": "按身份证号查询",
  "agency.person.read": "查看档案", "agency.audit.read": "查看审计记录", "lookup.enrolment": "查看参保",
  "lookup.contributions": "查看缴费", "lookup.account": "查看余额", "lookup.transactions": "查看账户流水",
  "lookup.benefits": "查看待遇", "family.consent": "亲情账户授权", "family.revoke": "解除亲情账户",
};

const api = (method, path, body) => ecert.call(method, path, body, CSRF);
const when = (iso) => (iso ? new Date(iso).toLocaleString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false }) : "—");
const refused = (error) => (error && error.code === "forbidden" ? "无权限（403）：" : "");
function fail(id, error) { $(id).textContent = error ? `${refused(error)}${error.code || ""} ${error.message}` : ""; }

async function signIn() {
  try {
    const body = { login: $("login").value.trim(), password: $("password").value };
    if ($("totp").value) body.totp = $("totp").value.trim();
    const me = await api("POST", "/v1/agency/session", body);
    $("password").value = "";
    enter(me);
  } catch (error) { fail("signin-error", error); }
}
function enter(me) {
  $("who").textContent = `${me.name}（${me.login} · ${{ clerk: "柜员", supervisor: "主管", operator: "系统管理员" }[me.role] || me.role}）`;
  ecert.show("signin", false); ecert.show("console", true); ecert.show("signout-button", true);
  $("recon-date").value = new Date().toLocaleDateString("sv-SE", { timeZone: "Asia/Shanghai" });
}
async function signOut() { await api("DELETE", "/v1/agency/session").catch(() => {}); location.reload(); }

async function search() {
  const input = $("id-number");
  try {
    const person = await api("POST", "/v1/agency/persons/search", { id_number: input.value.trim() });
    input.value = ""; // the full number leaves the screen once found
    input.placeholder = person.id_number;
    personNo = person.person_no;
    fail("search-error", null);
    await loadPerson();
  } catch (error) { fail("search-error", error); }
}
async function loadPerson() {
  const file = await api("GET", `/v1/agency/persons/${personNo}`);
  const p = file.person;
  $("person-summary").innerHTML = [
    ["姓名", p.name], ["身份证号", p.id_number], ["个人编号", p.person_no],
    ["性别", p.gender === "F" ? "女" : p.gender === "M" ? "男" : "—"], ["出生日期", p.birth_date || "—"],
    ["参保地", p.area], ["人员类别", ecert.word("category", p.category)],
  ].map(([k, v]) => `<dt>${k}</dt><dd id="summary-${k}">${ecert.esc(v)}</dd>`).join("");
  $("ecerts").innerHTML = file.ecerts.map((e) =>
    `<li>尾号 ${ecert.esc(e.number)} · ${ecert.esc(e.channel)} · <strong>${ecert.word("ecert", e.status)}</strong> · ${ecert.esc(e.device_name || "")}</li>`).join("")
    + file.suspensions.map((s) => `<li class="bad">暂停中：${ecert.esc(s.reason)}（${ecert.esc(s.imposed_by)}，${when(s.imposed_at)}）</li>`).join("");
  $("family").innerHTML = file.family.map((f) =>
    `<li>${f.side === "holder" ? "可代为出示" : "由其代为出示"}：${ecert.esc(f.other.name)} ${ecert.esc(f.other.id_number)} · ${ecert.word("relation", f.relation)} · ${ecert.esc(f.status)}</li>`).join("") || "<li>无</li>";
  for (const id of ["person", "card-box", "ecert-box", "record-box", "audit-box"]) ecert.show(id, true);
  await Promise.all([loadCard(), loadRecord(), loadAudit()]);
}
async function loadCard() {
  try {
    const card = await api("GET", `/v1/agency/persons/${personNo}/card`);
    $("card-status").textContent = `${ecert.word("card", card.status)}（${card.number}）`;
    $("card-restores").textContent = card.restores_at ? `未正式挂失将于 ${when(card.restores_at)} 自动解挂` : "";
    $("card-history").innerHTML = card.history.map((h) =>
      `<tr><td>${when(h.at)}</td><td>${ecert.word("cardEvent", h.action)}</td><td>${ecert.esc(h.card)}</td></tr>`).join("");
  } catch (error) {
    $("card-status").textContent = error.code === "no_card" || error.code === "not_found" ? "未发卡" : (error.code || "—");
    $("card-history").innerHTML = "";
  }
}
async function loadRecord() {
  const [enrolment, account, contributions] = await Promise.all([
    api("GET", `/v1/agency/persons/${personNo}/enrolment`),
    api("GET", `/v1/agency/persons/${personNo}/account`),
    api("GET", `/v1/agency/persons/${personNo}/contributions`),
  ]);
  $("enrolments").innerHTML = enrolment.enrolments.map((e) =>
    `<li>${ecert.esc(ecert.insurance(e.insurance_type))} · ${ecert.word("enrolment", e.status)} · 自 ${ecert.esc(e.start_date)}${e.employer ? " · " + ecert.esc(e.employer) : ""}</li>`).join("");
  $("balance").textContent = account.balance === null ? "无个人账户" : ecert.yuan(account.balance);
  const page = account.balance === null ? { items: [] } : await api("GET", `/v1/agency/persons/${personNo}/transactions`);
  $("transactions").innerHTML = page.items.slice(0, 24).map((t) =>
    `<tr><td>${ecert.month(t.month)}</td><td>${ecert.word("movement", t.kind)}</td><td class="num">${ecert.yuan(t.amount)}</td><td class="num">${ecert.yuan(t.balance_after)}</td></tr>`).join("");
  $("contributions").innerHTML = contributions.items.slice(0, 24).map((c) =>
    `<tr><td>${ecert.month(c.month)}</td><td class="${c.status === "arrears" ? "bad" : ""}">${ecert.word("contribution", c.status)}</td><td class="num">${ecert.yuan(c.employer_amount)}</td><td class="num">${ecert.yuan(c.employee_amount)}</td><td class="num">${ecert.yuan(c.account_credit)}</td></tr>`).join("");
}
async function loadAudit() {
  try {
    const trail = await api("GET", `/v1/agency/persons/${personNo}/audit`);
    $("audit-verdict").innerHTML = trail.intact ? '<span class="ok">审计链校验通过 · chain intact</span>' : '<span class="bad">审计链校验失败 · chain broken</span>';
    $("audit-rows").innerHTML = trail.rows.slice(0, 40).map((r) =>
      `<tr><td>${when(r.at)}</td><td title="${ecert.esc(r.actor)}">${ecert.esc(r.opter_name || r.actor)}</td><td>${ecert.esc(ACTIONS[r.action] ? `${ACTIONS[r.action]} ${r.action}` : r.action)}</td><td>${ecert.esc(r.outcome)}</td><td>${r.intact ? "✔" : "✘"}</td></tr>`).join("");
  } catch (error) { $("audit-verdict").textContent = `${refused(error)}${error.message}`; }
}
async function cardAction(path, extra) {
  try {
    await api("POST", `/v1/agency/cards/${path}`, Object.assign({ person_no: personNo }, extra || {}));
    fail("card-error", null);
  } catch (error) { fail("card-error", error); }
  await Promise.all([loadCard(), loadAudit()]);
}
async function ecertAction(path) {
  try {
    const reply = await api("POST", `/v1/agency/ecerts/${path}`, { person_no: personNo, reason: $("reason").value || "hotline" });
    $("ecert-error").textContent = `已处理 ${reply.affected} 张`;
  } catch (error) { fail("ecert-error", error); }
  await loadPerson();
}
function errata() {
  const extra = {};
  if ($("errata-name").value.trim()) extra.name = $("errata-name").value.trim();
  if ($("errata-id").value.trim()) extra.new_id_number = $("errata-id").value.trim();
  $("errata-id").value = "";
  return cardAction("errata", extra);
}
async function reconcile() {
  try {
    const day = await api("GET", `/v1/agency/reconciliation?institution=${encodeURIComponent($("recon-code").value.trim())}&date=${$("recon-date").value}`);
    const row = (label, t) => `<dt>${label}</dt><dd>${t.count} 笔 · 总额 ${ecert.yuan(t.total)} · 统筹 ${ecert.yuan(t.fund_paid)} · 账户 ${ecert.yuan(t.account_paid)} · 现金 ${ecert.yuan(t.cash_paid)}</dd>`;
    $("recon").innerHTML = row("结算", day.settlements) + row("冲正", day.reversals) + row("净额", day.net);
    fail("recon-error", null);
  } catch (error) { fail("recon-error", error); }
}
function upload() {
  const file = $("import-file").files[0];
  if (!file) return;
  const request = new XMLHttpRequest();
  request.open("POST", `/v1/agency/imports/${$("import-kind").value}`);
  request.setRequestHeader("X-ECert-CSRF", "1");
  request.setRequestHeader("Content-Type", file.name.endsWith(".csv") ? "text/csv" : "application/jsonl");
  request.upload.onprogress = (e) => { if (e.lengthComputable) $("import-progress").value = Math.round(100 * e.loaded / e.total); };
  request.onload = () => {
    const data = request.responseText ? JSON.parse(request.responseText) : {};
    if (request.status >= 400) { fail("import-error", Object.assign(new Error(data.detail || data.title), { code: data.code })); return; }
    $("import-progress").value = 100;
    $("import-result").textContent = `成功 ${data.accepted} 行，拒绝 ${data.rejected} 行`;
    $("import-rejects").innerHTML = data.rejects.map((r) => `<tr><td>第 ${r.line} 行</td><td>${ecert.esc(r.reason)}</td></tr>`).join("");
    fail("import-error", null);
  };
  request.send(file);
}
async function rotateKeys() {
  try {
    const reply = await api("POST", "/v1/agency/keys/rotate", { purpose: "qr" });
    $("keys-result").textContent = `当前密钥 ${reply.active}`;
    fail("keys-error", null);
  } catch (error) { fail("keys-error", error); }
}

$("signin-button").addEventListener("click", signIn);
$("password").addEventListener("keydown", (e) => { if (e.key === "Enter") signIn(); });
$("signout-button").addEventListener("click", signOut);
$("search-button").addEventListener("click", search);
$("id-number").addEventListener("keydown", (e) => { if (e.key === "Enter") search(); });
$("report-button").addEventListener("click", () => cardAction("loss-reports"));
$("formal-button").addEventListener("click", () => cardAction("loss-reports/formal"));
$("cancel-button").addEventListener("click", () => cardAction("loss-reports/cancel"));
$("replace-lost").addEventListener("click", () => cardAction("replacements", { reason: "lost" }));
$("replace-damaged").addEventListener("click", () => cardAction("replacements", { reason: "damaged" }));
$("issue-button").addEventListener("click", () => cardAction("issue"));
$("errata-button").addEventListener("click", errata);
$("suspend-button").addEventListener("click", () => ecertAction("suspend"));
$("resume-button").addEventListener("click", () => ecertAction("resume"));
$("audit-button").addEventListener("click", loadAudit);
$("recon-button").addEventListener("click", reconcile);
$("import-button").addEventListener("click", upload);
$("keys-button").addEventListener("click", rotateKeys);
// Still signed in (the cookie outlives a reload): go straight to the counter.
api("GET", "/v1/agency/session").then(enter).catch(() => {});
