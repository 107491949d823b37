// The wall page (wall.html); a file of its own so the Content-Security-Policy can forbid inline scripts.
"use strict";
const incidents = new Map(), cameras = new Map(), seen = new Set();
let alerts = [], meta = null, me = null, firstSnapshot = true;
const filters = {scenario: document.getElementById("f-scenario"), grid: document.getElementById("f-grid"), state: document.getElementById("f-state")};
Object.values(filters).forEach(f => f.onchange = render);

function visible(i) {
  if (filters.scenario.value && i.scenario !== filters.scenario.value) return false;
  if (filters.grid.value && i.grid_id !== filters.grid.value) return false;
  if (filters.state.value === "open") return i.open;
  if (filters.state.value && i.state !== filters.state.value) return false;
  return true;
}
function card(i) {
  const left = timeLeft(i.deadline, i.open);
  const urgent = i.open && (i.escalated || i.overdue || left.late);
  const img = i.snapshot ? `<img loading="lazy" src="${esc(i.snapshot)}" alt="证据 evidence">` : `<div class="noimg">无快照 no snapshot</div>`;
  return `<article class="card${urgent ? " urgent" : ""}${seen.has(i.incident_id) ? "" : " new"}" data-id="${esc(i.incident_id)}" data-state="${esc(i.state)}">
    ${img}<div class="body">
    <div class="title">${esc(i.scenario_zh)} <span class="muted">${esc(i.scenario_en)}</span></div>
    ${i.plate ? `<div>车牌 Plate: <span class="plate">${esc(i.plate)}</span></div>` : ""}
    <div>${esc(i.camera_name)}</div><div class="muted">${esc(i.address)} · ${esc(i.grid_name)}</div>
    <div><span class="badge state">${esc(stateLabel(i.state))}</span>${i.escalated ? '<span class="badge escalated">升级 Escalated</span>' : ""}${i.overdue || (i.open && left.late) ? '<span class="badge overdue">超时 Overdue</span>' : ""}${i.first_offence ? '<span class="badge first">首违 First offence</span>' : ""}${i.recurrence_of ? '<span class="badge">回潮 Recurrence</span>' : ""}</div>
    <div class="muted">发现 Seen ${esc(localTime(i.first_seen))} · ×${i.detections}</div>
    <div>队员 Officer: <b>${esc(i.officer_name || "未派 unassigned")}</b></div>
    <div class="left${left.late ? " late" : ""}" data-deadline="${esc(i.deadline || "")}" data-open="${i.open}">${esc(left.text)}</div>
    <a class="export" href="/api/incidents/${esc(encodeURIComponent(i.incident_id))}/export.html" target="_blank" rel="noopener">案卷 Case file</a>
    ${me && me.role === "operator" && i.open ? `<button class="secondary reassign" data-id="${esc(i.incident_id)}">改派 Reassign</button>` : ""}
    </div></article>`;
}
// an alarm of a scenario under operator review (待审核): its evidence and, for operators, Confirm / Dismiss
function reviewCard(i) {
  const img = i.snapshot ? `<img loading="lazy" src="${esc(i.snapshot)}" alt="证据 evidence">` : `<div class="noimg">无快照 no snapshot</div>`;
  const id = esc(i.incident_id);
  return `<article class="card review${seen.has(i.incident_id) ? "" : " new"}" data-id="${id}" data-state="${esc(i.state)}">
    ${img}<div class="body">
    <div class="title">${esc(i.scenario_zh)} <span class="muted">${esc(i.scenario_en)}</span></div>
    <div>${esc(i.camera_name)}</div><div class="muted">${esc(i.address)} · ${esc(i.grid_name)}</div>
    <div><span class="badge state">${esc(stateLabel(i.state))}</span></div>
    <div class="muted">发现 Seen ${esc(localTime(i.first_seen))} · ×${i.detections}</div>
    ${me && me.role === "operator" ? `<div class="review-actions"><button class="confirm" data-id="${id}">确认立案 Confirm</button><button class="danger dismiss" data-id="${id}">驳回 Dismiss</button></div>` : ""}
    </div></article>`;
}
function render() {
  const matching = [...incidents.values()].filter(visible);
  const review = matching.filter(i => i.state === "AWAITING_REVIEW").sort((a, b) => (a.first_seen > b.first_seen ? 1 : -1));
  const rows = matching.filter(i => i.state !== "AWAITING_REVIEW").sort((a, b) =>
    (b.open - a.open) || ((b.escalated || b.overdue) - (a.escalated || a.overdue)) || (b.first_seen > a.first_seen ? 1 : -1));
  document.getElementById("review").hidden = review.length === 0;
  document.getElementById("review-count").textContent = review.length + " 条 alarms";
  document.getElementById("review-cards").innerHTML = review.map(reviewCard).join("");
  document.getElementById("cards").innerHTML = rows.map(card).join("") || '<p class="muted">暂无案件 No incidents</p>';
  matching.forEach(i => seen.add(i.incident_id));
  document.getElementById("count").textContent = rows.length + " 件 cases";
  document.querySelectorAll("button.reassign").forEach(b => b.onclick = () => openReassign(b.dataset.id));
  document.querySelectorAll("button.confirm").forEach(b => b.onclick = () => decide(b.dataset.id, "confirm", {}));
  document.querySelectorAll("button.dismiss").forEach(b => b.onclick = () => openDismiss(b.dataset.id));
  document.getElementById("cameras").innerHTML = [...cameras.values()].map(c =>
    `<li data-camera="${esc(c.camera_id)}" data-state="${esc(c.state)}"><span class="dot ${esc(c.state)}"></span>${esc(c.name)} <span class="muted">${esc({online: "在线 online", offline: "离线 offline"}[c.state] || "未知 unknown")}</span></li>`).join("");
  document.getElementById("alerts").innerHTML = alerts.slice(0, 30).map(a =>
    `<li class="alert-${esc(a.severity)}">${esc(localTime(a.at))} ${esc(a.message)}</li>`).join("");
}
function tick() {
  document.querySelectorAll(".left[data-deadline]").forEach(el => {
    const left = timeLeft(el.dataset.deadline, el.dataset.open === "true");
    el.textContent = left.text; el.classList.toggle("late", left.late);
  });
}
function openReassign(id) {
  const i = incidents.get(id);
  document.getElementById("ra-case").textContent = i.scenario_zh + " · " + i.camera_name + (i.plate ? " · " + i.plate : "");
  document.getElementById("ra-officer").innerHTML = meta.officers.filter(o => o.id !== i.officer_id).map(o =>
    `<option value="${esc(o.id)}" ${o.grid === i.grid_id ? "" : ""}>${esc(o.name)} (${esc(o.grid)})</option>`).join("");
  const dialog = document.getElementById("reassign");
  dialog.onclose = async () => {
    if (dialog.returnValue !== "ok") return;
    const box = document.getElementById("result");
    box.hidden = false; box.className = "result pending"; box.textContent = "… 发送中 sending";
    const result = await postJSON(`/api/incidents/${encodeURIComponent(id)}/reassign`,
      {target_officer: document.getElementById("ra-officer").value, reason: document.getElementById("ra-reason").value});
    const shown = outcomeText(result); box.className = "result " + shown.cls; box.textContent = shown.text;
  };
  dialog.showModal();
}
async function decide(id, action, body) {
  document.querySelectorAll(`article[data-id="${CSS.escape(id)}"] .review-actions button`).forEach(b => b.disabled = true);
  const box = document.getElementById("result");
  box.hidden = false; box.className = "result pending"; box.textContent = "… 发送中 sending";
  const result = await postJSON(`/api/incidents/${encodeURIComponent(id)}/${action}`, body);
  const shown = outcomeText(result); box.className = "result " + shown.cls; box.textContent = shown.text;
  if (!result.ok) document.querySelectorAll(`article[data-id="${CSS.escape(id)}"] .review-actions button`).forEach(b => b.disabled = false);
}
function openDismiss(id) {
  const i = incidents.get(id);
  document.getElementById("dm-case").textContent = i.scenario_zh + " · " + i.camera_name;
  const reason = document.getElementById("dm-reason");
  reason.value = "";
  const dialog = document.getElementById("dismiss");
  dialog.onclose = () => { if (dialog.returnValue === "ok" && reason.value.trim()) decide(id, "dismiss", {reason: reason.value.trim()}); };
  dialog.showModal();
}
function connect() {
  const source = new EventSource("/api/live");
  const conn = document.getElementById("conn");
  source.addEventListener("snapshot", e => {
    const data = JSON.parse(e.data);
    incidents.clear(); data.incidents.forEach(i => { incidents.set(i.incident_id, i); if (firstSnapshot) seen.add(i.incident_id); });
    firstSnapshot = false;
    cameras.clear(); data.cameras.forEach(c => cameras.set(c.camera_id, c));
    alerts = data.alerts; conn.textContent = "实时 live ●"; render();
  });
  source.addEventListener("incident", e => { const i = JSON.parse(e.data); incidents.set(i.incident_id, i); render(); });
  source.addEventListener("camera", e => { const c = JSON.parse(e.data); cameras.set(c.camera_id, c); render(); });
  source.addEventListener("alert", e => { alerts.unshift(JSON.parse(e.data)); render(); });
  source.onerror = () => { conn.textContent = "重连中 reconnecting…"; };
}
(async () => {
  me = await whoami(["operator", "supervisor"]);
  meta = (await api("/api/meta")).body;
  filters.scenario.innerHTML += meta.scenarios.map(s => `<option value="${esc(s.id)}">${esc(s.label_zh)} ${esc(s.label_en)}</option>`).join("");
  filters.grid.innerHTML += meta.grids.map(g => `<option value="${esc(g.id)}">${esc(g.name)}</option>`).join("");
  filters.state.innerHTML += Object.keys(STATES).map(s => `<option value="${s}">${esc(STATES[s])}</option>`).join("");
  connect(); setInterval(tick, 1000);
})();
