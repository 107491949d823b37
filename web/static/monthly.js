// The monthly page (monthly.html); a file of its own so the Content-Security-Policy can forbid inline scripts.
"use strict";
const pct = v => v == null ? "-" : (v * 100).toFixed(1) + "%";
function table(rows, total) {
  return `<table><tr><th>分组 Group</th><th>立案 Filed</th><th>应结 Due</th><th>结案 Closed</th><th>结案率 Closure</th><th>按期结案 On time</th><th>按期结案率 On-time rate</th><th>返工率 Rework</th><th>误报 False alarms</th></tr>` +
    [...rows, total].map(r => `<tr${r.group === "total" ? ' style="font-weight:600"' : ""}><td>${esc(r.label)}</td><td>${r.filed}</td><td>${r.due}</td><td>${r.closed}</td><td>${pct(r.closure_rate)}</td><td>${r.on_time}</td><td>${pct(r.on_time_rate)}</td><td>${pct(r.rework_rate)}</td><td>${r.false_alarms}</td></tr>`).join("") + "</table>";
}
async function load() {
  const result = await api("/api/reports/monthly?month=" + month.value);
  if (!result.ok) { document.getElementById("error").textContent = result.body.error; return; }
  const m = result.body, t = m.total;
  document.getElementById("report").innerHTML = `
    <h2>${esc(m.city_zh)} ${esc(m.city)} · ${esc(m.month)} 非现场执法月报 Non-site enforcement monthly report</h2>
    <p id="headline">本月共发现案件 ${t.filed} 件，其中误报 ${t.false_alarms} 件、应结案 ${t.due} 件，已结案 ${t.closed} 件，结案率 <b>${pct(t.closure_rate)}</b>；按期结案 ${t.on_time} 件，按期结案率 <b>${pct(t.on_time_rate)}</b>；返工率 ${pct(t.rework_rate)}。另有 <span id="dismissed">${t.dismissed_in_review ?? 0}</span> 条告警经人工审核驳回，未立案。<br>
    <span class="muted">${t.filed} cases filed (${t.false_alarms} false alarms, ${t.due} due); ${t.closed} closed — closure rate ${pct(t.closure_rate)}; ${t.on_time} on time — on-time rate ${pct(t.on_time_rate)}; rework rate ${pct(t.rework_rate)}; mean time to close ${t.mean_minutes_to_close ?? "-"} min; ${t.dismissed_in_review ?? 0} alarms dismissed in review, not filed.</span></p>
    <h3>按场景 By scenario</h3>${table(m.by_scenario, m.total)}
    <h3>按网格 By grid</h3>${table(m.by_grid, m.total)}
    <p class="muted">统计口径 Definitions: 结案率 = 结案 / 应结案 (closed / due); 按期结案率 = 期限内结案 / 应结案; 应结案 = 立案 − 误报. ${esc(m.from)} – ${esc(m.to)}</p>`;
}
document.getElementById("show").onclick = load;
document.getElementById("print").onclick = () => print();
(async () => {
  await whoami(["supervisor", "operator"]);
  month.value = new URLSearchParams(location.search).get("month") || new Date().toISOString().slice(0, 7);
  load();
})();
