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
  esc(text) { const d = document.createElement("div"); d.textContent = String(text ?? ""); return d.innerHTML; },
};
if ("serviceWorker" in navigator) {
  // Static assets stay available offline; API calls always go to the network.
  navigator.serviceWorker.register("sw.js").catch(() => {});
}
