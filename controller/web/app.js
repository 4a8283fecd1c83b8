/*
 * orbit-controller dashboard: plain JavaScript, no library, nothing fetched but the
 * controller's own API (docs/operations.md). Views: #/ fleet, #/node/ID, #/rollouts,
 * #/rollout/ID. The role (GET /v1/whoami) decides whether rollout verbs are offered; the
 * controller enforces it anyway.
 */
"use strict";

const REFRESH_MS = 3000;
const HISTORY_LIMIT = 500;
const COLORS = ["#2f6fb3", "#c0392b", "#1f8a4c", "#8e44ad", "#c98a00", "#16a085", "#7f8c8d"];

const state = { token: sessionStorage.getItem("orbit-token") || "", me: null, timer: null,
                confirming: null, busy: false };

/* ---- small DOM helpers ------------------------------------------------------------- */

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}

const SVGNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

function badge(text, prefix) {
  return el("span", { class: "badge " + (prefix || "st-") + String(text) }, String(text));
}

function fmtTime(sec) {
  if (sec === null || sec === undefined) return "never";
  const d = new Date(sec * 1000);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function fmtAge(sec) {
  if (sec === null || sec === undefined) return "never";
  const age = Math.max(0, Math.round(serverNow() - sec));
  if (age < 120) return age + " s ago";
  if (age < 7200) return Math.round(age / 60) + " min ago";
  if (age < 172800) return Math.round(age / 3600) + " h ago";
  return Math.round(age / 86400) + " d ago";
}

/* The controller's clock, as of the last whoami, moved on by ours. */
function serverNow() {
  if (!state.me) return Date.now() / 1000;
  return state.me.server_time + (Date.now() - state.me.fetched) / 1000;
}

/* ---- the API ----------------------------------------------------------------------- */

async function api(method, path) {
  const resp = await fetch(path, { method, headers: { Authorization: "Bearer " + state.token },
                                   cache: "no-store" });
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  if (!resp.ok) {
    const msg = body && body.message ? body.message : resp.status + " " + resp.statusText;
    const err = new Error(method + " " + path + ": " + msg);
    err.status = resp.status;
    throw err;
  }
  return body;
}

/* ---- sign in ----------------------------------------------------------------------- */

async function signIn(token) {
  state.token = token;
  try {
    const me = await api("GET", "/v1/whoami");
    me.fetched = Date.now();
    state.me = me;
    sessionStorage.setItem("orbit-token", token);
    return true;
  } catch (e) {
    state.me = null;
    state.token = "";
    sessionStorage.removeItem("orbit-token");
    document.getElementById("login-error").textContent = e.message;
    return false;
  }
}

function showLogin(show) {
  document.getElementById("login").hidden = !show;
  document.getElementById("view").hidden = show;
  document.getElementById("logout").hidden = show;
  document.getElementById("who").textContent = show || !state.me ? "" :
    "signed in as " + state.me.role + (state.me.role === "viewer" ? " (read only)" : "");
}

/* ---- plots: SVG drawn here ------------------------------------------------------------ */

/*
 * One plot: series [{name, points: [[time_sec, value], ...]}] over a shared time axis.
 * Every point is also a <circle> carrying data-series, data-time and data-value, so what
 * is drawn can be checked against the stored reports.
 */
function plot(title, unit, series) {
  const W = 600, H = 180, L = 48, R = 10, T = 10, B = 24;
  const all = series.flatMap(s => s.points);
  const box = el("div", { class: "card plot-card", "data-plot": title });
  box.appendChild(el("h2", {}, title + (unit ? " (" + unit + ")" : "")));
  if (all.length === 0) {
    box.appendChild(el("p", { class: "muted" }, "no reports with these figures yet"));
    return box;
  }
  let t0 = Math.min(...all.map(p => p[0])), t1 = Math.max(...all.map(p => p[0]));
  let v0 = Math.min(...all.map(p => p[1])), v1 = Math.max(...all.map(p => p[1]));
  if (t1 === t0) { t0 -= 30; t1 += 30; }
  if (v1 === v0) { v0 -= 1; v1 += 1; }
  const pad = (v1 - v0) * 0.08;
  v0 -= pad; v1 += pad;
  const x = t => L + (t - t0) / (t1 - t0) * (W - L - R);
  const y = v => T + (1 - (v - v0) / (v1 - v0)) * (H - T - B);
  const s = svg("svg", { class: "plot", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none",
                         role: "img", "aria-label": title });
  for (let i = 0; i <= 4; i++) {
    const v = v0 + (v1 - v0) * i / 4;
    s.appendChild(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    const label = svg("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end" });
    label.textContent = Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1);
    s.appendChild(label);
  }
  s.appendChild(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
  s.appendChild(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  for (const [t, anchor] of [[t0, "start"], [t1, "end"]]) {
    const label = svg("text", { x: x(t), y: H - 8, "text-anchor": anchor });
    label.textContent = fmtTime(t).slice(11);
    s.appendChild(label);
  }
  const legend = el("div", { class: "legend" });
  series.forEach((se, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = se.points.slice().sort((a, b) => a[0] - b[0]);
    s.appendChild(svg("polyline", { stroke: color, "data-series": se.name,
                                    points: pts.map(p => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ") }));
    for (const p of pts)
      s.appendChild(svg("circle", { cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: 2, fill: color,
                                    "data-series": se.name, "data-time": p[0], "data-value": p[1] }));
    const swatch = el("i");
    swatch.style.background = color;
    legend.appendChild(el("span", {}, swatch, se.name));
  });
  box.appendChild(s);
  box.appendChild(legend);
  return box;
}

/* The mean of each report's metric named `name`, as [time_sec, value] points. */
function seriesOf(reports, name) {
  const pts = [];
  for (const r of reports) {
    const m = r.body && r.body.metrics && r.body.metrics[name];
    if (m && typeof m.mean === "number") pts.push([r.time_usec / 1e6, m.mean]);
  }
  return pts;
}

/* ---- views ------------------------------------------------------------------------- */

function nodeState(n) {
  if (n.last_sync === null) return "never";
  const poll = state.me ? state.me.poll_interval : 60;
  return serverNow() - n.last_sync <= 3 * poll ? "online" : "silent";
}

async function viewFleet() {
  const [{ nodes }, { rollouts }] = await Promise.all([api("GET", "/v1/nodes"), api("GET", "/v1/rollouts")]);
  const rows = nodes.map(n => {
    const s = n.summary || {};
    return el("tr", { "data-node": n.id },
      el("td", {}, el("a", { href: "#/node/" + encodeURIComponent(n.id) }, n.id)),
      el("td", {}, badge(nodeState(n))),
      el("td", {}, s.slot || "?"),
      el("td", {}, s.version || "?"),
      el("td", {}, n.update ? n.update.kind.replace(/^update\./, "") : "none"),
      el("td", { title: fmtTime(n.last_sync) }, fmtAge(n.last_sync)),
      el("td", { class: "num" }, n.passes),
      el("td", {}, s.level ? badge(s.level, "lv-") : "?"),
      el("td", { class: "num" }, s.battery_percent === undefined ? "?" : s.battery_percent.toFixed(0) + " %"),
      el("td", { class: "num" }, n.commands_pending));
  });
  return [
    el("h1", {}, "Fleet: " + nodes.length + " nodes"),
    el("table", { id: "fleet" },
      el("thead", {}, el("tr", {}, ["Node", "State", "Slot", "Version", "Update", "Last pass", "Passes",
                                    "Thermal level", "Battery", "Commands"].map(h => el("th", {}, h)))),
      el("tbody", {}, rows)),
    el("h2", {}, "Rollouts"),
    rolloutsTable(rollouts),
  ];
}

function rolloutsTable(rollouts) {
  if (rollouts.length === 0) return el("p", { class: "muted" }, "no rollout yet");
  return el("table", { id: "rollouts" },
    el("thead", {}, el("tr", {}, ["Rollout", "Bundle", "Target", "State", "Stage", "Nodes", "Committed",
                                  "Failures"].map(h => el("th", {}, h)))),
    el("tbody", {}, rollouts.map(r => el("tr", { "data-rollout": r.id },
      el("td", {}, el("a", { href: "#/rollout/" + encodeURIComponent(r.id) }, r.id)),
      el("td", {}, r.bundle_id), el("td", {}, r.target), el("td", {}, badge(r.state)),
      el("td", { class: "num" }, r.current_stage + " of " + r.stages.length),
      el("td", { class: "num" }, r.counts.nodes), el("td", { class: "num" }, r.counts.committed),
      el("td", { class: "num" }, r.counts.failures)))));
}

async function viewRollouts() {
  const { rollouts } = await api("GET", "/v1/rollouts");
  return [el("h1", {}, "Rollouts"), rolloutsTable(rollouts)];
}

async function viewNode(id) {
  const enc = encodeURIComponent(id);
  const [n, rec] = await Promise.all([
    api("GET", "/v1/nodes/" + enc),
    api("GET", "/v1/nodes/" + enc + "/records?kind=health.report&limit=" + HISTORY_LIMIT)]);
  const reports = rec.records;
  const names = new Set();
  for (const r of reports)
    for (const k of Object.keys((r.body && r.body.metrics) || {}))
      if (k.endsWith(".temp_c")) names.add(k);
  const temps = [...names].sort().map(k => ({ name: k.replace(/\.temp_c$/, ""), points: seriesOf(reports, k) }));
  const s = n.summary || {};
  const u = n.status && n.status.subsystems && n.status.subsystems.update;
  return [
    el("h1", {}, "Node " + n.id),
    el("div", { class: "card", id: "node-facts" },
      el("p", {}, "State ", badge(nodeState(n)), " · slot ", s.slot || "?", " · version ", s.version || "?",
        " · thermal level ", s.level ? badge(s.level, "lv-") : "?"),
      el("p", {}, "Last pass " + fmtAge(n.last_sync) + " (" + fmtTime(n.last_sync) + "), " + n.passes +
        " passes, " + n.syncs + " syncs; " + n.records + " records stored, " + n.commands_pending +
        " commands pending; groups: " + (n.groups.join(", ") || "none")),
      el("p", {}, "Update: " + (n.update ? n.update.kind + (n.update.body && n.update.body.bundle_id ?
        " of " + n.update.body.bundle_id : "") : "none") +
        (u ? " · anti-rollback floor security_version " + u.min_security_version : ""))),
    el("p", { class: "muted" }, reports.length + " health reports (the last " + HISTORY_LIMIT +
      " at most), each the mean over its interval"),
    el("div", { class: "grid" },
      plot("Temperatures", "°C", temps),
      plot("Power", "battery %", [{ name: "battery", points: seriesOf(reports, "battery.capacity_percent") }]),
      plot("CPU", "busy %", [{ name: "cpu", points: seriesOf(reports, "cpu.busy_percent") }]),
      plot("Memory", "available MiB", [{ name: "memory", points: seriesOf(reports, "mem.available_mib") }])),
    el("h2", {}, "Commands"),
    el("table", { id: "commands" },
      el("thead", {}, el("tr", {}, ["Seq", "Action", "State", "Created", "Result"].map(h => el("th", {}, h)))),
      el("tbody", {}, n.commands.slice(-20).reverse().map(c => el("tr", {},
        el("td", { class: "num" }, c.seq), el("td", {}, c.action), el("td", {}, badge(c.state)),
        el("td", {}, fmtTime(c.created)), el("td", {}, c.result_reason || ""))))),
  ];
}

async function verb(id, v) {
  state.busy = true;
  try {
    await api("POST", "/v1/rollouts/" + encodeURIComponent(id) + "/" + v);
    state.confirming = null;
  } catch (e) {
    document.getElementById("view").prepend(el("p", { class: "error" }, e.message));
  } finally {
    state.busy = false;
  }
  render();
}

function rolloutActions(r) {
  if (!state.me || !["operator", "release-manager"].includes(state.me.role))
    return el("p", { class: "muted", id: "actions" }, "Viewers see rollouts; operators may pause, resume and abort them.");
  const live = ["created", "running", "paused", "halted"].includes(r.state);
  const box = el("div", { class: "actions", id: "actions" },
    el("button", { id: "pause", type: "button", disabled: r.state !== "running", onclick: () => verb(r.id, "pause") }, "Pause"),
    el("button", { id: "resume", type: "button", disabled: r.state !== "paused", onclick: () => verb(r.id, "resume") }, "Resume"));
  if (state.confirming === r.id)
    box.append(el("span", {}, "Abort: nodes that got the bundle are told to roll back. "),
      el("button", { id: "abort-confirm", type: "button", class: "danger", onclick: () => verb(r.id, "abort") }, "Confirm abort"),
      el("button", { id: "abort-cancel", type: "button", onclick: () => { state.confirming = null; render(); } }, "Cancel"));
  else
    box.append(el("button", { id: "abort", type: "button", class: "danger", disabled: !live,
                              onclick: () => { state.confirming = r.id; render(); } }, "Abort"));
  return box;
}

async function viewRollout(id) {
  const r = await api("GET", "/v1/rollouts/" + encodeURIComponent(id));
  const stages = r.stage_progress.map(st => {
    const total = Math.max(1, st.nodes);
    const active = st.told + st.installing + (st.committed - st.held);
    const failures = st.failures;
    const bar = el("div", { class: "bar", title: st.held + " held, " + active + " on their way, " + failures + " failures" });
    for (const [cls, n] of [["committed", st.held], ["active", active], ["failure", failures]]) {
      const part = el("span", { class: cls });
      part.style.width = (100 * n / total) + "%";
      bar.appendChild(part);
    }
    return el("tr", { "data-stage": st.stage },
      el("td", { class: "num" }, st.stage), el("td", { class: "num" }, st.percent + " %"),
      el("td", { class: "num" }, st.nodes), el("td", {}, bar),
      el("td", { class: "num" }, st.committed), el("td", { class: "num" }, st.held),
      el("td", { class: "num" }, failures), el("td", {}, badge(st.status)));
  });
  const failed = r.nodes.filter(n => ["failed", "rolled-back", "overdue"].includes(n.state));
  return [
    el("h1", {}, "Rollout " + r.id + " ", badge(r.state)),
    el("div", { class: "card", id: "rollout-facts" },
      el("p", {}, "Bundle " + r.bundle_id + " to " + r.target + ", stages " + r.stages_text + " %, stage " +
        r.current_stage + " of " + r.stages.length + ". Success after " + r.success_after +
        (/s$/.test(r.success_after) ? "" : " passes") + (r.min_healthy_time ? " and " + r.min_healthy_time +
        " s" : "") + "; report deadline " + (r.report_deadline || "none") + "; max failures " +
        r.max_failures + (r.auto_revert ? "; auto-revert" : "") + "."),
      r.reason ? el("p", { id: "reason" }, "Reason: " + r.reason) : null,
      el("p", {}, r.counts.nodes + " nodes: " + r.counts.committed + " committed, " + r.counts.installing +
        " installing, " + r.counts.told + " told, " + r.counts.pending + " pending; failures " +
        r.counts.failures + " of " + r.counts.told_so_far + " told")),
    rolloutActions(r),
    el("h2", {}, "Stages"),
    el("table", { id: "stages" },
      el("thead", {}, el("tr", {}, ["Stage", "Share", "Nodes", "Progress", "Committed", "Held", "Failures",
                                    "Status"].map(h => el("th", {}, h)))),
      el("tbody", {}, stages)),
    el("h2", {}, "Failures"),
    failed.length === 0 ? el("p", { class: "muted", id: "failures" }, "none") :
      el("table", { id: "failures" }, el("tbody", {}, failed.map(n => el("tr", {},
        el("td", {}, el("a", { href: "#/node/" + encodeURIComponent(n.node) }, n.node)),
        el("td", {}, badge(n.state)), el("td", {}, n.reason || ""))))),
    el("h2", {}, "Events"),
    el("ul", { class: "events", id: "events" }, r.events.slice().reverse().map(e =>
      el("li", {}, el("time", {}, fmtTime(e.time)), el("strong", {}, e.event), " ", e.detail))),
    el("h2", {}, "Nodes"),
    el("table", { id: "members" },
      el("thead", {}, el("tr", {}, ["Node", "Stage", "State", "Passes since commit", "Reason"].map(h => el("th", {}, h)))),
      el("tbody", {}, r.nodes.map(n => el("tr", { "data-node": n.node },
        el("td", {}, el("a", { href: "#/node/" + encodeURIComponent(n.node) }, n.node)),
        el("td", { class: "num" }, n.stage), el("td", {}, badge(n.state)),
        el("td", { class: "num" }, n.passes_since_commit), el("td", {}, n.reason || ""))))),
  ];
}

/* ---- routing and refresh ------------------------------------------------------------ */

async function render() {
  if (state.busy) return;
  if (!state.me) { showLogin(true); return; }
  showLogin(false);
  const hash = decodeURIComponent(location.hash.replace(/^#/, "")) || "/";
  const view = document.getElementById("view");
  let content;
  try {
    const m = hash.match(/^\/(node|rollout)\/(.+)$/);
    if (m && m[1] === "node") content = await viewNode(m[2]);
    else if (m && m[1] === "rollout") content = await viewRollout(m[2]);
    else if (hash === "/rollouts") content = await viewRollouts();
    else content = await viewFleet();
  } catch (e) {
    content = [el("p", { class: "error", id: "error" }, e.message)];
  }
  view.replaceChildren(...[content].flat());
  view.setAttribute("data-loaded", hash);
  document.getElementById("updated").textContent = "updated " + new Date().toISOString();
}

function schedule() {
  if (state.timer) clearInterval(state.timer);
  state.timer = setInterval(() => { if (!state.confirming) render(); }, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("login").addEventListener("submit", async ev => {
    ev.preventDefault();
    if (await signIn(document.getElementById("token").value.trim())) render();
  });
  document.getElementById("logout").addEventListener("click", () => {
    sessionStorage.removeItem("orbit-token");
    state.me = null;
    state.token = "";
    render();
  });
  window.addEventListener("hashchange", () => { state.confirming = null; render(); });
  if (state.token) await signIn(state.token);
  render();
  schedule();
});
