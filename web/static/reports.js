// The reports page (reports.html); a file of its own so the Content-Security-Policy can forbid inline scripts.
"use strict";
const pct = v => v == null ? "-" : (v * 100).toFixed(1) + "%";
const HEAD = `<tr><th>分组 Group</th><th>立案 Filed</th><th>应结 Due</th><th>结案 Closed</th><th>结案率 Closure</th><th>按期结案率 On-time</th><th>返工率 Rework</th><th>误报率 False alarm</th><th>平均结案时长 Mean min</th><th>审核驳回 Dismissed in review</th><th>待审核 Awaiting review</th></tr>`;
function row(r, extra = "") {
  return `<tr data-group="${esc(r.group)}">${extra}<td>${esc(r.label)}</td><td>${r.filed}</td><td>${r.due}</td><td>${r.closed}</td><td class="closure">${pct(r.closure_rate)}</td><td>${pct(r.on_time_rate)}</td><td>${pct(r.rework_rate)}</td><td>${pct(r.false_alarm_rate)}</td><td>${r.mean_minutes_to_close ?? "-"}</td><td class="dismissed">${r.dismissed_in_review ?? 0}</td><td class="awaiting">${r.awaiting_review ?? 0}</td></tr>`;
}
function query() {
  return `from=${from.value}&to=${to.value}`;
}
async function load() {
  document.getElementById("error").textContent = "";
  const by = document.getElementById("by").value;
  const summary = await api(`/api/reports/summary?${query()}&by=${by}`);
  if (!summary.ok) { document.getElementById("error").textContent = summary.body.error; return; }
  const s = summary.body;
  document.getElementById("range").textContent = `${s.from} – ${s.to}`;
  document.getElementById("summary").innerHTML = HEAD + s.rows.map(r => row(r)).join("") +
    row(s.total).replace("<tr", '<tr id="total" style="font-weight:600"');
  document.getElementById("csv").href = `/api/reports/summary.csv?${query()}&by=${by}`;
  document.getElementById("monthly").href = `/reports/monthly?month=${to.value.slice(0, 7)}`;
  document.getElementById("trend").innerHTML = (await api(`/api/reports/trend.svg?${query()}`)).body;
  const rankBy = document.getElementById("rank-by").value;
  const ranking = (await api(`/api/reports/ranking?${query()}&by=${rankBy}`)).body;
  document.getElementById("min-sample").textContent = `最少样本 minimum sample: ${ranking.min_sample} 件应结 due cases`;
  document.getElementById("ranking").innerHTML = HEAD.replace("<tr>", "<tr><th>名次 Rank</th>") +
    ranking.ranked.map(r => row(r, `<td>${r.rank}</td>`)).join("");
  document.getElementById("unranked").textContent = ranking.unranked.length ?
    "样本不足未排名 Not ranked (fewer than " + ranking.min_sample + " due): " + ranking.unranked.map(r => `${r.label} (${r.due})`).join(", ") : "";
  const repeat = (await api(`/api/reports/repeat-offenders?${query()}`)).body;
  document.getElementById("repeat").innerHTML = `<tr><th>车牌密钥 Plate key</th><th>案件 Cases</th><th>场景 Scenarios</th><th>最近 Last seen</th></tr>` +
    (repeat.rows || []).map(r => `<tr data-key="${esc(r.plate_key)}"><td><code>${esc(r.plate_key.slice(0, 12))}</code></td><td>${r.incidents}</td><td>${esc(r.scenarios.join(", "))}</td><td>${esc(localTime(r.last_seen))}</td></tr>`).join("");
}
document.getElementById("form").onsubmit = e => { e.preventDefault(); load(); };
document.getElementById("rank-by").onchange = load;
(async () => {
  await whoami(["supervisor", "operator"]);
  const params = new URLSearchParams(location.search);
  const today = new Date(), start = new Date(today - 29 * 86400000);
  const iso = d => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 10);
  from.value = params.get("from") || iso(start); to.value = params.get("to") || iso(today);
  if (params.get("by")) document.getElementById("by").value = params.get("by");
  load();
})();
