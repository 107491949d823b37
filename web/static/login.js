// The login page (login.html); a file of its own so the Content-Security-Policy can forbid inline scripts.
fetch("/api/demo-logins").then(r => r.json()).then(accounts => {
  if (!accounts.length) return;
  const byRole = {};
  accounts.forEach(a => (byRole[a.role + " / " + a.password] ??= []).push(a.username));
  const box = document.getElementById("demo");
  box.textContent = "演示账号 Demo accounts: " + Object.entries(byRole).map(([k, names]) => names.join(" · ") + " (" + k + ")").join("; ");
  box.hidden = false;
});
document.getElementById("form").onsubmit = async (event) => {
  event.preventDefault();
  const result = await postJSON("/api/login", {username: username.value.trim(), password: password.value});
  if (!result.ok) { document.getElementById("error").textContent = "登录失败 " + (result.body.error || result.status); return; }
  const next = new URLSearchParams(location.search).get("next");
  const home = {officer: "/officer", supervisor: "/reports", operator: "/wall"}[result.body.role];
  location.href = next && next.startsWith("/") && !next.startsWith("//") ? next : home;
};
