// Shared helpers for the nonsite pages: API calls with the session cookie, labels, time.
"use strict";
const STATES = {
  DETECTED: "发现 Detected", DISPATCHED: "已派遣 Dispatched", ACCEPTED: "已接单 Accepted", ARRIVED: "已到场 Arrived",
  RESOLVED: "已处置 Resolved", VERIFIED: "已核查 Verified", CLOSED: "已结案 Closed", REJECTED: "误报 Rejected",
  REOPENED: "返工 Reopened", SELF_CORRECTED: "自行整改 Self-corrected", ESCALATED: "已升级 Escalated",
  QUEUED: "待派 Queued", WAITING: "待派 Waiting", AWAITING_REVIEW: "待审核 Awaiting review",
  DISMISSED: "审核驳回 Dismissed in review",
};
const CLOSED = new Set(["CLOSED", "VERIFIED", "SELF_CORRECTED", "REJECTED", "DISMISSED"]);
function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function stateLabel(state) { return STATES[state] || state || "-"; }
function localTime(iso) {
  if (!iso) return "-";
  const d = new Date(iso);
  return d.toLocaleString("zh-CN", {month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
}
function timeLeft(deadline, open) {
  if (!deadline || !open) return {text: "-", late: false};
  const seconds = Math.round((new Date(deadline) - Date.now()) / 1000);
  const abs = Math.abs(seconds), h = Math.floor(abs / 3600), m = Math.floor(abs % 3600 / 60), s = abs % 60;
  const text = (h ? h + "h " : "") + m + "m " + (h ? "" : s + "s");
  return seconds >= 0 ? {text: "剩 " + text + " left", late: false} : {text: "超时 " + text + " overdue", late: true};
}
async function api(path, options = {}) {
  const response = await fetch(path, {credentials: "same-origin", ...options});
  if (response.status === 401 && !path.endsWith("/login")) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); throw new Error("login needed"); }
  let body = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) body = await response.json();
  else body = await response.text();
  return {status: response.status, ok: response.ok, body};
}
function postJSON(path, data) {
  return api(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(data)});
}
async function whoami(roles) {
  const me = await api("/api/me");
  if (roles && !roles.includes(me.body.role)) { location.href = "/"; throw new Error("wrong role"); }
  const slot = document.getElementById("who");
  if (slot) slot.textContent = me.body.name + " · " + me.body.role;
  const out = document.getElementById("logout");
  if (out) out.onclick = async () => { await api("/api/logout", {method: "POST"}); location.href = "/login"; };
  return me.body;
}
function outcomeText(result) {
  const r = result.body || {};
  if (r.status === "applied") return {cls: "applied", text: "✔ 已受理 Accepted" + (r.to_state ? " → " + stateLabel(r.to_state) : "")};
  if (r.status === "refused") return {cls: "refused", text: "✘ 被拒绝 Refused: " + (r.reason || "")};
  if (r.status === "pending") return {cls: "pending", text: "… 已发送，等待处理 Sent, waiting for the case processor"};
  return {cls: "refused", text: "✘ " + (r.error || ("HTTP " + result.status))};
}
