/**
 * The viewer's stylesheet.
 *
 * @module
 */

/** CSS, served as /app.css. */
export const STYLE_CSS: string = String.raw`
:root {
  --fg: #111827; --muted: #6b7280; --line: #e5e7eb; --line2: #f1f5f9; --bg: #f6f7f9; --card: #fff;
  --accent: #2563eb; --accent-bg: #eff6ff; --bad: #dc2626; --warn: #b45309; --ok: #16a34a;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
}
* { box-sizing: border-box; }
html, body { margin: 0; background: var(--bg); color: var(--fg); font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
.mono, code, pre { font-family: var(--mono); font-size: 12px; }
.muted { color: var(--muted); }
.spacer { flex: 1; }
header.top { position: sticky; top: 0; z-index: 20; display: flex; align-items: center; gap: 18px; padding: 0 20px; height: 48px; background: #0f172a; color: #e2e8f0; }
header.top .brand { font-weight: 700; font-size: 16px; letter-spacing: .02em; color: #fff; }
header.top .repo { font-family: var(--mono); font-size: 12px; color: #94a3b8; max-width: 34vw; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
header.top nav { display: flex; gap: 4px; }
.navlink { color: #cbd5e1; padding: 6px 10px; border-radius: 6px; }
.navlink:hover { background: #1e293b; text-decoration: none; }
.navlink.on { background: #1e293b; color: #fff; }
.navlink .n, .seg-btn .n, .tab .n { margin-left: 6px; font-size: 11px; padding: 0 6px; border-radius: 9px; background: #334155; color: #e2e8f0; }
#live { margin-left: auto; font-size: 12px; color: #94a3b8; display: flex; align-items: center; gap: 6px; }
#live .dot { width: 8px; height: 8px; border-radius: 50%; background: #475569; display: inline-block; }
#live .dot.on { background: #22d3ee; box-shadow: 0 0 0 3px rgba(34, 211, 238, .25); }
.error-inline { color: #fca5a5; }
main#view { padding: 16px 20px 40px; max-width: 1880px; margin: 0 auto; }
.toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: 8px; margin-bottom: 10px; position: relative; }
.toolbar.small { font-size: 12px; gap: 12px; }
.search { flex: 1 1 320px; max-width: 560px; padding: 7px 10px; border: 1px solid #d1d5db; border-radius: 6px; font: inherit; font-family: var(--mono); font-size: 12px; background: #fff; }
.search.small { flex: 0 1 260px; padding: 4px 8px; margin-bottom: 8px; }
.search:focus { outline: 2px solid #bfdbfe; border-color: var(--accent); }
.btn { font: inherit; padding: 6px 12px; border: 1px solid #d1d5db; border-radius: 6px; background: #fff; color: var(--fg); cursor: pointer; white-space: nowrap; }
.btn:hover { background: #f9fafb; text-decoration: none; }
.btn.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
.btn.primary:disabled { background: #93c5fd; border-color: #93c5fd; cursor: default; }
.btn.small { padding: 2px 8px; font-size: 12px; }
.btn.on { background: var(--accent-bg); border-color: #93c5fd; }
.seg { display: inline-flex; border: 1px solid #d1d5db; border-radius: 6px; overflow: hidden; background: #fff; }
.seg-btn { font: inherit; border: 0; border-right: 1px solid var(--line); background: none; padding: 6px 10px; cursor: pointer; color: var(--fg); }
.seg-btn:last-child { border-right: 0; }
.seg-btn .n { background: #e5e7eb; color: #374151; }
.seg-btn.on { background: var(--accent-bg); color: var(--accent); font-weight: 600; }
.count { font-size: 12px; }
.qmsg .error { margin-bottom: 10px; }
.error { color: #991b1b; background: #fef2f2; border: 1px solid #fecaca; border-radius: 6px; padding: 8px 12px; }
.error .hint { color: #7f1d1d; margin-top: 4px; font-size: 12px; }
.warn-box { color: #78350f; background: #fffbeb; border: 1px solid #fde68a; border-radius: 6px; padding: 8px 12px; }
.popover { position: absolute; right: 0; top: 38px; z-index: 30; background: #fff; border: 1px solid #d1d5db; border-radius: 8px; box-shadow: 0 10px 30px rgba(0,0,0,.12); padding: 10px 14px; display: grid; grid-template-columns: repeat(3, minmax(140px, 1fr)); gap: 8px 24px; max-height: 70vh; overflow: auto; min-width: 520px; }
.popover[hidden] { display: none; }
.pop-head { grid-column: 1 / -1; display: flex; justify-content: space-between; align-items: center; }
.pop-group { display: flex; flex-direction: column; gap: 2px; }
.pop-item { white-space: nowrap; cursor: pointer; }
.table-wrap { overflow-x: auto; background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
/* The experiments table scrolls inside the window, so its header stays in sight. */
.view-table .table-wrap { max-height: calc(100vh - 124px); overflow: auto; }
table.grid-table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
.grid-table th, .grid-table td { padding: 5px 8px; border-bottom: 1px solid var(--line2); text-align: left; white-space: nowrap; max-width: 180px; overflow: hidden; text-overflow: ellipsis; }
.grid-table thead th { position: sticky; top: 0; background: #f9fafb; border-bottom: 1px solid var(--line); font-weight: 600; color: #374151; font-size: 12px; z-index: 1; }
.grid-table th.num, .grid-table td.num { text-align: right; }
.grid-table th.g-metrics { background: #f5f8ff; }
.grid-table td.g-metrics { background: #fafcff; font-weight: 500; }
.grid-table tbody tr:hover td { background: #f3f6fb; }
.grid-table tr.selected td { background: var(--accent-bg); }
tr.exp { cursor: pointer; }
th.check, td.check { width: 28px; padding-right: 0; }
td.idcol, th.idcol { max-width: 240px; }
td.idcol .id { font-weight: 600; margin-right: 8px; }
td.idcol .name { color: #374151; }
button.sort { font: inherit; font-weight: 600; color: inherit; background: none; border: 0; padding: 0; cursor: pointer; }
button.sort:hover { color: var(--accent); }
.goal { color: var(--muted); font-weight: 400; }
.arrow { color: var(--accent); }
.pill { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 11px; font-weight: 600; background: #f3f4f6; color: #374151; }
.st-running { background: #cffafe; color: #0e7490; }
.st-succeeded { background: #dcfce7; color: #15803d; }
.st-failed { background: #fee2e2; color: #b91c1c; }
.st-stopped { background: #fef3c7; color: #92400e; }
.st-crashed { background: #f3e8ff; color: #7e22ce; }
.tag { display: inline-block; margin-right: 4px; padding: 0 6px; border-radius: 4px; background: #eef2ff; color: #3730a3; font-size: 11px; }
.note { color: #4b5563; font-style: italic; }
.cmd { font-family: var(--mono); font-size: 11px; color: #4b5563; }
.flag { display: inline-block; margin: 1px 4px 1px 0; padding: 0 6px; border-radius: 4px; font-size: 11px; max-width: 420px; overflow: hidden; text-overflow: ellipsis; vertical-align: middle; }
.flag.bad { background: #fee2e2; color: #991b1b; }
.flag.warn { background: #fef3c7; color: #92400e; }
.more { padding: 10px 0; text-align: center; }
.empty { color: var(--muted); padding: 24px; text-align: center; }
.page-head { display: flex; flex-wrap: wrap; align-items: center; gap: 12px; margin: 4px 0 14px; }
.page-head h2 { margin: 0; font-size: 18px; }
.chips { display: flex; flex-wrap: wrap; gap: 6px; }
.exp-chip { display: inline-flex; align-items: center; gap: 6px; background: #fff; border: 1px solid var(--line); border-radius: 16px; padding: 2px 4px 2px 10px; }
.exp-chip .x { border: 0; background: none; cursor: pointer; color: var(--muted); font-size: 14px; line-height: 1; padding: 0 4px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: middle; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; margin-bottom: 14px; min-width: 0; }
.card h3 { margin: 0 0 10px; font-size: 14px; }
.card h4 { margin: 14px 0 6px; font-size: 13px; }
.chart-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 14px; }
.chart { position: relative; min-width: 0; }
.chart-title { font-weight: 600; margin-bottom: 2px; }
.chart-box { position: relative; }
svg.plot { width: 100%; height: auto; display: block; overflow: visible; }
svg.plot text { font-size: 11px; fill: #6b7280; font-family: system-ui, sans-serif; }
svg.plot .axis-name { fill: #374151; font-weight: 600; }
svg.plot .grid line { stroke: #eef0f3; }
svg.plot .grid line.v { stroke: #f3f4f6; }
svg.plot path.series { fill: none; stroke-width: 1.8; stroke-linejoin: round; }
svg.plot path.raw { fill: none; stroke-width: 1; opacity: .25; }
svg.plot .rule { stroke: #9ca3af; stroke-dasharray: 3 3; }
svg.plot .hit { fill: transparent; cursor: crosshair; }
svg.plot .dot { stroke: #fff; stroke-width: 1.5; }
svg.plot .pt { stroke: #fff; stroke-width: 1; opacity: .85; cursor: pointer; }
svg.plot .pt:hover { opacity: 1; stroke: #111827; }
svg.plot .empty-note { fill: #9ca3af; font-size: 13px; }
svg.plot .pline { fill: none; stroke-width: 1.4; opacity: .7; cursor: pointer; }
svg.plot .pline.dim { opacity: .06; }
svg.plot .pline.hot { stroke-width: 3; opacity: 1; }
svg.plot .axis line { stroke: #9ca3af; }
svg.plot .brush { fill: rgba(37, 99, 235, .18); stroke: #2563eb; }
.tip { position: absolute; z-index: 10; pointer-events: none; background: rgba(17, 24, 39, .94); color: #f9fafb; border-radius: 6px; padding: 6px 9px; font-size: 12px; min-width: 140px; max-width: 360px; box-shadow: 0 4px 14px rgba(0,0,0,.2); }
.tip[hidden] { display: none; }
.tip .muted { color: #9ca3af; }
.tip-head { font-weight: 600; margin-bottom: 3px; color: #e5e7eb; }
.tip-row { display: flex; align-items: center; gap: 4px; white-space: nowrap; }
.tip-row b { margin-left: auto; padding-left: 12px; font-variant-numeric: tabular-nums; }
.metric-pick { display: flex; flex-wrap: wrap; gap: 4px; align-items: center; }
.chip { font: inherit; font-size: 12px; padding: 2px 9px; border-radius: 12px; border: 1px solid #d1d5db; background: #fff; cursor: pointer; color: #374151; }
.chip.on { background: var(--accent-bg); border-color: #93c5fd; color: var(--accent); }
table.side th.key { font-family: var(--mono); font-weight: 500; color: #374151; background: #fafafa; }
table.side td { max-width: 260px; }
table.side td.num { text-align: left; }
table.side tr.group td { background: #f9fafb; font-weight: 600; color: var(--muted); font-size: 11px; letter-spacing: .02em; }
table.side tr.diff th.key { box-shadow: inset 3px 0 0 #f59e0b; }
table.side td.best { color: var(--ok); font-weight: 700; }
.diff-block { margin-top: 12px; }
pre.diff, pre.log, pre.code { background: #0b1020; color: #e5e7eb; padding: 10px 12px; border-radius: 6px; overflow: auto; max-height: 520px; margin: 6px 0; white-space: pre; }
pre.log { max-height: 70vh; min-height: 200px; white-space: pre-wrap; word-break: break-all; }
pre.diff .da { color: #86efac; } pre.diff .dd { color: #fca5a5; } pre.diff .dc { color: #67e8f9; } pre.diff .dh { color: #f9fafb; font-weight: 700; }
.chg { display: inline-block; min-width: 58px; font-size: 11px; font-weight: 600; }
.chg.added { color: var(--ok); } .chg.removed { color: var(--bad); } .chg.changed { color: var(--warn); }
ul.files { list-style: none; margin: 4px 0; padding: 0; }
ul.files li { padding: 1px 0; font-family: var(--mono); font-size: 12px; }
.explore-grid { display: grid; grid-template-columns: minmax(0, 5fr) minmax(0, 7fr); gap: 14px; align-items: start; }
.legend { display: flex; gap: 12px; font-size: 12px; color: var(--muted); margin-top: 6px; }
.ramp-legend { display: flex; align-items: center; gap: 6px; font-size: 12px; color: var(--muted); }
.ramp { display: inline-block; width: 140px; height: 8px; border-radius: 4px; background: linear-gradient(90deg, rgb(49,54,149), rgb(116,173,209), rgb(253,174,97), rgb(215,48,39)); }
.detail-head h2 .mono { font-size: 18px; }
.note-full { background: #fff; border-left: 3px solid #a5b4fc; padding: 6px 12px; margin: 0 0 12px; white-space: pre-wrap; }
nav.tabs { display: flex; gap: 2px; border-bottom: 1px solid var(--line); margin-bottom: 14px; }
.tab { padding: 8px 14px; color: #4b5563; border-bottom: 2px solid transparent; margin-bottom: -1px; }
.tab:hover { text-decoration: none; color: var(--fg); }
.tab.on { color: var(--accent); border-bottom-color: var(--accent); font-weight: 600; }
.tab .n { background: #e5e7eb; color: #374151; }
.two { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 14px; align-items: start; }
table.kv { border-collapse: collapse; width: 100%; }
table.kv th { text-align: left; font-weight: 500; color: var(--muted); padding: 3px 12px 3px 0; vertical-align: top; white-space: nowrap; width: 1%; }
table.kv td { padding: 3px 0; word-break: break-word; }
table.kv.env td { font-size: 12px; }
td.redacted { color: #b45309; }
tr.ck.best td { background: #f0fdf4; }
.star { color: #ca8a04; }
td.flags { white-space: normal; max-width: 460px; }
ul.packages { columns: 4 220px; list-style: none; padding: 0; margin: 0; font-size: 12px; }
.code-split { display: grid; grid-template-columns: minmax(220px, 1fr) minmax(0, 3fr); gap: 14px; align-items: start; }
.code-files a.on { font-weight: 700; }
@media (max-width: 1100px) { .explore-grid, .two, .code-split { grid-template-columns: minmax(0, 1fr); } }
`;
