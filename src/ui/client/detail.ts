/**
 * One experiment: overview, checkpoints (torn, missing and uncertain files flagged, downloads),
 * charts, logs (following a live run), provenance (packages, environment, git diff) and the code
 * snapshot's files.
 *
 * @module
 */

/** Plain JavaScript, run in the browser. */
export const DETAIL_JS: string = String.raw`
const TABS = [["overview", "Overview"], ["checkpoints", "Checkpoints"], ["charts", "Charts"], ["logs", "Logs"], ["provenance", "Provenance"], ["code", "Code"]];
let detailTimer = null;
let logState = null;

function stopDetailTimers() {
  clearTimeout(detailTimer);
  detailTimer = null;
  if (logState) { clearTimeout(logState.timer); logState = null; }
}

function kv(rows) {
  return el("table", { class: "kv" }, ...rows.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))));
}
function obj(v) { return v && typeof v === "object" && !Array.isArray(v) ? v : null; }

async function renderDetail(root, id, tab) {
  let d;
  try { d = await api("/api/experiments/" + id); } catch (err) { root.append(errorBox(err)); return; }
  // An id prefix becomes the full id; a name stays in the address (it follows the name).
  if (d.id !== id && d.name !== id) { location.replace("#/e/" + d.id + "/" + tab); return; }
  const ref = d.name === id ? id : d.id;
  const r = d.record;
  const head = el("div", { class: "page-head detail-head" },
    el("h2", {}, el("span", { class: "mono" }, shortId(d.id)), d.name ? " " + d.name : null),
    statusPill(d.status), d.exit_code !== null ? el("span", { class: "muted" }, "exit code " + d.exit_code) : null,
    d.signal ? el("span", { class: "muted" }, "signal " + d.signal) : null,
    el("span", { class: "muted" }, when(d.created) + " · " + fmtDur(durationMs(d)) + (d.status === "running" ? " so far" : "")),
    ...tagChips(d.tags),
    el("div", { class: "spacer" }),
    el("button", { class: "btn" + (S.selected.has(d.id) ? " on" : ""), id: "select-btn", onclick: (ev) => {
      S.selected.has(d.id) ? S.selected.delete(d.id) : S.selected.add(d.id);
      ev.target.classList.toggle("on", S.selected.has(d.id));
      ev.target.textContent = S.selected.has(d.id) ? "Selected for comparing" : "Select for comparing";
    } }, S.selected.has(d.id) ? "Selected for comparing" : "Select for comparing"));
  root.append(head);
  if (d.note) root.append(el("p", { class: "note-full" }, d.note));
  if (d.status === "crashed") root.append(el("p", { class: "warn-box" }, "Crashed: its heartbeat stopped without a final status (the machine or rep died). It ran at least " + fmtDur(durationMs(d)) + "."));
  const flagged = d.checkpoints.filter((c) => c.torn.length || c.warnings.length).length;
  const nav = el("nav", { class: "tabs" }, ...TABS.map(([k, t]) => el("a", { href: "#/e/" + ref + "/" + k, class: "tab" + (k === tab ? " on" : ""), "data-tab": k },
    t, k === "checkpoints" ? el("span", { class: "n" }, String(d.checkpoints.length)) : null,
    k === "checkpoints" && flagged ? el("span", { class: "flag warn", title: flagged + " checkpoint(s) with torn files or warnings" }, "!") : null)));
  root.append(nav);
  const body = el("div", { class: "tab-body", id: "tab-" + tab });
  root.append(body);
  if (Object.keys(d.corrupt || {}).length) {
    body.append(el("div", { class: "error" }, el("strong", {}, "Unreadable records: "),
      el("ul", {}, ...Object.entries(d.corrupt).map(([k, why]) => el("li", {}, el("span", { class: "mono" }, k), ": ", why))),
      el("div", { class: "hint" }, "Run rep verify to check the repository")));
  }
  if (tab === "overview") overviewTab(body, d);
  else if (tab === "checkpoints") checkpointsTab(body, d);
  else if (tab === "charts") chartsTab(body, d);
  else if (tab === "logs") logsTab(body, d);
  else if (tab === "provenance") provenanceTab(body, d);
  else if (tab === "code") codeTab(body, d);
  if (d.status === "running" && tab !== "logs") {
    // Redraw when the run records a checkpoint or ends, not on every poll (open file lists stay).
    const watch = () => {
      if (route().view !== "detail") return;
      const e = S.byId.get(d.id);
      if (e && (e.num_checkpoints !== d.checkpoints.length || e.status !== d.status)) render();
      else detailTimer = setTimeout(watch, 2000);
    };
    detailTimer = setTimeout(watch, 2000);
  }
}

function overviewTab(body, d) {
  const r = d.record;
  const git = r.git ? [(r.git.commit || "(no commit)").slice(0, 12), r.git.branch ? "on " + r.git.branch : "", r.git.dirty ? "(dirty)" : ""].filter(Boolean).join(" ") : null;
  const best = d.best_checkpoint, latest = d.latest_checkpoint;
  body.append(el("div", { class: "two" },
    el("section", { class: "card" }, el("h3", {}, "Run"), kv([
      ["experiment", el("span", { class: "mono" }, d.id)],
      ["name", d.name],
      ["status", d.status + (d.exit_code !== null ? " (exit code " + d.exit_code + ")" : "")],
      ["started", when(d.created)],
      ["finished", d.finished ? when(d.finished) : null],
      ["duration", fmtDur(durationMs(d))],
      ["command", (r.command || []).length ? el("code", {}, r.command.join(" ")) : "(library)"],
      ["cwd", el("span", { class: "mono" }, r.cwd)],
      ["host", r.host], ["user", r.user], ["platform", r.platform],
      ["git", git], ["remote", r.git && r.git.remote],
      ["rep", r.rep_version],
      ["code", r.code ? r.code.files + " file(s), " + fmtBytes(r.code.size) : "(no snapshot)"],
      ["primary metric", r.primary_metric ? r.primary_metric.name + " (" + r.primary_metric.goal + ")" : null],
      ["tags", (d.tags || []).length ? el("span", {}, ...tagChips(d.tags)) : null],
      ["note", d.note],
    ])),
    el("section", { class: "card" }, el("h3", {}, "Params"),
      Object.keys(r.params).length ? kv(Object.entries(r.params).sort(([a], [b]) => a < b ? -1 : 1).map(([k, v]) => [k, el("span", { class: "mono" }, fmtVal(v))])) : el("p", { class: "muted" }, "none"),
      el("h3", {}, "Best checkpoint"), best ? ckSummary(best) : el("p", { class: "muted" }, "none (no primary metric, or no values of it)"),
      latest && (!best || latest.id !== best.id) ? [el("h3", {}, "Latest checkpoint"), ckSummary(latest)] : null)));
}

function ckSummary(c) {
  return kv([["checkpoint", el("span", { class: "mono" }, shortId(c.id) + (c.step === null ? "" : " (step " + c.step + ")"))],
    ...Object.entries(c.metrics).map(([k, v]) => [k, el("span", { class: "num" }, fmtVal(v))])]);
}

async function checkpointsTab(body, d) {
  const cks = d.checkpoints;
  if (!cks.length) { body.append(el("p", { class: "empty" }, "No checkpoints.")); return; }
  const names = [];
  const prim = d.primary_metric && d.primary_metric.name;
  if (prim) names.push(prim);
  for (const c of cks) for (const k of Object.keys(c.metrics)) if (!names.includes(k)) names.push(k);
  const attempts = cks.some((c) => c.attempt > 1);
  const status = el("p", { class: "muted", id: "missing-status" }, "checking that every file's data is stored…");
  const rows = new Map();
  const table = el("table", { class: "grid-table", id: "checkpoints" },
    el("thead", {}, el("tr", {}, el("th", {}, "checkpoint"), el("th", { class: "num" }, "step"), attempts ? el("th", { class: "num" }, "attempt") : null,
      el("th", {}, "created"), ...names.map((n) => el("th", { class: "num" }, n)), el("th", { class: "num" }, "files"), el("th", {}, "flags"))),
    el("tbody", {}, ...[...cks].reverse().map((c) => {
      const isBest = d.best_checkpoint && d.best_checkpoint.id === c.id;
      const flags = el("td", { class: "flags" },
        c.torn.length ? el("span", { class: "flag bad", title: "These files kept changing while rep stored this step; they are left out of it rather than stored wrong" }, "torn: " + c.torn.join(", ")) : null,
        ...c.warnings.map((w) => el("span", { class: "flag warn", title: w }, "warning: " + w)));
      const filesCell = el("td", { class: "num" });
      if (c.files) {
        const a = el("a", { href: "#", class: "files-link" }, c.files.files + " · " + fmtBytes(c.files.size));
        a.addEventListener("click", (ev) => { ev.preventDefault(); toggleFiles(tr, c, names.length + (attempts ? 6 : 5)); });
        filesCell.append(a);
      } else filesCell.append(el("span", { class: "muted" }, "—"));
      const tr = el("tr", { class: "ck" + (isBest ? " best" : ""), "data-id": c.id },
        el("td", { class: "mono" }, shortId(c.id), isBest ? el("span", { class: "star", title: "best checkpoint" }, " ★") : null),
        el("td", { class: "num" }, c.step === null ? "" : String(c.step)), attempts ? el("td", { class: "num" }, String(c.attempt)) : null,
        el("td", { title: when(c.created) }, ago(c.created)),
        ...names.map((n) => el("td", { class: "num" }, fmtVal(c.metrics[n]))), filesCell, flags);
      rows.set(c.id, flags);
      return tr;
    })));
  body.append(status, el("div", { class: "table-wrap" }, table));
  try {
    const m = await api("/api/experiments/" + d.id + "/missing");
    const n = Object.keys(m.missing).length;
    status.textContent = n ? n + " checkpoint(s) have files whose data is missing from the store" : "Every file's data is in the store (sizes checked; rep verify reads it all).";
    status.className = n ? "error" : "muted";
    for (const [cid, info] of Object.entries(m.missing)) {
      const f = rows.get(cid);
      if (f) f.append(el("span", { class: "flag bad", title: info.reason }, "missing: " + info.files.join(", ")));
    }
  } catch (err) {
    status.replaceChildren(errorBox(err));
  }
}

async function toggleFiles(tr, c, span) {
  const next = tr.nextSibling;
  if (next && next.classList && next.classList.contains("files-row")) { next.remove(); return; }
  const cell = el("td", { colspan: span }, el("span", { class: "muted" }, "loading…"));
  tr.after(el("tr", { class: "files-row" }, cell));
  try {
    const files = await api("/api/checkpoints/" + c.id + "/files");
    cell.replaceChildren(el("ul", { class: "files" }, ...files.map((f) => el("li", {},
      el("a", { href: "/api/checkpoints/" + c.id + "/file?path=" + encodeURIComponent(f.path), download: f.path.split("/").pop(), class: "dl" }, f.path),
      el("span", { class: "muted" }, " " + fmtBytes(f.size))))));
  } catch (err) {
    cell.replaceChildren(errorBox(err));
  }
}

async function chartsTab(body, d) {
  const series = await seriesOf([d.id]);
  const exp = S.byId.get(d.id) || d;
  const mc = metricCharts([exp], series, [d.id]);
  const grid = el("div", { class: "chart-grid" });
  const redraw = (pickChanged) => {
    if (pickChanged) body.replaceChildren(chartControls(redraw, mc.names), grid);
    mc.draw(grid);
  };
  body.append(chartControls(redraw, mc.names), grid);
  mc.draw(grid);
}

function logsTab(body, d, attempt) {
  const n = attempt || d.attempts;
  const pre = el("pre", { class: "log", id: "log" });
  const follow = el("input", { type: "checkbox", id: "follow" });
  const live = d.status === "running" && n === d.attempts;
  follow.checked = live;
  const info = el("span", { class: "muted" });
  const q = "attempt=" + n;
  let pick = null;
  if (d.attempts > 1) {
    pick = el("select", { id: "log-attempt", title: "Each attempt of a resumed experiment has its own output" },
      ...Array.from({ length: d.attempts }, (_, i) => el("option", { value: String(i + 1) }, "attempt " + (i + 1) + " of " + d.attempts)));
    pick.value = String(n);
    pick.addEventListener("change", () => {
      stopDetailTimers();
      body.replaceChildren();
      logsTab(body, d, Number(pick.value));
    });
  }
  body.append(el("div", { class: "toolbar small" }, pick,
    el("label", {}, follow, " follow" + (live ? " (live)" : "")), info,
    el("div", { class: "spacer" }),
    el("a", { href: "/api/experiments/" + d.id + "/logs?download=1&" + q, class: "btn", download: shortId(d.id) + (d.attempts > 1 ? "-attempt" + n : "") + ".log" }, "Download")), pre);
  const st = logState = { id: d.id, offset: 0, timer: null, decoder: new TextDecoder() };
  const poll = async () => {
    if (logState !== st) return;
    try {
      const first = st.offset === 0;
      const r = await fetch("/api/experiments/" + d.id + "/logs?" + q + "&" + (first ? "tail=262144" : "from=" + st.offset));
      if (!r.ok) throw new Error((await r.json()).error);
      const offset = Number(r.headers.get("x-log-offset"));
      const size = Number(r.headers.get("x-log-size"));
      const buf = new Uint8Array(await r.arrayBuffer());
      const text = st.decoder.decode(buf, { stream: true });
      if (first && offset > 0) pre.append(el("span", { class: "muted" }, "… " + fmtBytes(offset) + " earlier (Download for all of it)\n"));
      if (text) {
        const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 30;
        pre.append(document.createTextNode(text));
        if (follow.checked && atEnd) pre.scrollTop = pre.scrollHeight;
      }
      st.offset = offset + buf.length;
      info.textContent = fmtBytes(size);
      if (first && !size) pre.append(el("span", { class: "muted" }, "(no output stored" + (d.record.command.length ? "" : ": library experiments have no log") + ")"));
    } catch (err) {
      info.textContent = "error: " + (err.message || err);
    }
    const e = S.byId.get(d.id);
    if (logState === st && follow.checked && (!e || e.status === "running")) st.timer = setTimeout(poll, 2000);
  };
  follow.addEventListener("change", () => { if (follow.checked) { clearTimeout(st.timer); poll(); } });
  poll();
}

function provenanceTab(body, d) {
  const p = d.record.provenance || {};
  const py = obj(p.python);
  const cpu = obj(p.cpu);
  const plat = obj(p.platform);
  const gpus = Array.isArray(p.gpu) ? p.gpu : null;
  body.append(el("section", { class: "card" }, el("h3", {}, "Machine"), kv([
    ["platform", plat ? [plat.os, plat.arch, plat.release].filter(Boolean).join(" ") : d.record.platform],
    ["cpu", cpu ? (cpu.model || "?") + (cpu.count ? " × " + cpu.count : "") : null],
    ["memory", typeof p.memory_bytes === "number" ? fmtBytes(p.memory_bytes) : null],
    ["gpu", gpus ? (gpus.length ? gpus.map((g) => (obj(g) || {}).name + (obj(g) && g.memoryMiB ? " (" + g.memoryMiB + " MiB)" : "")).join(", ") : "none") : null],
    ["python", py ? [py.implementation, py.version, py.executable ? "(" + py.executable + ")" : ""].filter(Boolean).join(" ") : null],
    ["output folder", p.output], ["metrics file", p.metrics],
  ])));
  if (Array.isArray(p.warnings) && p.warnings.length) {
    body.append(el("section", { class: "card" }, el("h3", {}, "Warnings while recording"), el("ul", {}, ...p.warnings.map((w) => el("li", {}, String(w))))));
  }
  const pk = py && Array.isArray(py.packages) ? py.packages : null;
  if (pk) {
    const q = el("input", { type: "search", placeholder: "filter packages", class: "search small", id: "pkg-filter" });
    const ul = el("ul", { class: "packages" });
    const draw = () => ul.replaceChildren(...pk.filter((x) => String(x).toLowerCase().includes(q.value.toLowerCase())).map((x) => el("li", { class: "mono" }, String(x))));
    q.addEventListener("input", draw);
    draw();
    body.append(el("section", { class: "card" }, el("h3", {}, "Python packages ", el("span", { class: "muted" }, "(" + pk.length + ")")), q, ul));
  }
  const env = obj(p.env);
  if (env) {
    const names = Object.keys(env).sort();
    body.append(el("section", { class: "card" }, el("h3", {}, "Environment ", el("span", { class: "muted" }, "(" + names.length + " variables; secrets redacted)")),
      el("table", { class: "kv env", id: "env" }, ...names.map((k) => el("tr", {}, el("th", { class: "mono" }, k),
        el("td", { class: "mono" + (String(env[k]).includes("[REDACTED]") ? " redacted" : "") }, String(env[k])))))));
  }
  const git = d.record.git;
  if (git || typeof p.git_diff === "string") {
    const sec = el("section", { class: "card" }, el("h3", {}, "Git"), kv([
      ["commit", git && git.commit], ["branch", git && git.branch], ["dirty", git ? String(git.dirty) : null], ["remote", git && git.remote]]));
    if (typeof p.git_diff === "string" && p.git_diff) {
      sec.append(el("h4", {}, "Uncommitted changes (git diff HEAD)" + (p.git_diff_truncated ? ", truncated" : "")), diffLines(p.git_diff));
    } else if (git) sec.append(el("p", { class: "muted" }, "No uncommitted changes to tracked files."));
    if (Array.isArray(p.git_untracked) && p.git_untracked.length) {
      sec.append(el("h4", {}, "Untracked files"), el("ul", { class: "files" }, ...p.git_untracked.map((f) => el("li", { class: "mono" }, String(f)))));
    }
    body.append(sec);
  }
}

async function codeTab(body, d) {
  if (!d.record.code) { body.append(el("p", { class: "empty" }, "No code snapshot was taken.")); return; }
  const view = el("div", { class: "code-view", id: "code-view" }, el("p", { class: "muted" }, "Pick a file to see it."));
  const list = el("ul", { class: "files code-files", id: "code-files" }, el("li", { class: "muted" }, "loading…"));
  body.append(el("div", { class: "code-split" }, el("section", { class: "card" }, el("h3", {}, "Files ", el("span", { class: "muted" }, "(" + d.record.code.files + ", " + fmtBytes(d.record.code.size) + ")")), list),
    el("section", { class: "card" }, view)));
  let files;
  try { files = await api("/api/experiments/" + d.id + "/code"); } catch (err) { list.replaceChildren(errorBox(err)); return; }
  const url = (f) => "/api/experiments/" + d.id + "/code/file?path=" + encodeURIComponent(f.path);
  list.replaceChildren(...files.map((f) => {
    const a = el("a", { href: "#", "data-path": f.path }, f.path);
    a.addEventListener("click", async (ev) => {
      ev.preventDefault();
      for (const x of list.querySelectorAll("a.on")) x.classList.remove("on");
      a.classList.add("on");
      const head = el("div", { class: "toolbar small" }, el("strong", { class: "mono" }, f.path), el("span", { class: "muted" }, fmtBytes(f.size)),
        el("div", { class: "spacer" }), el("a", { href: url(f), download: f.path.split("/").pop(), class: "btn" }, "Download"));
      if (f.size > 1048576) { view.replaceChildren(head, el("p", { class: "muted" }, "Too large to show here.")); return; }
      const bytes = new Uint8Array(await (await fetch(url(f))).arrayBuffer());
      let text = null;
      if (!bytes.subarray(0, 8000).includes(0)) { try { text = new TextDecoder("utf-8", { fatal: true }).decode(bytes); } catch { text = null; } }
      view.replaceChildren(head, text === null ? el("p", { class: "muted" }, "Binary file.") : el("pre", { class: "code" }, text));
    });
    return el("li", {}, a, el("span", { class: "muted" }, " " + fmtBytes(f.size)));
  }));
}
`;
