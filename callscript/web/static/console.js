// The callscript console: sign in, edit and check the script, simulate, versions, calls, admin.
// Plain JavaScript, no build step. It talks to the same JSON API as any other client,
// with a session token kept in sessionStorage (gone when the tab closes).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem("callscript-token"), user: null, role: null };

async function api(method, path, body, contentType) {
  const headers = { "X-Callscript-Console": "1" };
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = contentType || "application/json";
    payload = contentType ? body : JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { message: text }; }
  if (response.status === 401 && path !== "/api/session") signedOut();
  return { ok: response.ok, status: response.status, data };
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
function cell(row, text) { const td = document.createElement("td"); td.textContent = text; row.appendChild(td); return td; }
function when(epoch) { return new Date(epoch * 1000).toLocaleString(); }
function userPath() { return "/api/users/" + encodeURIComponent(state.user); }

// -- sign in / out ---------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  $("signin-error").textContent = "";
  const result = await api("POST", "/api/session", { user: $("signin-user").value, password: $("signin-password").value });
  if (!result.ok) { $("signin-error").textContent = result.data.message || "sign-in failed"; return; }
  state.token = result.data.token;
  sessionStorage.setItem("callscript-token", state.token);
  $("signin-password").value = "";
  await start();
}

async function signOut() {
  await api("DELETE", "/api/session");
  signedOut();
}

function signedOut() {
  state.token = null; state.user = null;
  sessionStorage.removeItem("callscript-token");
  $("main-view").hidden = true; $("signin-view").hidden = false;
  $("whoami").hidden = true; $("signout").hidden = true;
}

async function start() {
  const me = await api("GET", "/api/me");
  if (!me.ok) { signedOut(); return; }
  state.user = me.data.user; state.role = me.data.role;
  $("whoami").textContent = state.user + (state.role === "admin" ? " (admin)" : "");
  $("whoami").hidden = false; $("signout").hidden = false;
  $("signin-view").hidden = true; $("main-view").hidden = false;
  $("admin-tab").hidden = state.role !== "admin";
  $("script-user").textContent = state.user;
  showScript(me.data.script);
  showTab("script");
}

// -- tabs --------------------------------------------------------------------------

function showTab(name) {
  for (const button of document.querySelectorAll("#tabs button")) button.classList.toggle("active", button.dataset.tab === name);
  for (const section of document.querySelectorAll(".tab")) section.hidden = section.id !== "tab-" + name;
  if (name === "versions") loadVersions();
  if (name === "calls") loadCalls();
  if (name === "admin") loadAdmin();
}

// -- editor with line numbers and problems on their lines ------------------------------

function renderGutter(problemsByLine) {
  const gutter = $("gutter");
  clear(gutter);
  const lines = $("source").value.split("\n").length;
  for (let n = 1; n <= lines; n++) {
    const line = document.createElement("div");
    line.className = "line";
    line.dataset.line = String(n);
    line.textContent = String(n);
    const messages = problemsByLine && problemsByLine.get(n);
    if (messages) { line.classList.add("error"); line.title = messages.join("\n"); }
    gutter.appendChild(line);
  }
  gutter.scrollTop = $("source").scrollTop;
}

function showProblems(details) {
  const list = $("problems");
  clear(list);
  const byLine = new Map();
  for (const p of details || []) {
    const item = document.createElement("li");
    item.textContent = p.line + ":" + p.col + ": " + (p.severity === "warning" ? "warning: " : "") + p.message;
    item.dataset.line = String(p.line);
    if (p.severity === "warning") item.classList.add("warning");
    else byLine.set(p.line, (byLine.get(p.line) || []).concat([p.message]));
    item.addEventListener("click", () => goToLine(p.line, p.col));
    list.appendChild(item);
  }
  renderGutter(byLine);
}

function goToLine(line, col) {
  const lines = $("source").value.split("\n");
  let offset = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
  offset += Math.max(0, col - 1);
  $("source").focus();
  $("source").setSelectionRange(offset, offset);
}

function showScript(script) {
  const live = script && script.live;
  $("source").value = script && script.source !== null ? script.source : "";
  let status = "no script yet";
  if (live) status = "live version " + live.id + " (" + live.short + ")";
  else if (script && script.running) status = "running " + script.running.short + " (not uploaded here)";
  if (script && script.quarantined) status += ", in quarantine";
  $("script-status").textContent = status;
  showProblems([]);
}

async function reloadScript() {
  const result = await api("GET", userPath() + "/script");
  showScript(result.ok ? result.data : null);
}

async function save() {
  $("save-result").textContent = "checking...";
  $("save-result").className = "";
  const result = await api("PUT", userPath() + "/script", $("source").value, "text/x-python; charset=utf-8");
  if (result.status === 422) {
    $("save-result").textContent = "Refused: " + result.data.message;
    $("save-result").className = "error";
    showProblems(result.data.details || []);
    return;
  }
  if (!result.ok) { $("save-result").textContent = result.data.message; $("save-result").className = "error"; return; }
  $("save-result").textContent = "Saved: version " + result.data.id + " is live";
  $("save-result").className = "ok";
  $("script-status").textContent = "live version " + result.data.id + " (" + result.data.short + ")";
  showProblems((result.data.warnings || []).map(parseProblem));
}

function parseProblem(text) {
  const match = /^(\d+):(\d+): (?:warning: )?(.*)$/.exec(text);
  return match ? { line: +match[1], col: +match[2], severity: "warning", message: match[3] } : { line: 1, col: 1, severity: "warning", message: text };
}

async function deleteScript() {
  if (!confirm("Delete your script? Calls get the default routing.")) return;
  const result = await api("DELETE", userPath() + "/script");
  $("save-result").textContent = result.ok ? "Deleted" : result.data.message;
  if (result.ok) showScript(null);
}

// -- simulator ---------------------------------------------------------------------

async function simulate(event) {
  event.preventDefault();
  const outcomes = $("sim-outcomes").value.split(",").map((s) => s.trim()).filter(Boolean);
  const body = {
    from: $("sim-from").value,
    direction: $("sim-direction").value,
    outcomes,
    default_outcome: $("sim-default").value,
    version: $("sim-version").value,
  };
  if ($("sim-to").value) body.to = $("sim-to").value;
  if ($("sim-time").value) body.time = $("sim-time").value;
  if (body.version === "draft") body.source = $("source").value;
  $("sim-status").textContent = "running...";
  const result = await api("POST", userPath() + "/simulate", body);
  const trace = $("trace");
  clear(trace);
  if (!result.ok) { $("sim-status").textContent = result.data.message; return; }
  $("sim-status").textContent = "Result: " + result.data.status;
  for (const line of result.data.text) {
    const item = document.createElement("li");
    item.textContent = line;
    trace.appendChild(item);
  }
}

// -- versions and calls --------------------------------------------------------------

async function loadVersions() {
  const result = await api("GET", userPath() + "/script/versions");
  const body = $("versions");
  clear(body);
  if (!result.ok) return;
  for (const v of result.data) {
    const row = document.createElement("tr");
    row.dataset.id = String(v.id);
    if (v.live) row.classList.add("live");
    cell(row, String(v.id)); cell(row, when(v.created_at)); cell(row, v.author); cell(row, v.short);
    const action = cell(row, v.live ? "live" : "");
    if (!v.live) {
      const button = document.createElement("button");
      button.type = "button"; button.className = "rollback"; button.textContent = "Roll back to this";
      button.addEventListener("click", () => rollback(v.id));
      action.appendChild(button);
    }
    body.appendChild(row);
  }
}

async function rollback(id) {
  const result = await api("POST", userPath() + "/script/versions/" + id + "/rollback");
  $("versions-result").textContent = result.ok ? "Version " + id + " is live again" : result.data.message;
  await loadVersions();
  await reloadScript();
}

async function loadCalls() {
  const result = await api("GET", userPath() + "/calls");
  const body = $("calls");
  clear(body);
  if (!result.ok) return;
  for (const c of result.data) {
    const row = document.createElement("tr");
    cell(row, when(c.at)); cell(row, c.caller + " → " + c.callee); cell(row, c.version);
    cell(row, c.actions.map((a) => a.kind + (a.outcome ? " → " + a.outcome : "")).join(", "));
    cell(row, c.status === null ? "" : String(c.status)); cell(row, c.violation || "");
    body.appendChild(row);
  }
}

// -- admin ----------------------------------------------------------------------------

async function loadAdmin() {
  const [users, scripts, policy] = await Promise.all([
    api("GET", "/api/admin/users"), api("GET", "/api/admin/scripts"), api("GET", "/api/admin/policy"),
  ]);
  const userRows = $("admin-users");
  clear(userRows);
  for (const u of users.ok ? users.data : []) {
    const row = document.createElement("tr");
    cell(row, u.user); cell(row, u.role);
    cell(row, u.script && u.script.live ? "version " + u.script.live.id : u.script && u.script.running ? "running" : "none");
    userRows.appendChild(row);
  }
  const scriptRows = $("admin-scripts");
  clear(scriptRows);
  for (const s of scripts.ok ? scripts.data : []) {
    const row = document.createElement("tr");
    row.dataset.script = s.script;
    cell(row, s.script); cell(row, s.live ? String(s.live.id) : ""); cell(row, s.running || "");
    cell(row, s.quarantined ? "quarantined" : s.rejected ? "last upload rejected" : "ok");
    const owner = ownerOf(s.script);
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = s.quarantined ? "Release" : "Quarantine";
    button.disabled = !s.running;
    button.addEventListener("click", async () => {
      await api(s.quarantined ? "DELETE" : "POST", "/api/admin/scripts/" + encodeURIComponent(owner) + "/quarantine", s.quarantined ? undefined : {});
      loadAdmin();
    });
    cell(row, "").appendChild(button);
    scriptRows.appendChild(row);
  }
  $("admin-policy").textContent = policy.ok ? JSON.stringify(policy.data, null, 2) : "";
  await loadAudit();
}

function ownerOf(name) {
  const [domain, file] = name.split("/");
  return decodeURIComponent(file.replace(/\.py$/, "")) + "@" + decodeURIComponent(domain);
}

async function loadAudit(event) {
  if (event) event.preventDefault();
  const query = new URLSearchParams({ limit: "100" });
  if ($("audit-owner").value) query.set("owner", $("audit-owner").value);
  if ($("audit-kind").value) query.set("kind", $("audit-kind").value);
  const result = await api("GET", "/api/admin/audit?" + query);
  const body = $("admin-audit");
  clear(body);
  for (const e of result.ok ? result.data : []) {
    const row = document.createElement("tr");
    cell(row, when(e.at)); cell(row, e.kind); cell(row, e.owner); cell(row, e.script + (e.line ? ":" + e.line : ""));
    cell(row, e.message);
    body.appendChild(row);
  }
}

// -- wiring -------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("signin").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  for (const button of document.querySelectorAll("#tabs button")) button.addEventListener("click", () => showTab(button.dataset.tab));
  $("source").addEventListener("input", () => renderGutter(null));
  $("source").addEventListener("scroll", () => { $("gutter").scrollTop = $("source").scrollTop; });
  $("save").addEventListener("click", save);
  $("reload").addEventListener("click", reloadScript);
  $("delete").addEventListener("click", deleteScript);
  $("simulate-form").addEventListener("submit", simulate);
  $("audit-form").addEventListener("submit", loadAudit);
  renderGutter(null);
  if (state.token) start(); else signedOut();
});
