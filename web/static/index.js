// The index page (index.html); a file of its own so the Content-Security-Policy can forbid inline scripts.
fetch("/api/me", {credentials: "same-origin"}).then(r => r.ok ? r.json() : null).then(me => {
  location.href = !me ? "/login" : me.role === "officer" ? "/officer" : me.role === "supervisor" ? "/reports" : "/wall";
});
