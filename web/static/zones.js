// The zone editor (zones.html); a file of its own so the Content-Security-Policy can forbid inline scripts.
// Shapes are a camera's zones and privacy zones in normalised image coordinates (0..1, x right, y down), the
// form cameras.yaml holds; kind "privacy" is a privacy zone (saved under privacy_zones, named, no id).
"use strict";
const PRIVACY = "privacy";
const COLOURS = {sidewalk: "#2c6db3", no_vending: "#d35400", storefront: "#8e44ad", no_piling: "#7f5a2a",
  road: "#7f8c8d", no_drying: "#16a085", no_ads: "#c0392b", plaza: "#27ae60", privacy: "#000000"};
const BLANK = {w: 1600, h: 900};  // the view drawn on when the camera has no snapshot yet
const $ = id => document.getElementById(id);
const svg = $("overlay"), img = $("snapshot");
let view = null, shapes = [], selected = -1, drawing = null, drag = null, dirty = false, size = BLANK;

function kindInfo(kind) { return (view.kinds || []).find(k => k.kind === kind) || {kind, label: kind, scenarios: []}; }
function scenarioText(s) { return `${s.label_zh} ${s.label_en}${s.enabled ? "" : " (已停用 disabled)"}`; }
function enables(shape) {
  if (shape.kind === PRIVACY) return "检测前涂黑，不检测 Blacked out before anything looks at it";
  const scenarios = kindInfo(shape.kind).scenarios;
  return scenarios.length ? "启用 Enables: " + scenarios.map(scenarioText).join("; ") : "无场景使用此类型 No scenario uses this kind";
}
function label(shape) { return shape.kind === PRIVACY ? shape.name : shape.id; }
function round(v) { return Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000; }
function nextId() {
  for (let n = shapes.length + 1; ; n++) if (!shapes.some(s => s.id === "z-" + n)) return "z-" + n;
}
function markDirty() { dirty = true; $("dirty").hidden = false; }
function say(cls, text) { const r = $("result"); r.className = "result " + cls; r.textContent = text; r.hidden = !text; }

// ------------------------------------------------------------------ drawing the shapes on the picture
function px(point) { return `${point[0] * size.w},${point[1] * size.h}`; }
function handleRadius() { return 7 * size.w / Math.max(1, svg.getBoundingClientRect().width); }
function centre(polygon) {
  const n = polygon.length;
  return [polygon.reduce((a, p) => a + p[0], 0) / n, polygon.reduce((a, p) => a + p[1], 0) / n];
}
function shapeSvg(shape, i) {
  const colour = COLOURS[shape.kind] || "#555", [cx, cy] = centre(shape.polygon), r = handleRadius();
  let out = `<polygon class="zone${i === selected ? " selected" : ""}" data-i="${i}" data-kind="${esc(shape.kind)}" points="${shape.polygon.map(px).join(" ")}" fill="${colour}" fill-opacity="${shape.kind === PRIVACY ? 0.75 : 0.28}" stroke="${colour}"/>`;
  out += `<text x="${cx * size.w}" y="${cy * size.h}" font-size="${r * 2.4}" class="zone-label">${esc(label(shape) || "")} · ${esc(shape.kind)}</text>`;
  if (i !== selected) return out;
  shape.polygon.forEach((p, k) => {
    const q = shape.polygon[(k + 1) % shape.polygon.length];
    out += `<circle class="mid" data-i="${i}" data-p="${k}" cx="${(p[0] + q[0]) / 2 * size.w}" cy="${(p[1] + q[1]) / 2 * size.h}" r="${r * 0.6}"/>`;
  });
  return out + shape.polygon.map((p, k) => `<circle class="handle" data-i="${i}" data-p="${k}" cx="${p[0] * size.w}" cy="${p[1] * size.h}" r="${r}"/>`).join("");
}
function drawingSvg() {
  if (!drawing) return "";
  const r = handleRadius();
  return `<polyline class="drawing" points="${drawing.map(px).join(" ")}"/>` +
    drawing.map((p, k) => `<circle class="handle${k === 0 ? " first" : ""}" cx="${p[0] * size.w}" cy="${p[1] * size.h}" r="${r}"/>`).join("");
}
function renderCanvas() {
  svg.setAttribute("viewBox", `0 0 ${size.w} ${size.h}`);
  svg.innerHTML = shapes.map(shapeSvg).join("") + drawingSvg();
}

// ------------------------------------------------------------------ the list, the preview
function kindOptions(current) {
  return view.kinds.map(k => `<option value="${esc(k.kind)}"${k.kind === current ? " selected" : ""}>${esc(k.label)}${k.scenarios.length || k.kind === PRIVACY ? "" : " (无场景 no scenario)"}</option>`).join("");
}
function renderList() {
  $("zones").innerHTML = shapes.map((s, i) => `<li data-index="${i}" data-zone="${esc(label(s))}" class="zone-row${i === selected ? " selected" : ""}">
    <div class="zone-fields"><select class="kind" aria-label="类型 kind">${kindOptions(s.kind)}</select>
    <input class="name" value="${esc(label(s) || "")}" maxlength="64" aria-label="${s.kind === PRIVACY ? "名称 name" : "编号 id"}" placeholder="${s.kind === PRIVACY ? "名称 name" : "编号 id"}">
    <button class="danger delete" title="删除区域 delete zone">删除 Delete</button></div>
    <div class="muted enables">${esc(enables(s))}</div></li>`).join("") || '<li class="muted">无区域 No zones</li>';
  $("zones").querySelectorAll("li[data-index]").forEach(li => {
    const i = Number(li.dataset.index);
    li.querySelector(".kind").onchange = e => setKind(i, e.target.value);
    li.querySelector(".name").oninput = e => { shapes[i][shapes[i].kind === PRIVACY ? "name" : "id"] = e.target.value.trim(); li.dataset.zone = e.target.value.trim(); markDirty(); renderCanvas(); renderPreview(); };
    li.querySelector(".delete").onclick = () => { shapes.splice(i, 1); selected = -1; markDirty(); render(); };
    li.onclick = e => { if (e.target.tagName !== "BUTTON" && selected !== i) { selected = i; renderCanvas(); markSelected(); } };
  });
  renderPreview();
}
function markSelected() {
  $("zones").querySelectorAll("li[data-index]").forEach(li => li.classList.toggle("selected", Number(li.dataset.index) === selected));
}
function setKind(i, kind) {
  const shape = shapes[i];
  if (kind === PRIVACY && shape.kind !== PRIVACY) shape.name = shape.name || shape.id || "";
  if (kind !== PRIVACY && shape.kind === PRIVACY) shape.id = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(shape.name || "") ? shape.name : nextId();
  shape.kind = kind;
  markDirty();
  render();
}
function renderPreview() {
  const found = new Map();  // scenario id -> {scenario, zones}
  shapes.filter(s => s.kind !== PRIVACY).forEach(s => kindInfo(s.kind).scenarios.forEach(sc => {
    if (!found.has(sc.id)) found.set(sc.id, {scenario: sc, zones: []});
    found.get(sc.id).zones.push(s.id);
  }));
  const rows = [...found.values()].map(f => `<li data-scenario="${esc(f.scenario.id)}">${esc(scenarioText(f.scenario))} <span class="muted">← ${esc(f.zones.join(", "))}</span></li>`);
  rows.push(...(view.anywhere || []).map(sc => `<li data-scenario="${esc(sc.id)}">${esc(scenarioText(sc))} <span class="muted">← 全画面 whole frame</span></li>`));
  rows.push(...(view.unwatched || []).map(sc => `<li class="error" data-unwatched="${esc(sc.id)}">⚠ ${esc(scenarioText(sc))}：已保存的配置中没有摄像头有它的区域，不会触发 no camera has a zone for it in the saved configuration: it starts nowhere</li>`));
  $("preview").innerHTML = rows.join("") || '<li class="muted">无 None</li>';
}
function render() { renderCanvas(); renderList(); }

// ------------------------------------------------------------------ pointer editing
function pointAt(event) {
  const box = svg.getBoundingClientRect();
  return [round((event.clientX - box.left) / box.width), round((event.clientY - box.top) / box.height)];
}
svg.addEventListener("pointerdown", event => {
  const target = event.target, i = Number(target.dataset.i), p = Number(target.dataset.p);
  event.preventDefault();
  if (drawing) {
    if (target.classList.contains("first") && drawing.length >= 3) return finishDrawing();
    drawing.push(pointAt(event));
    return renderCanvas();
  }
  if (target.classList.contains("handle") && event.altKey) return deletePoint(i, p);
  if (target.classList.contains("handle")) drag = {i, p};
  else if (target.classList.contains("mid")) { shapes[i].polygon.splice(p + 1, 0, pointAt(event)); drag = {i, p: p + 1}; markDirty(); }
  else if (target.classList.contains("zone")) selected = i;
  else selected = -1;
  if (drag) svg.setPointerCapture(event.pointerId);
  renderCanvas();
  markSelected();
});
svg.addEventListener("pointermove", event => {
  if (!drag) return;
  shapes[drag.i].polygon[drag.p] = pointAt(event);
  markDirty();
  renderCanvas();
});
svg.addEventListener("pointerup", () => { drag = null; });
function deletePoint(i, p) {
  if (shapes[i].polygon.length <= 3) return say("refused", "✘ 多边形至少 3 个点 A polygon needs at least 3 points: delete the zone instead");
  shapes[i].polygon.splice(p, 1);
  markDirty();
  renderCanvas();
}
function startDrawing() {
  drawing = [];
  selected = -1;
  $("finish").hidden = $("cancel").hidden = false;
  $("new").disabled = true;
  renderCanvas();
}
function stopDrawing() {
  drawing = null;
  $("finish").hidden = $("cancel").hidden = true;
  $("new").disabled = false;
}
function finishDrawing() {
  if (drawing.length < 3) return say("refused", "✘ 多边形至少 3 个点 A polygon needs at least 3 points");
  const kind = view.kinds[0].kind;
  shapes.push({kind, id: nextId(), name: "", polygon: drawing});
  selected = shapes.length - 1;
  stopDrawing();
  say("", "");
  markDirty();
  render();
}
$("new").onclick = startDrawing;
$("finish").onclick = finishDrawing;
$("cancel").onclick = () => { stopDrawing(); renderCanvas(); };
document.addEventListener("keydown", e => { if (e.key === "Escape" && drawing) { stopDrawing(); renderCanvas(); } });

// ------------------------------------------------------------------ loading and saving
function fromView(answer) {
  view = answer;
  shapes = answer.zones.map(z => ({...z})).concat(answer.privacy_zones.map(z => ({...z, kind: PRIVACY})));
  selected = -1;
  dirty = false;
  $("dirty").hidden = true;
  $("applies").textContent = answer.applies;
}
function body() {
  const zones = shapes.filter(s => s.kind !== PRIVACY).map(({name, ...zone}) => zone);
  const privacy = shapes.filter(s => s.kind === PRIVACY).map(s => s.name ? {name: s.name, polygon: s.polygon} : {polygon: s.polygon});
  return {version: view.version, zones, privacy_zones: privacy};
}
function showSnapshot(snapshot) {
  $("no-snapshot").hidden = !!snapshot;
  img.hidden = !snapshot;
  $("snapshot-info").textContent = snapshot ?
    `快照 Snapshot: 案件 case ${snapshot.incident_id.slice(0, 8)} · ${localTime(snapshot.taken_at)} · ${snapshot.kind}（公开版，已遮挡人脸车牌 public copy, faces and plates masked）` :
    "在空白画面上绘制 Drawing on a blank view";
  size = BLANK;
  if (snapshot) img.src = snapshot.url; else img.removeAttribute("src");
}
img.onload = () => { size = {w: img.naturalWidth, h: img.naturalHeight}; renderCanvas(); };
img.onerror = () => { showSnapshot(null); renderCanvas(); };
async function loadChanges(cameraId) {
  const answer = await api(`/api/cameras/${encodeURIComponent(cameraId)}/zone-changes`);
  const count = part => `${(part.zones || []).length}/${(part.privacy_zones || []).length}`;
  $("changes").innerHTML = (answer.ok ? answer.body : []).map(c => `<li>${esc(localTime(c.at))} · ${esc(c.name || c.person_id)} · 区域/隐私 zones/privacy ${count(c.before)} → ${count(c.after)}</li>`).join("") ||
    '<li class="muted">无 None</li>';
}
async function loadCamera(cameraId) {
  const answer = await api(`/api/cameras/${encodeURIComponent(cameraId)}/zones`);
  if (!answer.ok) return say("refused", "✘ " + (answer.body.error || "HTTP " + answer.status));
  stopDrawing();
  say("", "");
  fromView(answer.body);
  showSnapshot(answer.body.snapshot);
  render();
  history.replaceState(null, "", "/zones?camera=" + encodeURIComponent(cameraId));
  loadChanges(cameraId);
  loadSpots(cameraId);
}
// ------------------------------------------------------------------ the camera's spot classifiers (learning loop)
function spotText(s) {
  const m = s.models[0], fig = v => v === null || v === undefined ? "-" : v.toFixed(2);
  const head = m ? ` · 模型 model ${m.model_hash} P ${fig(m.cv_precision)} R ${fig(m.cv_recall)}${m.ready ? "" : " (未启用 not used yet)"}` : " · 未训练 not trained";
  return `${s.zone_id} · ${s.scenario} · 有 present ${s.labels.present} / 无 absent ${s.labels.absent}${head}`;
}
async function loadSpots(cameraId) {
  const answer = await api(`/api/spots?camera_id=${encodeURIComponent(cameraId)}`);
  $("spots").innerHTML = (answer.ok ? answer.body : []).map(s => `<li>${esc(spotText(s))}</li>`).join("") ||
    '<li class="muted">尚无标注 No labelled crops yet</li>';
}
$("train-spots").onclick = async () => {
  const cameraId = $("camera").value, button = $("train-spots");
  button.disabled = true;
  say("", "训练中… Training…");
  const answer = await postJSON("/api/spots/train", {camera_id: cameraId});
  button.disabled = false;
  if (!answer.ok) return say("refused", "✘ " + (answer.body.error || "HTTP " + answer.status));
  say("applied", "✔ " + answer.body.lines.join(" · "));
  loadSpots(cameraId);
};
$("save").onclick = async () => {
  if (drawing) return say("refused", "✘ 请先完成多边形 Finish the polygon first");
  const cameraId = $("camera").value;
  const answer = await api(`/api/cameras/${encodeURIComponent(cameraId)}/zones`,
    {method: "PUT", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body())});
  if (!answer.ok) return say("refused", "✘ 未保存 Not saved: " + (answer.body.error || "HTTP " + answer.status));
  fromView(answer.body);
  render();
  say("applied", "✔ 已保存到 cameras.yaml Saved. " + answer.body.applies);
  loadChanges(cameraId);
};
$("camera").onchange = e => {
  if (dirty && !confirm("放弃未保存的修改？ Discard the unsaved changes?")) { e.target.value = view.camera_id; return; }
  loadCamera(e.target.value);
};
window.addEventListener("resize", renderCanvas);
(async () => {
  await whoami(["operator"]);
  const cameras = (await api("/api/cameras")).body.filter(c => c.grid_id);  // configured cameras only
  $("camera").innerHTML = cameras.map(c => `<option value="${esc(c.camera_id)}">${esc(c.name)}</option>`).join("");
  const wanted = new URLSearchParams(location.search).get("camera");
  if (wanted && cameras.some(c => c.camera_id === wanted)) $("camera").value = wanted;
  if (cameras.length) loadCamera($("camera").value);
})();
