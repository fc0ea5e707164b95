/**
 * The experiments table: search by `rep ls -f` filters or text, status filter, sortable and
 * choosable columns, selection for comparing.
 *
 * @module
 */

/** Plain JavaScript, run in the browser. */
export const TABLE_JS: string = String.raw`
const MAX_DEFAULT_METRICS = 6;
const MAX_DEFAULT_PARAMS = 8;

function num(v) { return typeof v === "number" ? v : undefined; }

/** Every column the table can show, in display order. */
function allColumns(list) {
  const cols = [];
  const metric = metricNamesOf(list);
  const params = paramNames(list);
  cols.push({ id: "f:status", label: "status", group: "Fields", get: (e) => e.status, cell: (e) => statusPill(e.status, e.exit_code === null ? null : "exit code " + e.exit_code) });
  for (const m of metric) {
    const goal = goalOf(m);
    cols.push({ id: "m:" + m, label: m, group: "Metrics", metric: m, num: true, goal,
      get: (e) => metricOf(e, m), cell: (e) => fmtNum(metricOf(e, m)) });
  }
  for (const p of params) {
    cols.push({ id: "p:" + p, label: p, group: "Params", param: p,
      num: list.every((e) => e.params[p] === undefined || typeof e.params[p] === "number"),
      get: (e) => e.params[p], cell: (e) => fmtVal(e.params[p]) });
  }
  const f = (id, lbl, get, cell, numeric) => cols.push({ id: "f:" + id, label: lbl, group: "Fields", get, cell: cell || ((e) => fmtVal(get(e))), num: !!numeric });
  f("tags", "tags", (e) => (e.tags || []).join(","), (e) => tagChips(e.tags));
  f("note", "note", (e) => e.note || "", (e) => e.note ? el("span", { class: "note", title: e.note }, e.note) : "");
  f("created", "created", (e) => e.created, (e) => el("span", { title: when(e.created) }, ago(e.created)));
  f("duration", "duration", durationMs, (e) => fmtDur(durationMs(e)), true);
  f("checkpoints", "ckpts", (e) => e.num_checkpoints, null, true);
  f("size", "size", (e) => e.checkpoint_size, (e) => el("span", { title: e.checkpoint_files === null ? "no files" : e.checkpoint_files + " file(s) in the checkpoint shown" }, fmtBytes(e.checkpoint_size)), true);
  f("step", "step", (e) => { const c = shownCheckpoint(e); return c ? c.step : undefined; }, null, true);
  f("user", "user", (e) => e.user);
  f("host", "host", (e) => e.host);
  f("command", "command", (e) => (e.command || []).join(" "), (e) => el("span", { class: "cmd", title: (e.command || []).join(" ") }, (e.command || []).join(" ")));
  f("git", "git", (e) => e.git ? (e.git.commit || "").slice(0, 8) + (e.git.dirty ? "*" : "") : "");
  return cols;
}

/** What is shown before the user chooses: what tells experiments apart, within 1440 px. */
function defaultShown(list, cols) {
  const on = new Set(["f:status", "f:created", "f:duration", "f:checkpoints", "f:size"]);
  cols.filter((c) => c.metric).slice(0, MAX_DEFAULT_METRICS).forEach((c) => on.add(c.id));
  // Params that tell experiments apart, and that most of them have (a param of one run is noise).
  const common = (p) => list.filter((e) => e.params[p] !== undefined).length * 5 >= list.length;
  cols.filter((c) => c.param && common(c.param) && differing(list, (e) => e.params[c.param])).slice(0, MAX_DEFAULT_PARAMS).forEach((c) => on.add(c.id));
  if (list.some((e) => (e.tags || []).length)) on.add("f:tags");
  if (list.some((e) => e.note)) on.add("f:note");
  if (differing(list, (e) => e.user)) on.add("f:user");
  if (differing(list, (e) => e.host)) on.add("f:host");
  return on;
}

function shownColumns(list) {
  const cols = allColumns(list);
  const def = defaultShown(list, cols);
  const choice = S.cols || load("cols") || { on: [], off: [] };
  S.cols = choice;
  const on = new Set(choice.on), off = new Set(choice.off);
  return { all: cols, shown: cols.filter((c) => (def.has(c.id) || on.has(c.id)) && !off.has(c.id)), def };
}

function compareValues(a, b) {
  const ra = a === undefined || a === null || (typeof a === "number" && Number.isNaN(a)) ? 3 : typeof a === "number" ? 0 : typeof a === "boolean" ? 1 : 2;
  const rb = b === undefined || b === null || (typeof b === "number" && Number.isNaN(b)) ? 3 : typeof b === "number" ? 0 : typeof b === "boolean" ? 1 : 2;
  if (ra !== rb) return { rank: ra - rb };
  if (ra === 3) return { rank: 0, c: 0 };
  if (ra === 0) return { rank: 0, c: a - b };
  const x = String(a), y = String(b);
  return { rank: 0, c: x < y ? -1 : x > y ? 1 : 0 };
}
function sortList(list, cols) {
  const col = cols.find((c) => c.id === S.sort.key) || cols.find((c) => c.id === "f:created");
  if (!col) return list;
  const vals = new Map(list.map((e) => [e.id, col.get(e)]));
  return [...list].sort((x, y) => {
    const r = compareValues(vals.get(x.id), vals.get(y.id));
    if (r.rank) return r.rank; // missing values last, whatever the direction
    return S.sort.desc ? -r.c : r.c;
  });
}

let tableRefs = null;

function mountTable(root) {
  const search = el("input", { type: "search", id: "search", class: "search", spellcheck: "false", autocomplete: "off",
    placeholder: "Search text, or filter like rep ls -f:  accuracy > 0.9 and lr <= 0.01 and status = succeeded",
    "aria-label": "search or filter" });
  search.value = S.query;
  let timer = null;
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => setQuery(search.value), 250); });
  search.addEventListener("keydown", (ev) => { if (ev.key === "Enter") { clearTimeout(timer); setQuery(search.value); } });
  const statusBar = el("div", { class: "seg", role: "group", "aria-label": "status" });
  const colsBtn = el("button", { class: "btn", id: "columns-btn", "aria-haspopup": "true" }, "Columns");
  const compareBtn = el("button", { class: "btn primary", id: "compare-btn" }, "Compare");
  const count = el("span", { class: "muted count" });
  const qmsg = el("div", { class: "qmsg" });
  const popover = el("div", { class: "popover", hidden: true, id: "columns" });
  colsBtn.addEventListener("click", (ev) => { ev.stopPropagation(); popover.hidden = !popover.hidden; if (!popover.hidden) renderColumnChooser(popover); });
  document.addEventListener("click", (ev) => { if (!popover.contains(ev.target)) popover.hidden = true; });
  compareBtn.addEventListener("click", () => { const ids = [...S.selected]; if (ids.length) go(compareHash(ids)); });
  const wrapper = el("div", { class: "table-wrap" });
  const table = el("table", { class: "grid-table", id: "experiments" });
  wrapper.append(table);
  const more = el("div", { class: "more" });
  root.append(el("div", { class: "toolbar" }, search, statusBar, el("div", { class: "spacer" }), count, colsBtn, compareBtn, popover), qmsg, wrapper, more);
  tableRefs = { root, search, statusBar, compareBtn, count, qmsg, table, more, popover };
  updateTable();
  if (!S.list.length && S.fetched) root.append(el("p", { class: "empty" }, "No experiments yet. Record one with: rep run -- python train.py"));
}

async function setQuery(q) {
  S.query = q.trim();
  S.queryIds = null;
  S.queryError = null;
  if (S.query && looksLikeFilter(S.query)) {
    try {
      const r = await api("/api/filter?q=" + encodeURIComponent(S.query));
      if (S.query !== q.trim()) return; // typed on meanwhile
      S.queryIds = new Set(r.ids);
    } catch (err) {
      S.queryError = err;
    }
  }
  S.limit = 200;
  updateTable();
}

function updateTable() {
  if (!tableRefs || !tableRefs.table.isConnected) return;
  const { statusBar, compareBtn, count, qmsg, table, more } = tableRefs;
  // Status buttons, with the counts of what the search leaves.
  const base = S.queryIds ? S.list.filter((e) => S.queryIds.has(e.id))
    : S.query && !S.queryError ? S.list.filter((e) => textOf(e).includes(S.query.toLowerCase())) : S.list;
  const counts = { all: base.length };
  for (const st of STATUSES) counts[st] = base.filter((e) => e.status === st).length;
  statusBar.replaceChildren(...["all", ...STATUSES].filter((st) => st === "all" || counts[st] || S.status === st).map((st) =>
    el("button", { class: "seg-btn" + (S.status === st ? " on" : ""), "data-status": st, "aria-pressed": S.status === st ? "true" : "false",
      onclick: () => { S.status = st; S.limit = 200; updateTable(); } },
      st === "all" ? "All" : st, el("span", { class: "n" }, String(counts[st])))));
  qmsg.replaceChildren();
  if (S.queryError) qmsg.append(errorBox(S.queryError));
  const list = filtered();
  const { shown } = shownColumns(S.list);
  const rows = sortList(list, shown.concat(allColumns(S.list).filter((c) => c.id === S.sort.key)));
  const visible = rows.slice(0, S.limit);
  count.textContent = list.length === S.list.length ? S.list.length + " experiments" : list.length + " of " + S.list.length;
  compareBtn.textContent = S.selected.size ? "Compare " + S.selected.size : "Compare";
  compareBtn.disabled = S.selected.size === 0;
  // Header.
  const allBox = el("input", { type: "checkbox", "aria-label": "select all shown" });
  allBox.checked = visible.length > 0 && visible.every((e) => S.selected.has(e.id));
  allBox.addEventListener("change", () => {
    for (const e of visible) allBox.checked ? S.selected.add(e.id) : S.selected.delete(e.id);
    updateTable();
  });
  const th = (c) => {
    const on = S.sort.key === c.id;
    const b = el("button", { class: "sort", "data-col": c.id, title: (c.group === "Metrics" ? "metric of the best checkpoint (latest when no primary metric)" : c.group === "Params" ? "param" : "") + " — click to sort" },
      c.label, c.goal ? el("span", { class: "goal", title: c.goal }, c.goal === "minimize" ? " ↓" : " ↑") : null,
      on ? el("span", { class: "arrow" }, S.sort.desc ? " ▼" : " ▲") : null);
    b.addEventListener("click", () => {
      if (S.sort.key === c.id) S.sort.desc = !S.sort.desc;
      else { S.sort.key = c.id; S.sort.desc = c.group === "Metrics" ? c.goal === "maximize" : c.id === "f:created"; }
      updateTable();
    });
    return el("th", { class: (c.num ? "num " : "") + "g-" + c.group.toLowerCase(), "aria-sort": on ? (S.sort.desc ? "descending" : "ascending") : null }, b);
  };
  const head = el("thead", {}, el("tr", {}, el("th", { class: "check" }, allBox), el("th", { class: "idcol" }, "experiment"), ...shown.map(th)));
  const body = el("tbody", {}, ...visible.map((e) => {
    const box = el("input", { type: "checkbox", "aria-label": "select " + shortId(e.id) });
    box.checked = S.selected.has(e.id);
    box.addEventListener("click", (ev) => ev.stopPropagation());
    box.addEventListener("change", () => { box.checked ? S.selected.add(e.id) : S.selected.delete(e.id); updateTable(); });
    const tr = el("tr", { class: "exp" + (S.selected.has(e.id) ? " selected" : ""), "data-id": e.id },
      el("td", { class: "check" }, box),
      el("td", { class: "idcol" }, el("a", { href: "#/e/" + e.id, class: "mono id", title: e.id }, shortId(e.id)), e.name ? el("span", { class: "name", title: e.name }, e.name) : null,
        e.corrupt_records ? el("span", { class: "flag bad", title: e.corrupt_records + " record(s) could not be read" }, "!") : null),
      ...shown.map((c) => {
        const v = c.cell(e);
        return el("td", { class: (c.num ? "num " : "") + "g-" + c.group.toLowerCase(), title: typeof v === "string" && v.length > 18 ? v : null }, v);
      }));
    tr.addEventListener("click", (ev) => { if (!ev.target.closest("a,input,button,td.check")) go("#/e/" + e.id); });
    return tr;
  }));
  table.replaceChildren(head, body);
  more.replaceChildren();
  if (rows.length > visible.length) {
    more.append(el("button", { class: "btn", onclick: () => { S.limit += 500; updateTable(); } },
      "Show " + Math.min(500, rows.length - visible.length) + " more (" + (rows.length - visible.length) + " hidden)"));
  }
}

function renderColumnChooser(pop) {
  const { all, def } = shownColumns(S.list);
  const choice = S.cols;
  const groups = ["Metrics", "Params", "Fields"];
  const shownNow = (c) => (def.has(c.id) || choice.on.includes(c.id)) && !choice.off.includes(c.id);
  pop.replaceChildren(
    el("div", { class: "pop-head" }, el("strong", {}, "Columns"),
      el("button", { class: "btn small", onclick: () => { S.cols = { on: [], off: [] }; store("cols", S.cols); renderColumnChooser(pop); updateTable(); } }, "Reset")),
    ...groups.map((g) => {
      const cs = all.filter((c) => c.group === g && c.id !== "f:status");
      if (!cs.length) return null;
      return el("div", { class: "pop-group" }, el("div", { class: "muted" }, g),
        ...cs.map((c) => {
          const box = el("input", { type: "checkbox", "data-col": c.id });
          box.checked = shownNow(c);
          box.addEventListener("change", () => {
            choice.on = choice.on.filter((x) => x !== c.id);
            choice.off = choice.off.filter((x) => x !== c.id);
            if (box.checked && !def.has(c.id)) choice.on.push(c.id);
            if (!box.checked && def.has(c.id)) choice.off.push(c.id);
            store("cols", choice);
            updateTable();
          });
          return el("label", { class: "pop-item" }, box, " ", c.label);
        }));
    }));
}
`;
