// The officer page (officer.html); a file of its own so the Content-Security-Policy can forbid inline scripts.
"use strict";
let meta = null, current = null;
function taskCard(t) {
  const left = timeLeft(t.deadline, t.active);
  const img = t.snapshot ? `<img loading="lazy" src="${esc(t.snapshot)}" alt="证据 evidence">` : `<div class="noimg">无快照 no snapshot</div>`;
  return `<article class="card${t.active && (t.overdue || t.escalated || left.late) ? " urgent" : ""}" data-task="${esc(t.task_id)}">
    <a href="#task=${encodeURIComponent(t.task_id)}" style="color:inherit;text-decoration:none">${img}
    <div class="body"><div class="title">${esc(t.scenario_zh)} <span class="muted">${esc(t.scenario_en)}</span></div>
    ${t.plate ? `<div>车牌 Plate: <span class="plate">${esc(t.plate)}</span></div>` : ""}
    <div>${esc(t.address)}</div>
    <div><span class="badge state">${esc(stateLabel(t.state))}</span>${t.active ? "" : '<span class="badge closed">' + esc(t.task_status === "superseded" ? "已改派 Reassigned" : "已完成 Done") + "</span>"}${t.first_offence ? '<span class="badge first">首违不罚 First offence</span>' : ""}${t.overdue ? '<span class="badge overdue">超时 Overdue</span>' : ""}</div>
    <div class="muted">派遣 Assigned ${esc(localTime(t.assigned_at))} · 优先级 P${t.priority ?? "-"}</div>
    <div class="left${left.late ? " late" : ""}">${esc(left.text)}</div></div></a></article>`;
}
async function loadList() {
  const result = await api("/api/my/tasks");
  document.getElementById("tasks").innerHTML = result.body.map(taskCard).join("") || '<p class="muted">暂无任务 No tasks</p>';
}
async function loadDetail(taskId) {
  const result = await api("/api/tasks/" + encodeURIComponent(taskId));
  if (!result.ok) { document.getElementById("detail").textContent = result.body.error || "error"; return; }
  const t = current = result.body;
  const pictures = t.evidence.map(e => `<figure style="margin:0"><img src="${esc(e.url)}" alt="${esc(e.kind)}" style="width:100%;border-radius:6px"><figcaption class="muted">${esc(e.kind)}</figcaption></figure>`).join("");
  const geo = t.lat != null ? `<a href="geo:${t.lat},${t.lon}">${t.lat.toFixed(5)}, ${t.lon.toFixed(5)}</a>` : "";
  const left = timeLeft(t.deadline, t.active);
  document.getElementById("detail").innerHTML = `
    <h2>${esc(t.scenario_zh)} <span class="muted">${esc(t.scenario_en)}</span></h2>
    <div><span class="badge state" id="state">${esc(stateLabel(t.state))}</span>${t.first_offence ? '<span class="badge first">首违不罚 First offence: education/warning</span>' : ""}</div>
    ${t.plate ? `<p>车牌 Plate: <span class="plate" id="plate">${esc(t.plate)}</span></p>` : ""}
    <p>位置 Location: ${esc(t.address)}<br><span class="muted">${esc(t.camera_name)} · ${esc(t.grid_name)} · ${geo}</span></p>
    <p class="muted">派遣 Assigned ${esc(localTime(t.assigned_at))} · 接单期限 Accept by ${esc(localTime(t.accept_by))} · 处置期限 Deadline ${esc(localTime(t.deadline))}
    <span class="left${left.late ? " late" : ""}">${esc(left.text)}</span></p>
    <div class="evidence" style="display:grid;gap:.5em">${pictures || '<div class="noimg">无证据 no evidence</div>'}</div>`;
  document.getElementById("history").innerHTML = t.history.map(h =>
    `<li>${esc(localTime(h.at))} · ${esc(h.action)} ${esc(h.from_state || "")} → ${esc(h.to_state || "")} ${h.applied ? "" : "✘ " + esc(h.reason)} <span class="muted">${esc(h.actor)}</span></li>`).join("") || '<li class="muted">-</li>';
  document.getElementById("photos").innerHTML = t.photos.map(p =>
    `<a href="${esc(p.url)}" target="_blank"><img src="${esc(p.url)}" alt="现场照片 photo" style="width:96px;height:72px;object-fit:cover;border-radius:4px"></a>`).join(" ");
  document.getElementById("action-panel").hidden = !t.active;
  // the usual next step stands out; the others stay available and the case processor has the last word
  const next = {DISPATCHED: "do-accept", ESCALATED: "do-accept", ACCEPTED: "do-arrive", ARRIVED: "do-resolve", REOPENED: "do-resolve"}[t.state];
  ["do-accept", "do-arrive", "do-resolve"].forEach(id => document.getElementById(id).classList.toggle("secondary", !!next && id !== next));
  document.getElementById("waiting").hidden = t.state !== "RESOLVED";
}
function show() {
  const match = location.hash.match(/^#task=(.+)$/);
  document.getElementById("list-view").hidden = !!match;
  document.getElementById("detail-view").hidden = !match;
  if (match) { document.getElementById("result").hidden = true; loadDetail(decodeURIComponent(match[1])); } else loadList();
}
function showOutcome(result) {
  const box = document.getElementById("result"), shown = outcomeText(result);
  box.hidden = false; box.className = "result " + shown.cls; box.textContent = shown.text;
  return result.body && result.body.status;
}
async function act(action, extra = {}) {
  const buttons = document.querySelectorAll("#action-panel button");
  buttons.forEach(b => b.disabled = true);
  const box = document.getElementById("result");
  box.hidden = false; box.className = "result pending"; box.textContent = "… 发送中 sending";
  try {
    const result = await postJSON(`/api/tasks/${encodeURIComponent(current.task_id)}/actions`, {action, ...extra});
    let status = showOutcome(result);
    for (let i = 0; status === "pending" && i < 30; i++) {
      await new Promise(r => setTimeout(r, 1000));
      const later = await api("/api/feedback/" + result.body.feedback_id);
      if (later.body.status !== "pending") status = showOutcome({status: 200, body: {...later.body, action}});
    }
    await loadDetail(current.task_id);
  } finally { buttons.forEach(b => b.disabled = false); }
}
async function uploadPhoto() {
  const file = document.getElementById("photo").files[0];
  if (!file) return [];
  if (!meta.upload_types.includes(file.type)) throw new Error("照片格式不支持 photo type not allowed: " + file.type);
  if (file.size > meta.upload_max_mb * 1048576) throw new Error("照片太大 photo larger than " + meta.upload_max_mb + " MB");
  const result = await api("/api/uploads", {method: "POST", headers: {"Content-Type": file.type}, body: file});
  if (!result.ok) throw new Error(result.body.error || "upload failed");
  return [result.body.sha256];
}
document.getElementById("do-accept").onclick = () => act("accept");
document.getElementById("do-arrive").onclick = () => act("arrive");
document.getElementById("do-resolve").onclick = async () => {
  try { act("resolve", {note: document.getElementById("note").value, evidence: await uploadPhoto()}); }
  catch (error) { showOutcome({status: 0, body: {error: error.message}}); }
};
document.getElementById("do-reject").onclick = () => act("reject", {reason: document.getElementById("reject-reason").value, note: document.getElementById("note").value});
document.getElementById("back").onclick = (e) => { e.preventDefault(); location.hash = ""; };
window.onhashchange = show;
(async () => {
  await whoami(["officer"]);
  meta = (await api("/api/meta")).body;
  document.getElementById("reject-reason").innerHTML = meta.reject_reasons.map(r => `<option value="${esc(r.code)}">${esc(r.label)}</option>`).join("");
  show();
  setInterval(() => { if (!location.hash) loadList(); }, 5000);
})();
