/**
 * Params versus metrics across the experiments the table shows: a scatter of any param against
 * the best value of any metric, and parallel coordinates.
 *
 * @module
 */

/** Plain JavaScript, run in the browser. */
export const EXPLORE_JS: string = String.raw`
async function statsOf() {
  const key = S.list.map((e) => e.id + ":" + e.num_checkpoints).join(",");
  if (!S.statsCache || S.statsCache.key !== key) S.statsCache = { key, stats: (await api("/api/stats")).stats };
  return S.statsCache.stats;
}

/** The value of a metric for an experiment: best by its goal, or min, max, last. */
function aggValue(stats, e, metric, agg) {
  const s = stats[e.id] && stats[e.id][metric];
  if (!s) return undefined;
  const [min, max, last] = s;
  let how = agg;
  if (how === "auto") {
    const goal = (e.primary_metric && e.primary_metric.name === metric ? e.primary_metric.goal : null) || goalOf(metric);
    how = goal === "maximize" ? "max" : goal === "minimize" ? "min" : "last";
  }
  return how === "min" ? min : how === "max" ? max : last;
}

function aggLabel(agg, metric) {
  if (agg !== "auto") return agg + " " + metric;
  const g = goalOf(metric);
  return (g === "maximize" ? "best (max) " : g === "minimize" ? "best (min) " : "last ") + metric;
}

async function renderExplore(root) {
  const list = filtered();
  const X = S.explore;
  root.append(el("div", { class: "page-head" }, el("h2", {}, "Params vs metrics"),
    el("span", { class: "muted" }, list.length + " experiment" + (list.length === 1 ? "" : "s") +
      (list.length !== S.list.length ? " (the table's search and status filter apply)" : "")),
    link("#/", "← table", "muted")));
  const body = el("div", {});
  root.append(body);
  body.append(el("p", { class: "muted" }, "loading…"));
  let stats;
  try { stats = await statsOf(); } catch (err) { body.replaceChildren(errorBox(err)); return; }
  const params = paramNames(list);
  const metricSet = new Set();
  for (const e of list) for (const k of Object.keys(stats[e.id] || {})) metricSet.add(k);
  const prim = list.map((e) => e.primary_metric && e.primary_metric.name).filter((m) => m && metricSet.has(m));
  const metrics = [...new Set([...prim, ...[...metricSet].sort()])];
  if (!params.length || !metrics.length) {
    body.replaceChildren(el("p", { class: "empty" }, "Needs experiments with params and numeric metrics."));
    return;
  }
  // Params most experiments have that tell them apart.
  const varying = params.filter((p) => differing(list, (e) => e.params[p]) &&
    list.filter((e) => e.params[p] !== undefined).length * 5 >= list.length);
  if (!X.x || !params.includes(X.x)) X.x = varying[0] || params[0];
  if (!X.y || !metrics.includes(X.y)) X.y = metrics[0];
  if (!X.axes) X.axes = varying.slice(0, 6);
  X.axes = X.axes.filter((a) => params.includes(a));
  const sel = (id, opts, cur, on) => {
    const s = el("select", { id }, ...opts.map(([v, t]) => el("option", { value: v, selected: v === cur }, t)));
    s.addEventListener("change", () => on(s.value));
    return s;
  };
  const check = (id, cur, on) => {
    const b = el("input", { type: "checkbox", id });
    b.checked = cur;
    b.addEventListener("change", () => on(b.checked));
    return b;
  };
  const redraw = () => { clear(root); renderExplore(root); };
  const xs = list.map((e) => e.params[X.x]).filter((v) => v !== undefined && v !== null);
  const cat = xs.some((v) => typeof v !== "number");
  // A param swept over orders of magnitude (a learning rate) reads best on a log axis.
  X.logXFor = X.logXFor || {};
  if (X.logXFor[X.x] === undefined) {
    const pos = xs.filter((v) => typeof v === "number" && v > 0);
    X.logXFor[X.x] = !cat && pos.length === xs.length && pos.length > 1 && Math.max(...pos) / Math.min(...pos) >= 100;
  }
  X.logX = X.logXFor[X.x];
  const controls = el("div", { class: "toolbar" },
    el("label", {}, "param ", sel("scatter-x", params.map((p) => [p, p]), X.x, (v) => { X.x = v; redraw(); })),
    el("label", {}, "metric ", sel("scatter-y", metrics.map((m) => [m, m]), X.y, (v) => { X.y = v; redraw(); })),
    el("label", {}, "value ", sel("agg", [["auto", "best (by goal)"], ["min", "min"], ["max", "max"], ["last", "last"]], X.agg, (v) => { X.agg = v; redraw(); })),
    el("label", {}, check("log-x", X.logX, (v) => { X.logXFor[X.x] = v; redraw(); }), " log x"),
    el("label", {}, check("log-y2", X.logY, (v) => { X.logY = v; redraw(); }), " log y"));
  const cats = cat ? [...new Set(xs.map(fmtVal))].sort() : null;
  const points = [];
  for (const e of list) {
    const pv = e.params[X.x];
    const y = aggValue(stats, e, X.y, X.agg);
    if (pv === undefined || pv === null || y === undefined) continue;
    points.push({ id: e.id, label: label(e) + " · " + e.status, x: cat ? cats.indexOf(fmtVal(pv)) : pv, y,
      color: STATUS_COLOR[e.status], extra: Object.entries(e.params).filter(([k]) => k !== X.x).slice(0, 4).map(([k, v]) => k + "=" + fmtVal(v)).join("  ") });
  }
  const scatter = scatterChart({ points, xCats: cats, xLabel: X.x, yLabel: aggLabel(X.agg, X.y), logX: X.logX && !cat, logY: X.logY,
    onClick: (id) => go("#/e/" + id) });
  const axisPick = el("div", { class: "metric-pick" }, el("span", { class: "muted" }, "axes: "),
    ...params.map((p) => {
      const b = el("button", { class: "chip" + (X.axes.includes(p) ? " on" : ""), "data-axis": p }, p);
      b.addEventListener("click", () => { X.axes = X.axes.includes(p) ? X.axes.filter((a) => a !== p) : [...X.axes, p]; redraw(); });
      return b;
    }));
  const axes = X.axes.map((p) => ({ name: p, values: new Map(list.map((e) => [e.id, e.params[p]])) }));
  axes.push({ name: aggLabel(X.agg, X.y), values: new Map(list.map((e) => [e.id, aggValue(stats, e, X.y, X.agg)])) });
  const par = parallelChart({ axes, rows: list.map((e) => ({ id: e.id, label: label(e) })), onClick: (id) => go("#/e/" + id) });
  body.replaceChildren(controls,
    el("div", { class: "explore-grid" },
      el("section", { class: "card", id: "scatter" }, el("h3", {}, aggLabel(X.agg, X.y) + " by " + X.x), scatter,
        el("div", { class: "legend" }, ...STATUSES.map((st) => el("span", {}, el("span", { class: "swatch", style: { background: STATUS_COLOR[st] } }), st)))),
      el("section", { class: "card", id: "parallel" }, el("h3", {}, "Parallel coordinates"), axisPick, par,
        el("p", { class: "muted" }, "Drag along an axis to keep the lines that cross a range; click the axis to clear it."))));
}
`;
