// The glm-proxy dashboard: asks for the admin token once (kept in this tab's session storage,
// sent as a bearer header), then reads /_status, /admin/keys and /admin/timeline every 2 s.
// Everything shown is set as text, never as HTML: key and client names are the operator's.
"use strict";

const TOKEN = "glm-proxy-admin-token";
const REFRESH_MS = 2000;
const COLORS = ["#0969da", "#8250df", "#bf3989", "#1a7f37", "#9a6700", "#cf222e", "#57606a"];
const $ = (id) => document.getElementById(id);

let timer = null;
let fetchedAt = 0;
let lastStatus = null;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

async function call(path, method) {
  const response = await fetch(path, {
    method: method || "GET",
    headers: { Authorization: "Bearer " + sessionStorage.getItem(TOKEN) },
    cache: "no-store",
  });
  if (response.status === 401) throw new Error("unauthorized");
  return { status: response.status, body: await response.json() };
}

function showLogin(message) {
  clearInterval(timer);
  timer = null;
  $("board").hidden = true;
  $("forget").hidden = true;
  $("login").hidden = false;
  $("login-error").hidden = !message;
  $("login-error").textContent = message || "";
  $("token").focus();
}

async function refresh() {
  try {
    const [status, clients, timeline] = await Promise.all([
      call("/_status"),
      call("/admin/keys"),
      call("/admin/timeline"),
    ]);
    fetchedAt = performance.now();
    lastStatus = status.body;
    $("login").hidden = true;
    $("board").hidden = false;
    $("forget").hidden = false;
    renderProviders();
    renderCharts(timeline.body);
    renderClients(clients, timeline.body.limited_clients);
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (error) {
    if (error.message === "unauthorized") {
      sessionStorage.removeItem(TOKEN);
      showLogin("That token was refused.");
    } else {
      $("updated").textContent = "the proxy is not answering: " + error.message;
    }
  }
}

// Seconds left of a countdown read `fetchedAt`, as of now.
function left(seconds) {
  return Math.max(0, seconds - (performance.now() - fetchedAt) / 1000);
}

function keyState(key) {
  if (key.state === "available") return ["available", "available"];
  const rest = Math.ceil(left(key.rate_limited_for));
  if (key.state === "cooling_down") return ["resting " + rest + " s", "cooling_down"];
  return ["rejected " + rest + " s", "invalid"];
}

function renderProviders() {
  const root = $("providers");
  root.replaceChildren();
  for (const [name, provider] of Object.entries(lastStatus.providers)) {
    if (!provider.configured) continue;
    const title = el("h3", name + " ");
    let circuit = provider.state.replace("_", "-");
    if (provider.state === "open") circuit += " " + Math.ceil(left(provider.open_for)) + " s";
    title.append(el("span", "circuit " + circuit, "state " + provider.state));
    title.dataset.provider = name;
    root.append(title);
    if ((provider.stale_models || []).length) {
      const stale = el("p", "Stale model ids (GET /models leaves them out, or 404): " + provider.stale_models.join(", "),
        "stale");
      stale.dataset.stale = name;
      root.append(stale);
    }
    const table = el("table");
    const head = el("tr");
    for (const column of ["Key", "State", "Requests", "Errors", "Last error"]) head.append(el("th", column));
    table.append(head);
    for (const key of provider.keys || []) {
      const row = el("tr");
      row.dataset.key = name + "/" + key.name;
      const [text, cls] = keyState(key);
      row.append(el("td", key.name), el("td", text, "state " + cls), el("td", key.requests),
        el("td", key.error_count), el("td", key.last_error || "", "muted"));
      table.append(row);
    }
    root.append(table);
  }
}

// A line chart of `series` ([name, values]) over the last 15 minutes, in `svg`.
function chart(svgId, legendId, series) {
  const svg = $(svgId);
  const [width, height, pad] = [600, 160, 18];
  const values = series.flatMap(([, points]) => points.filter((v) => v !== null));
  const top = Math.max(1, ...values);
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", 4);
  label.setAttribute("y", 12);
  label.textContent = "max " + Math.round(top * 10) / 10;
  svg.append(label);
  const legend = $(legendId);
  legend.replaceChildren();
  series.forEach(([name, points], i) => {
    const color = COLORS[i % COLORS.length];
    const coordinates = points
      .map((v, x) => (v === null ? null : [
        (x / Math.max(1, points.length - 1)) * width,
        height - pad / 2 - (v / top) * (height - pad),
      ]))
      .filter(Boolean)
      .map(([x, y]) => x.toFixed(1) + "," + y.toFixed(1));
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", coordinates.join(" "));
    line.setAttribute("stroke", color);
    line.dataset.series = name;
    line.dataset.total = points.reduce((sum, v) => sum + (v || 0), 0);
    svg.append(line);
    const swatch = el("i");
    swatch.style.background = color;
    const entry = el("span");
    entry.append(swatch, document.createTextNode(name));
    legend.append(entry);
  });
}

function renderCharts(timeline) {
  const answers = timeline.answers.map((series) => [series.provider, series.per_second]);
  chart("chart-answers", "legend-answers", [...answers, ["proxy", timeline.proxy]]);
  chart("chart-ttfb", "legend-ttfb", [["p50", timeline.ttfb_p50_ms], ["p99", timeline.ttfb_p99_ms]]);
  chart("chart-faults", "legend-faults", [["429s", timeline.rate_limited], ["failovers", timeline.failovers]]);
}

function limits(key) {
  const named = [["rpm", "rpm"], ["tpm", "tpm"], ["max_parallel", "parallel"],
    ["daily_tokens", "daily"], ["monthly_tokens", "monthly"], ["models", "models"]];
  const set = named.filter(([field]) => key[field] !== null).map(([field, label]) => label + " " + key[field]);
  return set.length ? set.join(", ") : "none";
}

function renderClients(clients, limited) {
  const off = clients.status === 404;
  $("clients-off").hidden = !off;
  $("clients").hidden = off;
  if (off) return;
  const body = $("clients").tBodies[0];
  body.replaceChildren();
  for (const key of clients.body.keys) {
    const row = el("tr");
    row.dataset.client = key.name;
    let now = key.revoked ? ["revoked", "bad"] : ["ok", "good"];
    if (!key.revoked && limited[key.name] !== undefined) now = ["limited", "warn"];
    const action = el("button", key.revoked ? "Enable" : "Revoke");
    action.addEventListener("click", async () => {
      action.disabled = true;
      await call("/admin/keys/" + key.id + (key.revoked ? "/enable" : "/revoke"), "POST");
      refresh();
    });
    const cell = el("td");
    cell.append(action);
    row.append(el("td", key.id), el("td", key.name), el("td", limits(key)), el("td", key.tokens_today),
      el("td", key.tokens_this_month), el("td", key.expires_at || "never", "muted"),
      el("td", now[0], "state " + now[1]), cell);
    body.append(row);
  }
}

function start() {
  if (!sessionStorage.getItem(TOKEN)) return showLogin();
  refresh();
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN, $("token").value.trim());
    $("token").value = "";
    start();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN);
    showLogin();
  });
  // Countdowns move every second between refreshes.
  setInterval(() => lastStatus && !$("board").hidden && renderProviders(), 1000);
  start();
});
