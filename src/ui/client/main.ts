/**
 * The viewer's entry: header, router and the live refresh of the experiment list.
 *
 * @module
 */

/** Plain JavaScript, run in the browser. */
export const MAIN_JS: string = String.raw`
let mounted = null;

function renderHeader() {
  const r = route();
  const nav = document.getElementById("nav");
  const n = S.selected.size;
  nav.replaceChildren(
    link("#/", "Experiments", "navlink" + (r.view === "table" ? " on" : "")),
    el("a", { href: n ? compareHash([...S.selected]) : "#/compare/", class: "navlink" + (r.view === "compare" ? " on" : ""), id: "nav-compare" },
      "Compare", n ? el("span", { class: "n" }, String(n)) : null),
    link("#/explore", "Params vs metrics", "navlink" + (r.view === "explore" ? " on" : "")));
  const live = document.getElementById("live");
  const running = S.list.filter((e) => e.status === "running").length;
  live.replaceChildren(
    S.error ? el("span", { class: "error-inline", title: S.error.hint || "" }, "⚠ " + S.error.message) :
      el("span", { class: "dot" + (running ? " on" : "") }),
    running ? running + " running · " : "",
    S.fetched ? "updated " + new Date(S.fetched).toLocaleTimeString() : "loading…");
}

async function render() {
  const r = route();
  const key = JSON.stringify(r);
  renderHeader();
  if (mounted === key && r.view === "table") { updateTable(); return; }
  mounted = key;
  stopDetailTimers();
  const root = clear(document.getElementById("view"));
  root.className = "view-" + r.view;
  if (r.view === "table") mountTable(root);
  else if (r.view === "compare") await renderCompare(root, r.ids.length ? r.ids : [...S.selected]);
  else if (r.view === "explore") await renderExplore(root);
  else if (r.view === "detail") await renderDetail(root, r.id, r.tab);
  window.scrollTo(0, 0);
}

async function refresh() {
  try {
    const r = await api("/api/experiments");
    S.list = r.experiments;
    S.byId = new Map(S.list.map((e) => [e.id, e]));
    S.serverNow = Date.parse(r.now);
    S.fetched = Date.now();
    S.error = null;
    for (const id of [...S.selected]) if (!S.byId.has(id)) S.selected.delete(id);
    if (S.queryIds && S.query) await setQuery(S.query);
  } catch (err) {
    S.error = err;
  }
  const v = route().view;
  if (v === "table") await render();
  else renderHeader();
  const running = S.list.some((e) => e.status === "running");
  setTimeout(refresh, document.hidden ? 30000 : running ? 3000 : 15000);
}

window.addEventListener("hashchange", () => { render(); });
(async () => {
  try {
    S.repo = await api("/api/repository");
    document.getElementById("repo").textContent = S.repo.url;
    document.title = "rep · " + S.repo.url.replace(/^file:\/\//, "");
  } catch (err) {
    document.getElementById("view").append(errorBox(err));
  }
  await refresh();
  if (route().view !== "table") await render();
})();
`;
