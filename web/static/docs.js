// The docs page (docs.html); a file of its own so the Content-Security-Policy can forbid inline scripts.
"use strict";
fetch("/openapi.json").then(r => r.json()).then(spec => {
  document.getElementById("intro").textContent = spec.info.title + " " + spec.info.version + " — " + spec.info.description;
  const rows = [];
  for (const [path, operations] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(operations)) {
      const params = (op.parameters || []).map(p => `${p.in}.${p.name}${p.required ? "*" : ""}`);
      const body = op.requestBody ? Object.keys(op.requestBody.content).join(", ") : "";
      rows.push(`<tr><td>${esc(method.toUpperCase())}</td><td style="text-align:left"><code>${esc(path)}</code></td><td style="text-align:left">${esc(op.summary || "")}</td><td style="text-align:left">${esc([...params, body].filter(Boolean).join(" · "))}</td></tr>`);
    }
  }
  document.getElementById("paths").innerHTML += rows.join("");
});
