/**
 * Compare N experiments: their metric curves overlaid (hover values, log scale, smoothing, x by
 * step or time), and their params and metrics side by side with what `rep diff` shows.
 *
 * @module
 */

/** Plain JavaScript, run in the browser. */
export const COMPARE_JS: string = String.raw`
async function seriesOf(ids) {
  const missing = ids.filter((id) => {
    const e = S.byId.get(id);
    const c = S.seriesCache.get(id);
    return !c || !e || c.n !== e.num_checkpoints || e.status === "running";
  });
  if (missing.length) {
    const r = await api("/api/series?ids=" + missing.join(","));
    for (const [id, pts] of Object.entries(r.series)) {
      const e = S.byId.get(id);
      S.seriesCache.set(id, { n: e ? e.num_checkpoints : pts.length, pts });
    }
  }
  const out = {};
  for (const id of ids) out[id] = S.seriesCache.get(id) ? S.seriesCache.get(id).pts : [];
  return out;
}

function xOf(c, i, e, mode) {
  if (mode === "time") return Date.parse(c.created);
  if (mode === "relative") return Date.parse(c.created) - Date.parse(e.created);
  return c.step === null ? i : c.step;
}

function chartControls(onChange, names) {
  const c = S.chart;
  const xSel = el("select", { id: "x-axis", "aria-label": "x axis" },
    ...[["step", "x: step"], ["time", "x: wall time"], ["relative", "x: time since start"]].map(([v, t]) => el("option", { value: v, selected: c.x === v }, t)));
  xSel.addEventListener("change", () => { c.x = xSel.value; onChange(); });
  const log = el("input", { type: "checkbox", id: "log-y" });
  log.checked = c.log;
  log.addEventListener("change", () => { c.log = log.checked; onChange(); });
  const sm = el("input", { type: "range", id: "smoothing", min: "0", max: "0.99", step: "0.01", value: String(c.smooth) });
  const smv = el("span", { class: "muted mono" }, c.smooth.toFixed(2));
  sm.addEventListener("input", () => { c.smooth = Number(sm.value); smv.textContent = c.smooth.toFixed(2); onChange(); });
  const bar = el("div", { class: "toolbar small" }, xSel,
    el("label", {}, log, " log scale"),
    el("label", {}, "smoothing ", sm, " ", smv));
  if (names) {
    const pick = el("div", { class: "metric-pick" });
    const chosen = c.metrics && c.metrics.filter((m) => names.includes(m)).length ? c.metrics : names.slice(0, 6);
    for (const m of names) {
      const b = el("button", { class: "chip" + (chosen.includes(m) ? " on" : ""), "data-metric": m }, m);
      b.addEventListener("click", () => {
        const cur = c.metrics && c.metrics.filter((x) => names.includes(x)).length ? c.metrics : names.slice(0, 6);
        c.metrics = cur.includes(m) ? cur.filter((x) => x !== m) : [...cur, m];
        onChange(true);
      });
      pick.append(b);
    }
    bar.append(pick);
  }
  return bar;
}

function chartedMetrics(names) {
  const c = S.chart;
  return c.metrics && c.metrics.filter((m) => names.includes(m)).length ? names.filter((m) => c.metrics.includes(m)) : names.slice(0, 6);
}

function metricCharts(exps, series, ids) {
  const names = [];
  const seen = new Set();
  const prim = exps.map((e) => e.primary_metric && e.primary_metric.name).filter(Boolean);
  for (const e of exps) for (const c of series[e.id] || []) for (const k of Object.keys(c.metrics)) seen.add(k);
  for (const p of prim) if (seen.has(p) && !names.includes(p)) names.push(p);
  for (const k of [...seen].sort()) if (!names.includes(k)) names.push(k);
  return { names, draw: (grid) => {
    grid.replaceChildren(...chartedMetrics(names).map((m) => lineChart({
      title: m, x: S.chart.x, log: S.chart.log, smooth: S.chart.smooth,
      series: exps.map((e) => ({ id: e.id, label: label(e), color: colorFor(ids, e.id),
        points: (series[e.id] || []).map((c, i) => [xOf(c, i, e, S.chart.x), c.metrics[m]]).filter((p) => p[1] !== undefined) })),
    })));
    if (!names.length) grid.append(el("p", { class: "empty" }, "These experiments have no numeric metrics."));
  } };
}

async function renderCompare(root, ids) {
  const exps = ids.map((id) => S.list.find((e) => e.id.startsWith(id))).filter(Boolean);
  const full = exps.map((e) => e.id);
  root.append(el("div", { class: "page-head" }, el("h2", {}, "Compare " + exps.length + " experiment" + (exps.length === 1 ? "" : "s")),
    el("div", { class: "chips" }, ...exps.map((e) => el("span", { class: "exp-chip", "data-id": e.id },
      el("span", { class: "swatch", style: { background: colorFor(full, e.id) } }),
      link("#/e/" + e.id, label(e)), " ", statusPill(e.status),
      el("button", { class: "x", title: "remove from the comparison", "aria-label": "remove " + shortId(e.id),
        onclick: () => { S.selected.delete(e.id); go(compareHash(full.filter((x) => x !== e.id))); } }, "×")))),
    link("#/", "← pick experiments in the table", "muted")));
  if (!exps.length) {
    root.append(el("p", { class: "empty" }, "Select experiments in the table (the checkboxes), then Compare."));
    return;
  }
  for (const id of full) S.selected.add(id);
  const chartsSec = el("section", { class: "card" }, el("h3", {}, "Metrics"));
  const grid = el("div", { class: "chart-grid", id: "compare-charts" });
  const sideSec = el("section", { class: "card" }, el("h3", {}, "Side by side"));
  const diffSec = el("section", { class: "card" }, el("h3", {}, "What differs (rep diff)"));
  root.append(chartsSec, sideSec, diffSec);
  chartsSec.append(el("p", { class: "muted" }, "loading curves…"));
  try {
    const series = await seriesOf(full);
    const mc = metricCharts(exps, series, full);
    const redraw = (pickChanged) => {
      if (pickChanged) { chartsSec.replaceChildren(el("h3", {}, "Metrics"), chartControls(redraw, mc.names), grid); }
      mc.draw(grid);
    };
    chartsSec.replaceChildren(el("h3", {}, "Metrics"), chartControls(redraw, mc.names), grid);
    mc.draw(grid);
  } catch (err) {
    chartsSec.append(errorBox(err));
  }
  sideSec.append(sideBySide(exps, full));
  diffSec.append(el("p", { class: "muted" }, "comparing…"));
  try {
    const d = await api("/api/compare?ids=" + full.join(","));
    diffSec.replaceChildren(el("h3", {}, "What differs (rep diff)"), diffView(d, exps, full));
  } catch (err) {
    diffSec.replaceChildren(el("h3", {}, "What differs (rep diff)"), errorBox(err));
  }
}

/** Params and best metrics of every experiment, differing rows first and marked. */
function sideBySide(exps, ids) {
  let onlyDiff = load("onlyDiff") === true;
  const wrap = el("div", {});
  const draw = () => {
    const params = paramNames(exps);
    const metrics = metricNamesOf(exps);
    const rows = [
      ["status", (e) => e.status],
      ["created", (e) => when(e.created)],
      ["duration", (e) => fmtDur(durationMs(e))],
      ["checkpoint", (e) => { const c = shownCheckpoint(e); return c ? shortId(c.id) + (c.step === null ? "" : " (step " + c.step + ")") : "(none)"; }],
      ["tags", (e) => (e.tags || []).join(", ")],
      ["note", (e) => e.note || ""],
    ].map(([k, f]) => ({ group: "", key: k, vals: exps.map(f) }));
    for (const p of params) rows.push({ group: "params", key: p, vals: exps.map((e) => e.params[p]) });
    for (const m of metrics) rows.push({ group: "metrics (of the best checkpoint, else the latest)", key: m, vals: exps.map((e) => metricOf(e, m)), metric: m });
    const differs = (r) => r.vals.some((v) => JSON.stringify(v ?? null) !== JSON.stringify(r.vals[0] ?? null));
    const box = el("input", { type: "checkbox", id: "only-diff" });
    box.checked = onlyDiff;
    box.addEventListener("change", () => { onlyDiff = box.checked; store("onlyDiff", onlyDiff); draw(); });
    const head = el("tr", {}, el("th", {}, ""), ...exps.map((e) => el("th", {},
      el("span", { class: "swatch", style: { background: colorFor(ids, e.id) } }), link("#/e/" + e.id, label(e), "mono"))));
    let group = null;
    const body = [];
    for (const r of rows) {
      if (onlyDiff && r.group && !differs(r)) continue;
      if (r.group !== group) {
        group = r.group;
        if (group) body.push(el("tr", { class: "group" }, el("td", { colspan: exps.length + 1 }, group)));
      }
      const goal = r.metric ? goalOf(r.metric) : null;
      const nums = r.vals.filter((v) => typeof v === "number");
      const best = goal && nums.length > 1 ? (goal === "minimize" ? Math.min(...nums) : Math.max(...nums)) : null;
      body.push(el("tr", { class: differs(r) ? "diff" : "" }, el("th", { class: "key" }, r.key),
        ...r.vals.map((v) => el("td", { class: (typeof v === "number" ? "num" : "") + (best !== null && v === best ? " best" : "") },
          typeof v === "number" ? fmtNum(v) : fmtVal(v)))));
    }
    wrap.replaceChildren(el("label", { class: "muted" }, box, " only params and metrics that differ"),
      el("div", { class: "table-wrap" }, el("table", { class: "side grid-table", id: "side-by-side" }, el("thead", {}, head), el("tbody", {}, ...body))));
  };
  draw();
  return wrap;
}

function diffTable(title, rows, exps, ids) {
  const entries = Object.entries(rows || {});
  if (!entries.length) return null;
  return el("div", { class: "diff-block" }, el("h4", {}, title),
    el("table", { class: "side grid-table" },
      el("thead", {}, el("tr", {}, el("th", {}, ""), ...exps.map((e) => el("th", {}, el("span", { class: "swatch", style: { background: colorFor(ids, e.id) } }), label(e))))),
      el("tbody", {}, ...entries.map(([k, vals]) => el("tr", {}, el("th", { class: "key" }, k),
        ...vals.map((v) => el("td", {}, v === null ? el("span", { class: "muted" }, "—") : fmtVal(v))))))));
}

function diffLines(text) {
  return el("pre", { class: "diff" }, ...text.split("\n").map((l) => el("span", {
    class: l.startsWith("+++") || l.startsWith("---") ? "dh" : l.startsWith("+") ? "da" : l.startsWith("-") ? "dd" : l.startsWith("@@") ? "dc" : "",
  }, l + "\n")));
}

function diffView(d, exps, ids) {
  const wrap = el("div", {});
  const parts = [
    diffTable("Experiment", d.experiment, exps, ids),
    diffTable("Params", d.params, exps, ids),
    diffTable("Metrics (of each one's best checkpoint)", d.metrics, exps, ids),
    diffTable("Environment", Object.fromEntries(Object.entries(d.environment).filter(([k]) => k !== "packages")), exps, ids),
    diffTable("Python packages", d.environment.packages, exps, ids),
  ].filter(Boolean);
  wrap.append(...parts);
  for (const c of d.comparisons) {
    const a = exps[c.from], b = exps[c.to];
    if (!a || !b) continue;
    const f = c.files;
    const lines = [...f.added.map((p) => ["added", p]), ...f.removed.map((p) => ["removed", p]), ...f.changed.map((p) => ["changed", p])];
    const code = c.code || [];
    if (!lines.length && !code.length) continue;
    const sec = el("div", { class: "diff-block" }, el("h4", {}, label(a) + " → " + label(b)));
    if (lines.length) sec.append(el("div", { class: "muted" }, "checkpoint files"), el("ul", { class: "files" }, ...lines.map(([k, p]) => el("li", {}, el("span", { class: "chg " + k }, k), " ", p))));
    for (const cd of code) {
      const det = el("details", { open: code.length <= 3 }, el("summary", {}, el("span", { class: "chg " + cd.change }, cd.change), " ", cd.path,
        cd.binary ? " (binary)" : cd.too_large ? " (too large to diff)" : ""));
      if (cd.diff) det.append(diffLines(cd.diff));
      sec.append(det);
    }
    wrap.append(sec);
  }
  if (!wrap.childNodes.length) wrap.append(el("p", { class: "muted" }, "No differences beyond what the tables above show."));
  return wrap;
}
`;
