/**
 * The viewer's charts, drawn as SVG: metric curves (hover values, log scale, smoothing, x by step
 * or time), a scatter plot and parallel coordinates.
 *
 * @module
 */

/** Plain JavaScript, run in the browser. */
export const CHARTS_JS: string = String.raw`
// ---- scales and ticks ------------------------------------------------------------------------
function niceStep(span, n) {
  const raw = span / Math.max(1, n);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / p;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}
function linearTicks(a, b, n) {
  if (!(b > a)) return [a];
  const step = niceStep(b - a, n);
  const out = [];
  for (let t = Math.ceil(a / step) * step; t <= b + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return out;
}
function logTicks(a, b) {
  const out = [];
  const lo = Math.floor(Math.log10(a)), hi = Math.ceil(Math.log10(b));
  const mult = hi - lo <= 2 ? [1, 2, 5] : [1];
  for (let k = lo; k <= hi; k++) for (const m of mult) {
    const t = m * Math.pow(10, k);
    if (t >= a * 0.999 && t <= b * 1.001) out.push(t);
  }
  return out.length >= 2 ? out : [a, b];
}
function timeTicks(a, b, n) {
  const spans = [1e3, 5e3, 15e3, 3e4, 6e4, 3e5, 9e5, 18e5, 36e5, 108e5, 216e5, 864e5, 6048e5];
  const step = spans.find((s) => (b - a) / s <= n) || niceStep(b - a, n);
  const out = [];
  for (let t = Math.ceil(a / step) * step; t <= b; t += step) out.push(t);
  return out;
}
function makeScale(lo, hi, pxLo, pxHi, log) {
  if (log) {
    const a = Math.log10(lo), b = Math.log10(hi);
    return (v) => pxLo + (Math.log10(v) - a) / (b - a || 1) * (pxHi - pxLo);
  }
  return (v) => pxLo + (v - lo) / (hi - lo || 1) * (pxHi - pxLo);
}
function extent(values, log) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v) || (log && v <= 0)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === Infinity) return null;
  if (lo === hi) {
    if (log) { lo /= 2; hi *= 2; } else { const d = Math.abs(lo) * 0.1 || 1; lo -= d; hi += d; }
  } else if (!log) {
    const pad = (hi - lo) * 0.04;
    lo -= pad; hi += pad;
  }
  return [lo, hi];
}
function fmtTick(v, kind, span) {
  if (kind === "time") {
    const d = new Date(v);
    if (span > 2 * 86400e3) return d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return d.toLocaleTimeString([], span < 180e3 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" });
  }
  if (kind === "relative") return fmtDur(v);
  return fmtNum(v);
}

/** Debiased exponential moving average (TensorBoard's smoothing). */
function smooth(points, w) {
  if (!(w > 0)) return points;
  let last = 0, n = 0;
  return points.map(([x, y]) => {
    last = last * w + (1 - w) * y;
    n++;
    return [x, last / (1 - Math.pow(w, n))];
  });
}

function chartTooltip(wrap) {
  const tip = el("div", { class: "tip", hidden: true });
  wrap.append(tip);
  return {
    show(px, py, rows) {
      tip.replaceChildren(...rows);
      tip.hidden = false;
      const w = wrap.clientWidth;
      const left = px + 14 + tip.offsetWidth > w ? px - tip.offsetWidth - 14 : px + 14;
      tip.style.left = Math.max(0, left) + "px";
      tip.style.top = Math.max(0, py - 10) + "px";
    },
    hide() { tip.hidden = true; },
  };
}

/**
 * Metric curves. opts: { title, series: [{id, label, color, points: [[x, y]]}], x: "step" | "time"
 * | "relative", log, smooth, height }.
 */
function lineChart(opts) {
  const W = opts.width || 560, H = opts.height || 260, L = 58, R = 14, T = 12, B = 30;
  const wrap = el("div", { class: "chart", "data-metric": opts.title });
  wrap.append(el("div", { class: "chart-title" }, opts.title,
    opts.log ? el("span", { class: "muted" }, " (log)") : null));
  const box = el("div", { class: "chart-box" });
  wrap.append(box);
  const s = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "plot", role: "img", "aria-label": opts.title });
  box.append(s);
  const series = opts.series.map((sr) => {
    const pts = sr.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!opts.log || p[1] > 0))
      .sort((a, b) => a[0] - b[0]);
    return { ...sr, raw: pts, pts: smooth(pts, opts.smooth) };
  });
  const xs = series.flatMap((sr) => sr.pts.map((p) => p[0]));
  const ys = series.flatMap((sr) => sr.raw.map((p) => p[1]).concat(sr.pts.map((p) => p[1])));
  const xe = extent(xs, false), ye = extent(ys, opts.log);
  if (!xe || !ye) {
    s.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty-note" },
      opts.log ? "no positive values to plot on a log scale" : "no values"));
    return wrap;
  }
  const xkind = opts.x === "time" ? "time" : opts.x === "relative" ? "relative" : "num";
  if (xkind === "num") { xe[0] = Math.min(...xs); xe[1] = Math.max(...xs); if (xe[0] === xe[1]) { xe[0] -= 1; xe[1] += 1; } }
  const sx = makeScale(xe[0], xe[1], L, W - R, false);
  const sy = makeScale(ye[0], ye[1], H - B, T, opts.log);
  const grid = svg("g", { class: "grid" });
  const yt = opts.log ? logTicks(ye[0], ye[1]) : linearTicks(ye[0], ye[1], 5);
  for (const t of yt) {
    grid.append(svg("line", { x1: L, x2: W - R, y1: sy(t), y2: sy(t) }));
    grid.append(svg("text", { x: L - 6, y: sy(t) + 4, "text-anchor": "end" }, fmtNum(t)));
  }
  const xt = xkind === "num" ? linearTicks(xe[0], xe[1], 6) : timeTicks(xe[0], xe[1], 6);
  for (const t of xt) {
    if (t < xe[0] || t > xe[1]) continue;
    grid.append(svg("line", { x1: sx(t), x2: sx(t), y1: T, y2: H - B, class: "v" }));
    grid.append(svg("text", { x: sx(t), y: H - B + 16, "text-anchor": "middle" }, fmtTick(t, xkind, xe[1] - xe[0])));
  }
  grid.append(svg("text", { x: W - R, y: H - 2, "text-anchor": "end", class: "axis-name" },
    xkind === "num" ? "step" : xkind === "time" ? "wall time" : "time since start"));
  s.append(grid);
  for (const sr of series) {
    if (!sr.pts.length) continue;
    const path = (pts) => pts.map((p, i) => (i ? "L" : "M") + sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join("");
    if (opts.smooth > 0) s.append(svg("path", { d: path(sr.raw), class: "raw", stroke: sr.color }));
    s.append(svg("path", { d: path(sr.pts), class: "series", stroke: sr.color, "data-id": sr.id }));
    if (sr.pts.length === 1) s.append(svg("circle", { cx: sx(sr.pts[0][0]), cy: sy(sr.pts[0][1]), r: 3, fill: sr.color }));
  }
  // Hover: a vertical rule and each series' value at the nearest step.
  const rule = svg("line", { class: "rule", y1: T, y2: H - B, visibility: "hidden" });
  const dots = svg("g", {});
  s.append(rule, dots);
  const tip = chartTooltip(box);
  const hit = svg("rect", { x: L, y: T, width: W - L - R, height: H - T - B, class: "hit" });
  s.append(hit);
  const nearest = (pts, x) => {
    let lo = 0, hi = pts.length - 1;
    while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (pts[mid][0] < x) lo = mid; else hi = mid; }
    return Math.abs(pts[lo][0] - x) <= Math.abs(pts[hi][0] - x) ? pts[lo] : pts[hi];
  };
  hit.addEventListener("mousemove", (ev) => {
    const r = s.getBoundingClientRect();
    const px = (ev.clientX - r.left) / r.width * W;
    const x = xe[0] + (px - L) / (W - L - R) * (xe[1] - xe[0]);
    const rows = [];
    dots.replaceChildren();
    let xAt = null;
    for (const sr of series) {
      if (!sr.pts.length) continue;
      const p = nearest(sr.pts, x);
      xAt = xAt === null || Math.abs(p[0] - x) < Math.abs(xAt - x) ? p[0] : xAt;
      dots.append(svg("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 3.5, fill: sr.color, class: "dot" }));
      rows.push({ sr, p });
    }
    if (xAt === null) return;
    rule.setAttribute("x1", sx(xAt)); rule.setAttribute("x2", sx(xAt)); rule.setAttribute("visibility", "visible");
    rows.sort((a, b) => b.p[1] - a.p[1]);
    tip.show(ev.clientX - box.getBoundingClientRect().left, ev.clientY - box.getBoundingClientRect().top, [
      el("div", { class: "tip-head" }, xkind === "num" ? "step " + fmtNum(xAt) : xkind === "time" ? new Date(xAt).toLocaleString() : fmtDur(xAt)),
      ...rows.map(({ sr, p }) => el("div", { class: "tip-row" },
        el("span", { class: "swatch", style: { background: sr.color } }), sr.label,
        el("b", {}, fmtNum(p[1])),
        p[0] !== xAt ? el("span", { class: "muted" }, " @" + (xkind === "num" ? fmtNum(p[0]) : fmtTick(p[0], xkind, 0))) : null)),
    ]);
  });
  hit.addEventListener("mouseleave", () => { tip.hide(); dots.replaceChildren(); rule.setAttribute("visibility", "hidden"); });
  return wrap;
}

/**
 * A scatter plot. opts: { points: [{id, label, x, y, color}], xLabel, yLabel, xCats (labels of a
 * categorical x, or null), logX, logY, onClick(id) }.
 */
function scatterChart(opts) {
  const W = opts.width || 640, H = opts.height || 380, L = 64, R = 16, T = 14, B = 42;
  const wrap = el("div", { class: "chart scatter" });
  const box = el("div", { class: "chart-box" });
  wrap.append(box);
  const s = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "plot", role: "img", "aria-label": opts.yLabel + " by " + opts.xLabel });
  box.append(s);
  const cats = opts.xCats;
  const pts = opts.points.filter((p) => (cats ? true : Number.isFinite(p.x) && (!opts.logX || p.x > 0)) &&
    Number.isFinite(p.y) && (!opts.logY || p.y > 0));
  const ye = extent(pts.map((p) => p.y), opts.logY);
  const xe = cats ? [-0.5, cats.length - 0.5] : extent(pts.map((p) => p.x), opts.logX);
  if (!pts.length || !ye || !xe) {
    s.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty-note" }, "no experiments have both values"));
    return wrap;
  }
  const sx = makeScale(xe[0], xe[1], L, W - R, !cats && opts.logX);
  const sy = makeScale(ye[0], ye[1], H - B, T, opts.logY);
  const grid = svg("g", { class: "grid" });
  for (const t of opts.logY ? logTicks(ye[0], ye[1]) : linearTicks(ye[0], ye[1], 6)) {
    grid.append(svg("line", { x1: L, x2: W - R, y1: sy(t), y2: sy(t) }));
    grid.append(svg("text", { x: L - 6, y: sy(t) + 4, "text-anchor": "end" }, fmtNum(t)));
  }
  const xt = cats ? cats.map((_, i) => i) : opts.logX ? logTicks(xe[0], xe[1]) : linearTicks(xe[0], xe[1], 7);
  for (const t of xt) {
    grid.append(svg("line", { x1: sx(t), x2: sx(t), y1: T, y2: H - B, class: "v" }));
    const txt = cats ? cats[t] : fmtNum(t);
    grid.append(svg("text", { x: sx(t), y: H - B + 16, "text-anchor": "middle" }, txt.length > 14 ? txt.slice(0, 13) + "…" : txt));
  }
  grid.append(svg("text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle", class: "axis-name" }, opts.xLabel));
  grid.append(svg("text", { x: 14, y: (T + H - B) / 2, "text-anchor": "middle", class: "axis-name",
    transform: "rotate(-90 14 " + (T + H - B) / 2 + ")" }, opts.yLabel));
  s.append(grid);
  const tip = chartTooltip(box);
  // Jitter categorical x a little so equal points stay visible.
  const jitter = (id) => cats ? ((parseInt(id.slice(0, 4), 16) / 65535) - 0.5) * 0.3 : 0;
  for (const p of pts) {
    const c = svg("circle", { cx: sx(p.x + jitter(p.id)), cy: sy(p.y), r: 5, fill: p.color, class: "pt", "data-id": p.id });
    c.addEventListener("mouseenter", (ev) => {
      const b = box.getBoundingClientRect();
      tip.show(ev.clientX - b.left, ev.clientY - b.top, [
        el("div", { class: "tip-head" }, p.label),
        el("div", {}, opts.xLabel + " = ", el("b", {}, cats ? cats[p.x] : fmtNum(p.x))),
        el("div", {}, opts.yLabel + " = ", el("b", {}, fmtNum(p.y))),
        p.extra ? el("div", { class: "muted" }, p.extra) : null,
      ]);
    });
    c.addEventListener("mouseleave", () => tip.hide());
    c.addEventListener("click", () => opts.onClick && opts.onClick(p.id));
    s.append(c);
  }
  return wrap;
}

/** A colour from a low (blue) to a high (orange-red) value, t in [0, 1]. */
function ramp(t) {
  const stops = [[49, 54, 149], [69, 117, 180], [116, 173, 209], [171, 217, 233], [253, 174, 97], [244, 109, 67], [215, 48, 39]];
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x)), f = x - i;
  const c = stops[i].map((a, k) => Math.round(a + (stops[i + 1][k] - a) * f));
  return "rgb(" + c.join(",") + ")";
}

/**
 * Parallel coordinates. opts: { axes: [{name, values: Map(id → value)}], rows: [{id, label}],
 * colorBy: index of the axis that colours the lines, onClick(id) }. An axis with any string value
 * is categorical. Drag along an axis to keep only the lines that cross a range; click it to clear.
 */
function parallelChart(opts) {
  const W = opts.width || 1100, H = opts.height || 340, T = 30, B = 24, L = 40, R = 60;
  const wrap = el("div", { class: "chart parallel" });
  const box = el("div", { class: "chart-box" });
  wrap.append(box);
  const s = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "plot", role: "img", "aria-label": "parallel coordinates" });
  box.append(s);
  const n = opts.axes.length;
  if (n < 2) {
    s.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty-note" }, "pick at least two axes"));
    return wrap;
  }
  const ax = opts.axes.map((a, i) => {
    const vals = opts.rows.map((r) => a.values.get(r.id)).filter((v) => v !== undefined && v !== null);
    const cat = vals.some((v) => typeof v !== "number");
    const x = L + i * (W - L - R) / (n - 1);
    if (cat) {
      const cats = [...new Set(vals.map((v) => fmtVal(v)))].sort();
      const y = (v) => T + (cats.length === 1 ? 0.5 : cats.indexOf(fmtVal(v)) / (cats.length - 1)) * (H - T - B);
      return { ...a, x, cat: true, cats, y, ticks: cats.map((c) => [y(c), c]) };
    }
    // Values over orders of magnitude (a learning rate) get a log axis.
    const log = vals.length > 1 && vals.every((v) => v > 0) && Math.max(...vals) / Math.min(...vals) >= 100;
    const e = extent(vals, log) || [0, 1];
    const f = makeScale(e[0], e[1], H - B, T, log);
    const y = (v) => log && !(v > 0) ? H - B : f(v);
    const ticks = log ? logTicks(e[0], e[1]) : linearTicks(e[0], e[1], 5);
    return { ...a, x, cat: false, y, ticks: ticks.map((t) => [y(t), fmtNum(t)]) };
  });
  const colorAxis = ax[opts.colorBy ?? n - 1];
  const cvals = opts.rows.map((r) => colorAxis.values.get(r.id)).filter((v) => typeof v === "number");
  const ce = extent(cvals, false) || [0, 1];
  const brush = new Map();
  const lines = svg("g", { class: "lines" });
  s.append(lines);
  const tip = chartTooltip(box);
  const drawn = [];
  for (const r of opts.rows) {
    const pts = ax.map((a) => {
      const v = a.values.get(r.id);
      return v === undefined || v === null ? null : [a.x, a.y(v)];
    });
    if (pts.filter(Boolean).length < 2) continue;
    let d = "", pen = false;
    for (const p of pts) {
      if (!p) { pen = false; continue; }
      d += (pen ? "L" : "M") + p[0].toFixed(1) + "," + p[1].toFixed(1);
      pen = true;
    }
    const cv = colorAxis.values.get(r.id);
    const color = typeof cv === "number" ? ramp((cv - ce[0]) / (ce[1] - ce[0] || 1)) : "#9ca3af";
    const path = svg("path", { d, stroke: color, class: "pline", "data-id": r.id });
    path.addEventListener("mouseenter", (ev) => {
      path.classList.add("hot");
      const b = box.getBoundingClientRect();
      tip.show(ev.clientX - b.left, ev.clientY - b.top, [el("div", { class: "tip-head" }, r.label),
        ...ax.map((a) => el("div", {}, a.name + " = ", el("b", {}, fmtVal(a.values.get(r.id)))))]);
    });
    path.addEventListener("mouseleave", () => { path.classList.remove("hot"); tip.hide(); });
    path.addEventListener("click", () => opts.onClick && opts.onClick(r.id));
    lines.append(path);
    drawn.push({ r, path, ys: pts.map((p) => p && p[1]) });
  }
  const applyBrush = () => {
    for (const dr of drawn) {
      const out = [...brush].some(([i, [a, b]]) => dr.ys[i] === null || dr.ys[i] < a || dr.ys[i] > b);
      dr.path.classList.toggle("dim", out);
    }
  };
  ax.forEach((a, i) => {
    const g = svg("g", { class: "axis" });
    g.append(svg("line", { x1: a.x, x2: a.x, y1: T, y2: H - B }));
    for (const [y, t] of a.ticks) {
      g.append(svg("line", { x1: a.x - 3, x2: a.x + 3, y1: y, y2: y }));
      g.append(svg("text", { x: a.x + 6, y: y + 4 }, String(t).length > 12 ? String(t).slice(0, 11) + "…" : t));
    }
    g.append(svg("text", { x: a.x, y: T - 12, "text-anchor": "middle", class: "axis-name" }, a.name));
    const band = svg("rect", { x: a.x - 7, width: 14, y: 0, height: 0, class: "brush", visibility: "hidden" });
    const grab = svg("rect", { x: a.x - 12, width: 24, y: T, height: H - T - B, class: "hit" });
    let start = null;
    const yOf = (ev) => { const r = s.getBoundingClientRect(); return (ev.clientY - r.top) / r.height * H; };
    grab.addEventListener("pointerdown", (ev) => { start = yOf(ev); grab.setPointerCapture(ev.pointerId); ev.preventDefault(); });
    grab.addEventListener("pointermove", (ev) => {
      if (start === null) return;
      const y = yOf(ev), a0 = Math.min(start, y), b0 = Math.max(start, y);
      band.setAttribute("y", a0); band.setAttribute("height", b0 - a0); band.setAttribute("visibility", "visible");
      if (b0 - a0 > 3) brush.set(i, [a0, b0]); else brush.delete(i);
      applyBrush();
    });
    grab.addEventListener("pointerup", () => {
      if (start === null) return;
      if (!brush.has(i)) { band.setAttribute("visibility", "hidden"); applyBrush(); }
      start = null;
    });
    g.append(band, grab);
    s.append(g);
  });
  if (typeof cvals[0] === "number") {
    const legend = el("div", { class: "ramp-legend" }, el("span", {}, fmtNum(ce[0])),
      el("span", { class: "ramp" }), el("span", {}, fmtNum(ce[1])), " " + colorAxis.name);
    wrap.append(legend);
  }
  return wrap;
}
`;
