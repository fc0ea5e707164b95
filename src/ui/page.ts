/**
 * The viewer's single page: HTML, CSS and plain JavaScript, no external assets (works offline and
 * inside the compiled binary). Everything read from the repository is inserted as text, never as
 * HTML, since a repository may be hostile.
 *
 * @module
 */

/** The page served at `/`. */
export const PAGE: string = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rep</title>
<style>
  :root { --fg:#1d2330; --muted:#6b7280; --line:#e5e7eb; --bg:#fafafa; --accent:#2563eb; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, sans-serif; color:var(--fg); background:var(--bg); }
  header { display:flex; gap:1em; align-items:baseline; padding:.7em 1.2em; background:#111827; color:#f9fafb; }
  header h1 { margin:0; font-size:1.2em; }
  header .repo { color:#9ca3af; font-family:ui-monospace, monospace; font-size:.9em; }
  main { display:grid; grid-template-columns:minmax(0,3fr) minmax(0,2fr); gap:1em; padding:1em; }
  section { background:#fff; border:1px solid var(--line); border-radius:6px; padding:.8em; min-width:0; }
  h2 { font-size:1em; margin:.1em 0 .6em; }
  table { border-collapse:collapse; width:100%; }
  th, td { text-align:left; padding:.25em .5em; border-bottom:1px solid var(--line); white-space:nowrap; }
  th { font-weight:600; color:var(--muted); font-size:.85em; }
  td.id, .mono { font-family:ui-monospace, monospace; }
  tr.exp { cursor:pointer; }
  tr.exp:hover, tr.sel { background:#eff6ff; }
  .status-running { color:#0891b2; } .status-succeeded { color:#16a34a; }
  .status-failed, .status-crashed { color:#dc2626; } .status-stopped { color:#ca8a04; }
  .scroll { overflow-x:auto; }
  .controls { display:flex; gap:.6em; align-items:center; margin-bottom:.6em; flex-wrap:wrap; }
  input[type=search] { padding:.3em .5em; border:1px solid var(--line); border-radius:4px; min-width:14em; }
  select { padding:.2em; }
  svg text { font-size:11px; fill:var(--muted); }
  .legend span { display:inline-block; margin-right:1em; font-family:ui-monospace, monospace; }
  .kv td:first-child { color:var(--muted); width:9em; }
  .empty { color:var(--muted); padding:1em 0; }
  .err { color:#dc2626; }
  a { color:var(--accent); }
</style>
</head>
<body>
<header><h1>rep</h1><span class="repo" id="repo"></span><span id="updated" class="repo"></span></header>
<main>
  <section>
    <div class="controls">
      <h2 style="margin:0">Experiments</h2>
      <input type="search" id="q" placeholder="filter: id, status, param, host…">
      <span id="count" class="repo"></span>
    </div>
    <div class="scroll"><table id="exps"><thead></thead><tbody></tbody></table></div>
    <p id="none" class="empty" hidden>No experiments yet. Run one with: rep run -- python train.py</p>
  </section>
  <section>
    <div class="controls">
      <h2 style="margin:0">Metric</h2>
      <select id="metric"></select>
      <span class="repo">checked experiments, by step</span>
    </div>
    <svg id="chart" width="100%" height="260" viewBox="0 0 520 260" role="img" aria-label="metric chart"></svg>
    <div class="legend" id="legend"></div>
    <div id="detail"></div>
  </section>
</main>
<script>
"use strict";
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#ca8a04", "#9333ea", "#0891b2", "#db2777", "#4b5563"];
let experiments = [];
let checked = new Set();
let selected = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}
function svg(tag, attrs, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text != null) e.textContent = String(text);
  return e;
}
function fmt(v) {
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(Number(v.toPrecision(4)));
  }
  return v == null ? "" : String(v);
}
function ago(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.floor(s) + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m ago";
  if (s < 86400) return Math.floor(s / 3600) + "h ago";
  return iso.slice(0, 10);
}
async function get(path) {
  const r = await fetch(path);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
function differingParams(list) {
  const names = new Set();
  for (const e of list) for (const k of Object.keys(e.params)) names.add(k);
  return [...names].filter((n) => new Set(list.map((e) => JSON.stringify(e.params[n]))).size > 1 || list.length === 1).sort();
}
function metricNames(list) {
  const names = new Set();
  for (const e of list) for (const c of e.metrics_by_step) for (const [k, v] of Object.entries(c.metrics)) if (typeof v === "number") names.add(k);
  const prim = list.map((e) => e.primary_metric && e.primary_metric.name).filter(Boolean);
  return [...new Set([...prim.filter((p) => names.has(p)), ...[...names].sort()])];
}
function renderTable() {
  const q = document.getElementById("q").value.trim().toLowerCase();
  const list = experiments.filter((e) => !q || JSON.stringify([e.id, e.status, e.params, e.host, e.user, e.tags, e.command]).toLowerCase().includes(q));
  const params = differingParams(list);
  const thead = document.querySelector("#exps thead");
  const tbody = document.querySelector("#exps tbody");
  thead.replaceChildren(el("tr", {}, el("th", {}, ""), el("th", {}, "id"), el("th", {}, "created"), el("th", {}, "status"),
    ...params.map((p) => el("th", {}, p)), el("th", {}, "best"), el("th", {}, "metrics")));
  tbody.replaceChildren(...list.map((e, i) => {
    const best = e.best_checkpoint || e.latest_checkpoint;
    const box = el("input", { type: "checkbox", "aria-label": "plot " + e.id.slice(0, 7) });
    box.checked = checked.has(e.id);
    box.addEventListener("click", (ev) => { ev.stopPropagation(); if (box.checked) checked.add(e.id); else checked.delete(e.id); renderChart(); });
    const tr = el("tr", { class: "exp" + (selected === e.id ? " sel" : ""), "data-id": e.id, onclick: () => select(e.id) },
      el("td", {}, box), el("td", { class: "id" }, e.id.slice(0, 7)), el("td", { title: e.created }, ago(e.created)),
      el("td", { class: "status-" + e.status }, e.status), ...params.map((p) => el("td", {}, fmt(e.params[p]))),
      el("td", { class: "mono" }, best ? best.id.slice(0, 7) + (best.step == null ? "" : " (step " + best.step + ")") : ""),
      el("td", {}, best ? Object.entries(best.metrics).slice(0, 4).map(([k, v]) => k + " " + fmt(v)).join("  ") : ""));
    return tr;
  }));
  document.getElementById("count").textContent = list.length + " of " + experiments.length;
  document.getElementById("none").hidden = experiments.length > 0;
}
function renderChart() {
  const chart = document.getElementById("chart");
  const legend = document.getElementById("legend");
  const sel = document.getElementById("metric");
  const list = experiments.filter((e) => checked.has(e.id));
  const names = metricNames(list.length ? list : experiments);
  const current = sel.value;
  sel.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
  if (names.includes(current)) sel.value = current;
  const metric = sel.value;
  chart.replaceChildren();
  legend.replaceChildren();
  const series = list.map((e) => ({ id: e.id, points: e.metrics_by_step
    .map((c, i) => [c.step == null ? i : c.step, c.metrics[metric]])
    .filter((p) => typeof p[1] === "number" && Number.isFinite(p[1])).sort((a, b) => a[0] - b[0]) }));
  const pts = series.flatMap((s) => s.points);
  if (!metric || !pts.length) {
    chart.append(svg("text", { x: 20, y: 130 }, list.length ? "no values of this metric" : "check experiments to plot them"));
    return;
  }
  const W = 520, H = 260, L = 56, R = 10, T = 10, B = 28;
  let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
  let y0 = Math.min(...pts.map((p) => p[1])), y1 = Math.max(...pts.map((p) => p[1]));
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= Math.abs(y0 || 1) * 0.1; y1 += Math.abs(y1 || 1) * 0.1; }
  const sx = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
  const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  chart.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#d1d5db" }));
  chart.append(svg("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#d1d5db" }));
  for (const y of [y0, (y0 + y1) / 2, y1]) chart.append(svg("text", { x: 4, y: sy(y) + 4 }, fmt(y)));
  chart.append(svg("text", { x: L, y: H - 8 }, "step " + fmt(x0)));
  chart.append(svg("text", { x: W - R - 30, y: H - 8 }, fmt(x1)));
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    if (s.points.length) {
      chart.append(svg("polyline", { class: "series", "data-id": s.id, fill: "none", stroke: color, "stroke-width": 2,
        points: s.points.map((p) => sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join(" ") }));
      for (const p of s.points) chart.append(svg("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 2.5, fill: color }));
    }
    legend.append(el("span", { style: "color:" + color }, "— " + s.id.slice(0, 7)));
  });
}
async function select(id) {
  selected = id;
  renderTable();
  const detail = document.getElementById("detail");
  detail.replaceChildren(el("p", { class: "empty" }, "loading…"));
  try {
    const e = await get("/api/experiments/" + id);
    const r = e.record;
    const rows = [["id", e.id], ["status", e.status + (e.exit_code == null ? "" : " (exit " + e.exit_code + ")")],
      ["created", r.created], ["command", r.command.join(" ")], ["host", r.host + " / " + r.user],
      ["git", r.git ? (r.git.commit || "").slice(0, 10) + " " + (r.git.branch || "") + (r.git.dirty ? " (dirty)" : "") : ""],
      ["code", r.code ? r.code.files + " file(s)" : "no snapshot"],
      ["params", Object.entries(r.params).map(([k, v]) => k + "=" + fmt(v)).join("  ")]];
    const kv = el("table", { class: "kv" }, ...rows.map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", { class: "mono" }, v))));
    const names = [...new Set(e.checkpoints.flatMap((c) => Object.keys(c.metrics)))];
    const cks = el("table", {}, el("tr", {}, el("th", {}, "checkpoint"), el("th", {}, "step"), ...names.map((n) => el("th", {}, n)), el("th", {}, "files")),
      ...e.checkpoints.map((c) => {
        const files = el("td", {});
        if (c.files) files.append(el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); showFiles(c.id, files); } }, c.files.files + " file(s)"));
        const best = e.best_checkpoint && e.best_checkpoint.id === c.id;
        return el("tr", {}, el("td", { class: "mono" }, c.id.slice(0, 7) + (best ? " *" : "")), el("td", {}, c.step == null ? "" : c.step),
          ...names.map((n) => el("td", {}, fmt(c.metrics[n]))), files);
      }));
    detail.replaceChildren(el("h2", {}, "Experiment " + e.id.slice(0, 7)), kv, el("h2", {}, "Checkpoints"), el("div", { class: "scroll" }, cks));
  } catch (err) {
    detail.replaceChildren(el("p", { class: "err" }, String(err.message || err)));
  }
}
async function showFiles(id, cell) {
  const files = await get("/api/checkpoints/" + id + "/files");
  cell.replaceChildren(...files.map((f) => el("div", {}, el("a", { href: "/api/checkpoints/" + id + "/file?path=" + encodeURIComponent(f.path) }, f.path), " " + f.size + " B")));
}
async function refresh() {
  try {
    experiments = await get("/api/experiments");
    if (!checked.size) for (const e of experiments.slice(0, 5)) checked.add(e.id);
    renderTable();
    renderChart();
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    document.getElementById("updated").textContent = "error: " + (err.message || err);
  }
  setTimeout(refresh, experiments.some((e) => e.status === "running") ? 3000 : 15000);
}
document.getElementById("q").addEventListener("input", renderTable);
document.getElementById("metric").addEventListener("change", renderChart);
get("/api/repository").then((r) => { document.getElementById("repo").textContent = r.url; });
refresh();
</script>
</body>
</html>
`;
