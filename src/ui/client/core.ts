/**
 * The viewer's shared client code: state, DOM helpers (text only: repository strings never become
 * HTML), formatting, the API client and the router.
 *
 * @module
 */

/** Plain JavaScript, run in the browser. */
export const CORE_JS: string = String.raw`
"use strict";
const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777",
  "#65a30d", "#ea580c", "#4f46e5", "#0d9488", "#be123c"];
const STATUSES = ["running", "succeeded", "failed", "stopped", "crashed"];
const STATUS_COLOR = { running: "#0891b2", succeeded: "#16a34a", failed: "#dc2626", stopped: "#d97706", crashed: "#9333ea" };

const S = {
  repo: null,
  list: [],
  byId: new Map(),
  serverNow: Date.now(),
  fetched: 0,
  error: null,
  selected: new Set(),
  sort: { key: "f:created", desc: true },
  status: "all",
  query: "",
  queryIds: null,
  queryError: null,
  limit: 200,
  cols: null,
  chart: { x: "step", log: false, smooth: 0, metrics: null },
  explore: { x: null, y: null, agg: "auto", logX: false, logY: false, axes: null, color: null },
  seriesCache: new Map(),
  statsCache: null,
};

// ---- DOM: everything from the repository goes in as text -----------------------------------
function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = String(v);
      else if (k === "style") Object.assign(e.style, v);
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
  }
  for (const c of kids.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const SVGNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function clear(node) { node.replaceChildren(); return node; }

// ---- formatting ------------------------------------------------------------------------------
function shortId(id) { return id ? id.slice(0, 7) : ""; }
function fmtNum(v) {
  if (typeof v !== "number") return v === null || v === undefined ? "" : String(v);
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e9) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return String(Number(v.toPrecision(4)));
}
function fmtVal(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return fmtNum(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (Array.isArray(v)) return v.map(fmtVal).join(", ");
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}
function fmtBytes(n) {
  if (n === null || n === undefined) return "";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(n < 10 ? 1 : 0)) + " " + u[i];
}
function fmtDur(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "";
  const s = Math.max(0, ms) / 1000;
  if (s < 60) return (s < 10 ? s.toFixed(1) : String(Math.floor(s))) + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m " + Math.floor(s % 60) + "s";
  const h = Math.floor(m / 60);
  if (h < 48) return h + "h " + (m % 60) + "m";
  return Math.floor(h / 24) + "d " + (h % 24) + "h";
}
function ago(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  const s = Math.max(0, (Date.now() - t) / 1000);
  if (s < 60) return Math.floor(s) + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m ago";
  if (s < 86400) return Math.floor(s / 3600) + "h ago";
  if (s < 86400 * 30) return Math.floor(s / 86400) + "d ago";
  return iso.slice(0, 10);
}
function when(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleString();
}
function label(e) { return e.name ? e.name : shortId(e.id); }
function durationMs(e) { return e.status === "running" ? Date.now() - Date.parse(e.created) : e.duration_ms; }

function statusPill(status, extra) {
  return el("span", { class: "pill st-" + status, title: extra || null }, status);
}
function tagChips(tags) {
  return (tags || []).map((t) => el("span", { class: "tag" }, t));
}

// ---- API -------------------------------------------------------------------------------------
async function api(path) {
  const r = await fetch(path, { headers: { accept: "application/json" } });
  let body = null;
  try { body = await r.json(); } catch { body = null; }
  if (!r.ok) {
    const err = new Error((body && body.error) || r.status + " " + r.statusText);
    err.hint = body && body.hint;
    throw err;
  }
  return body;
}
function errorBox(err) {
  return el("div", { class: "error" }, el("strong", {}, "Error: "), String(err.message || err),
    err.hint ? el("div", { class: "hint" }, err.hint) : null);
}

// ---- values of experiments -------------------------------------------------------------------
function shownCheckpoint(e) { return e.best_checkpoint || e.latest_checkpoint; }
function metricOf(e, name) {
  const c = shownCheckpoint(e);
  return c ? c.metrics[name] : undefined;
}
function goalOf(name) {
  for (const e of S.list) if (e.primary_metric && e.primary_metric.name === name) return e.primary_metric.goal;
  return null;
}
function paramNames(list) {
  const s = new Set();
  for (const e of list) for (const k of Object.keys(e.params)) s.add(k);
  return [...s].sort();
}
function differing(list, get) {
  if (list.length < 2) return true;
  const first = JSON.stringify(get(list[0]) ?? null);
  return list.some((e) => JSON.stringify(get(e) ?? null) !== first);
}
function metricNamesOf(list) {
  const all = new Set();
  const prim = new Set();
  for (const e of list) {
    const c = shownCheckpoint(e);
    if (c) for (const [k, v] of Object.entries(c.metrics)) if (typeof v === "number") all.add(k);
    if (e.primary_metric) prim.add(e.primary_metric.name);
  }
  const first = [...prim].filter((n) => all.has(n)).sort();
  return [...first, ...[...all].filter((n) => !prim.has(n)).sort()];
}

/** The experiments the table shows (search and status applied), in its order. */
function filtered() {
  let list = S.list;
  if (S.queryIds) list = list.filter((e) => S.queryIds.has(e.id));
  else if (S.query && !S.queryError) {
    const q = S.query.toLowerCase();
    list = list.filter((e) => textOf(e).includes(q));
  }
  if (S.status !== "all") list = list.filter((e) => e.status === S.status);
  return list;
}
function textOf(e) {
  return [e.id, e.name || "", e.status, e.user, e.host, (e.command || []).join(" "),
    (e.tags || []).join(" "), e.note || "",
    Object.entries(e.params).map(([k, v]) => k + "=" + fmtVal(v)).join(" ")].join(" ").toLowerCase();
}
function looksLikeFilter(q) { return /[=<>~]/.test(q); }

// ---- routing ---------------------------------------------------------------------------------
function route() {
  const h = location.hash.replace(/^#\/?/, "");
  const [view, arg, tab] = h.split("/");
  if (view === "compare") return { view: "compare", ids: (arg || "").split(",").filter((x) => /^[0-9a-f]{4,32}$/.test(x)) };
  if (view === "explore") return { view: "explore" };
  if (view === "e" && arg && /^[0-9A-Za-z][0-9A-Za-z._-]{0,99}$/.test(arg)) return { view: "detail", id: arg, tab: tab || "overview" };
  return { view: "table" };
}
function go(hash) { if (location.hash !== hash) location.hash = hash; else render(); }
function link(hash, text, cls) {
  return el("a", { href: hash, class: cls || null }, text);
}
function compareHash(ids) { return "#/compare/" + ids.map((id) => id.slice(0, 12)).join(","); }

function colorFor(ids, id) { return PALETTE[Math.max(0, ids.indexOf(id)) % PALETTE.length]; }

function store(key, value) {
  try { localStorage.setItem("rep-ui:" + (S.repo ? S.repo.url : "") + ":" + key, JSON.stringify(value)); } catch {}
}
function load(key) {
  try { return JSON.parse(localStorage.getItem("rep-ui:" + (S.repo ? S.repo.url : "") + ":" + key) || "null"); } catch { return null; }
}
`;
