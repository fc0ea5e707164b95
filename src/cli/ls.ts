/**
 * `rep ls` and `rep ps`: list experiments as a table, ids or JSON, with filters and sorting.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { shortId } from "../format/ids.ts";
import type { ExperimentView } from "../repository.ts";
import type { CheckpointBrief } from "../catalog/views.ts";
import {
  ago,
  type Command,
  fmtValue,
  type Io,
  listProgress,
  openRepo,
  parse,
  REPO_OPTIONS,
  style,
} from "./common.ts";
import { experimentSummary } from "../present/json.ts";
import { compileFilters, FIELDS, parseSort } from "../catalog/filter.ts";
import { checkpointLabel, metricNames, statusText, terminalWidth } from "./views.ts";

const OPTIONS = {
  ...REPO_OPTIONS,
  filter: { type: "string", short: "f", multiple: true },
  sort: { type: "string", short: "s" },
  all: { type: "boolean", short: "a" },
  json: { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
  limit: { type: "string", short: "n" },
} as const;

function isFieldSort(spec: string): boolean {
  return (FIELDS as readonly string[]).includes(spec.replace(/-(desc|asc)$/, ""));
}

/** Rows the table shows when no --limit is given. */
export const TABLE_LIMIT = 100;

/** A --limit value: a positive whole number, or `all` (null: no limit). */
function limitOf(text: string): number | null {
  if (text === "all") return null;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(
      `Invalid --limit "${text}": expected a positive whole number or "all"`,
      "Example: rep ls -n 20, or rep ls -n all for every experiment",
    );
  }
  return n;
}

const FILTER_HELP = `Filters (-f "NAME OP VALUE", repeatable, all must match):
  OP is one of  =  !=  <  <=  >  >=  ~ (contains). VALUE is read as an integer, else a float,
  else true/false, else a string; quote it ('"10"') to force a string.
  NAME is one of:
    status        running, succeeded, failed, stopped or crashed
    created       start time: an ISO date or time (2024-05-01, 2024-05-01T12:00Z), or an age
                  (30m, 12h, 7d, 2w): "created > 7d" = started in the last 7 days
    user, host    who and where
    command       the command line as one string (use ~ to match part of it)
    name          the experiment's name
    tag           "tag = best" has the tag, "tag != best" lacks it (see rep tag)
    note          the experiment's note: "note ~ diverged" (see rep note)
    step          step of the latest checkpoint
    exit_code     the command's exit code
    id            "id = a1b2" matches ids starting with a1b2
    PARAM         any param, e.g. "lr <= 0.01"
    METRIC        a metric of the best checkpoint (the latest when there is no primary metric)
    latest.METRIC the latest checkpoint's metric
    any.METRIC    matches when ANY checkpoint matches, e.g. "any.loss < 0.1"
    params.NAME / best.NAME   the param or the metric when both have that name
  An experiment without the value never matches. An unknown NAME, an unknown operator, or a
  value that NAME cannot hold ("loss < abc" where loss is a number, an unknown status) is an
  error (exit code 2) that lists what is valid.`;

const help = `rep ls: list experiments

Usage: rep ls [options]

Shows one row per experiment, newest first: id, name (when any has one), when it started,
status, host and user (when they vary), the params that differ between the listed experiments,
tags, the best and latest checkpoints with their metrics (primary metric first), and notes.

Options:
  -f, --filter "NAME OP VALUE"  Keep experiments that match (repeatable; see below)
  -s, --sort KEY[-desc|-asc]    Sort by a field, param or metric (default: created-desc;
                                ascending when no direction is given; missing values last)
  -a, --all                     Show every param, not only the ones that differ
  -n, --limit N|all             Show only the first N experiments (after filters and sort).
                                The table shows the first 100 unless given (and says how many
                                more match); -q and --json print every one unless given
  -q, --quiet                   Print full experiment ids only, one per line
      --json                    Print JSON (see docs/json.md)
  -R, --repository URL          Repository to read
  -h, --help                    Show this help

${FILTER_HELP}

Examples:
  rep ls -f "status = succeeded" -s accuracy-desc
  rep ls -n all > experiments.txt
  rep ls -f "any.loss < 0.1" -f "created > 7d"
  rep rm $(rep ls -q -f "accuracy < 0.2")
`;

const psHelp = `rep ps: list running experiments

Usage: rep ps [options]

The same as "rep ls -f 'status = running'"; accepts every option of rep ls.
An experiment whose heartbeat stopped without a final status shows as crashed, not running.

Options:
  -f, --filter "NAME OP VALUE"  Keep experiments that match (see rep ls --help)
  -s, --sort KEY[-desc|-asc]    Sort (default: created-desc)
  -a, --all                     Show every param
  -n, --limit N|all             Only the first N (the table: 100 unless given)
  -q, --quiet                   Full ids only
      --json                    Print JSON (see docs/json.md)
  -R, --repository URL          Repository to read
  -h, --help                    Show this help
`;

interface Column {
  head: string;
  cells: string[];
  /** Columns with lower priority are hidden first when the table is too wide. */
  priority: number;
  /** Widest cell or head, in visible characters. */
  width: number;
  /** Cells hold colour codes (their visible length is shorter than their length). */
  styled?: boolean;
}

function column(head: string, cells: string[], priority: number, styled = false): Column {
  let width = head.length;
  for (const c of cells) {
    const n = styled ? visibleLength(c) : c.length;
    if (n > width) width = n;
  }
  return { head, cells, priority, width, styled };
}

/** True when every value is the same (params may be lists; hosts and users are strings). */
function sameEverywhere(values: unknown[]): boolean {
  const key = (v: unknown) => Array.isArray(v) ? JSON.stringify(v) : v ?? null;
  const first = key(values[0]);
  for (const v of values) if (key(v) !== first) return false;
  return true;
}

function clip(s: string, max: number | null): string {
  return max !== null && s.length > max ? s.slice(0, max - 1) + "…" : s;
}

/** A checkpoint's cell: its id and step, and how many warnings it has (files left out…). */
function briefLabel(c: CheckpointBrief | null): string {
  if (!c) return "";
  const n = c.warnings ?? 0;
  if (!n) return checkpointLabel(c);
  const w = `${n} warning${n === 1 ? "" : "s"}`;
  return c.step === null ? `${shortId(c.id)} (${w})` : `${shortId(c.id)} (step ${c.step}, ${w})`;
}

/** Build the columns of the table. */
function columns(views: ExperimentView[], all: boolean, io: Io, cellMax: number | null): Column[] {
  const cols: Column[] = [];
  const now = Date.now();
  cols.push(column("ID", views.map((v) => shortId(v.id)), 100));
  if (views.some((v) => v.name !== null)) {
    cols.push(column("NAME", views.map((v) => clip(v.name ?? "", cellMax)), 95));
  }
  cols.push(column("CREATED", views.map((v) => ago(v.created, now)), 80));
  cols.push(column("STATUS", views.map((v) => statusText(io, v.status)), 90, io.color));
  if (!sameEverywhere(views.map((v) => v.host))) {
    cols.push(column("HOST", views.map((v) => clip(v.host, cellMax)), 30));
  }
  if (!sameEverywhere(views.map((v) => v.user))) {
    cols.push(column("USER", views.map((v) => clip(v.user, cellMax)), 31));
  }
  const params = views.map((v) => v.params);
  const paramNames = new Set<string>();
  for (const p of params) for (const k in p) paramNames.add(k);
  const shown = all || views.length < 2
    ? [...paramNames]
    : [...paramNames].filter((p) => !sameEverywhere(params.map((x) => x[p])));
  shown.forEach((p, i) => {
    cols.push(column(p, params.map((x) => clip(fmtValue(x[p]), cellMax)), 40 - i / 1000));
  });
  if (views.some((v) => v.tags.length)) {
    cols.push(column("TAGS", views.map((v) => clip(v.tags.join(","), cellMax)), 35));
  }
  const primary = new Set<string>();
  for (const v of views) if (v.primaryMetric) primary.add(v.primaryMetric.name);
  for (const which of ["bestBrief", "latestBrief"] as const) {
    const cks = views.map((v) => v[which]);
    if (cks.every((c) => c === null)) continue;
    const base = which === "bestBrief" ? 70 : 50;
    cols.push(column(which === "bestBrief" ? "BEST" : "LATEST", cks.map(briefLabel), base));
    const names = metricNames(cks, [...primary]);
    names.forEach((m, i) => {
      cols.push(column(
        m,
        cks.map((c) => clip(fmtValue(c?.metrics[m]), cellMax)),
        i === 0 ? base - 5 : base - 40 - i / 1000,
      ));
    });
  }
  if (views.some((v) => v.note)) {
    cols.push(column("NOTE", views.map((v) => clip(v.note ?? "", cellMax ?? 60)), 20));
  }
  return cols;
}

function visibleLength(s: string): number {
  // deno-lint-ignore no-control-regex
  return s.includes("\x1b") ? s.replace(/\x1b\[[0-9;]*m/g, "").length : s.length;
}

function render(cols: Column[], width: number | null, io: Io): string {
  const hidden: string[] = [];
  const total = (cs: Column[]) => cs.reduce((n, c) => n + c.width, 0) + 2 * (cs.length - 1);
  let shown = cols;
  if (width !== null) {
    while (total(shown) > width && shown.length > 1) {
      let drop = 0;
      for (let i = 1; i < shown.length; i++) {
        if (shown[i]!.priority <= shown[drop]!.priority) drop = i;
      }
      if (shown[drop]!.priority >= 90) break;
      hidden.push(shown[drop]!.head);
      shown = shown.filter((_, i) => i !== drop);
    }
  }
  const n = shown[0]?.cells.length ?? 0;
  const last = shown.length - 1;
  const cell = (c: Column, text: string, i: number) => {
    if (i === last) return text;
    const pad = c.width - (c.styled ? visibleLength(text) : text.length);
    return pad > 0 ? text + " ".repeat(pad) : text;
  };
  const lines: string[] = new Array(n + 1);
  const head = style(io, "bold", shown.map((c, i) => cell(c, c.head, i)).join("  ").trimEnd());
  lines[0] = width !== null && visibleLength(head) > width ? cutVisible(head, width) : head;
  for (let r = 0; r < n; r++) {
    let line = "";
    for (let i = 0; i < shown.length; i++) {
      if (i) line += "  ";
      line += cell(shown[i]!, shown[i]!.cells[r]!, i);
    }
    line = line.trimEnd();
    lines[r + 1] = width !== null && visibleLength(line) > width ? cutVisible(line, width) : line;
  }
  let out = lines.join("\n") + "\n";
  if (hidden.length) {
    out += style(
      io,
      "dim",
      `(${hidden.length} column(s) hidden to fit the terminal: ${hidden.reverse().join(", ")}; ` +
        "see rep ls --json or rep show ID)",
    ) + "\n";
  }
  return out;
}

/** Cut a line with ANSI codes to `width` visible characters, ending it with "…". */
function cutVisible(s: string, width: number): string {
  let out = "";
  let n = 0;
  let styled = false;
  for (let i = 0; i < s.length;) {
    // deno-lint-ignore no-control-regex
    const m = s.slice(i).match(/^\x1b\[[0-9;]*m/);
    if (m) {
      out += m[0];
      styled = true;
      i += m[0].length;
      continue;
    }
    if (n === width - 1) return out + "…" + (styled ? "\x1b[0m" : "");
    out += s[i];
    n++;
    i++;
  }
  return out;
}

/**
 * The `rep ls` table. With a `width` (a terminal), long cells are clipped and the least useful
 * columns are hidden until the table fits (named in a last line); without one, nothing is cut.
 */
export function renderTable(
  views: ExperimentView[],
  options: { all: boolean; width: number | null; io: Io },
): string {
  const { all, width, io } = options;
  let out = render(columns(views, all, io, width === null ? null : 32), width, io);
  const warned = views.filter((v) => v.bestBrief?.warnings || v.latestBrief?.warnings).length;
  if (warned) {
    out += style(
      io,
      "yellow",
      `warning: ${warned} experiment(s) above have a best or latest checkpoint with warnings ` +
        "(files left out or uncertain); rep show ID says which",
    ) + "\n";
  }
  return out;
}

async function list(args: string[], io: Io, running: boolean): Promise<number> {
  const name = running ? "ps" : "ls";
  const { values, positionals } = parse(name, args, OPTIONS);
  if (values.help) {
    io.out(running ? psHelp : help);
    return 0;
  }
  if (positionals.length) {
    throw new UsageError(
      `rep ${name} takes no arguments, got "${positionals[0]}"`,
      positionals[0]!.includes(" ") || /[<>=]/.test(positionals[0]!)
        ? `Filters go after -f: rep ${name} -f "${positionals.join(" ")}"`
        : `To see one experiment: rep show ${positionals[0]}`,
    );
  }
  if (values.json && values.quiet) {
    throw new UsageError("Use either --json or -q, not both", `See rep ${name} --help`);
  }
  // The table shows a screenful or so unless asked; ids and JSON are for programs: all of them.
  const limit = values.limit !== undefined
    ? limitOf(values.limit)
    : values.json || values.quiet
    ? null
    : TABLE_LIMIT;
  const { repo } = await openRepo(values.repository, io);
  try {
    const progress = listProgress(io);
    const texts = values.filter ?? [];
    const sortSpec = values.sort ?? "created-desc";
    const catalog = repo.catalog;
    const total = await catalog.count(progress ? { progress } : {});
    // Names (with their value types) come from the index; only filters and sorts need them, and
    // an empty repository has none to check against.
    const names = total && (texts.length || !isFieldSort(sortSpec)) ? await catalog.names() : null;
    const filters = compileFilters(texts, names);
    const sort = parseSort(sortSpec, names);
    const full = !values.quiet;
    const { views, matched } = await catalog.query({ filters, sort, limit, running, full });
    if (values.json) {
      writeJsonList(io, views, experimentSummary);
      return 0;
    }
    if (values.quiet) {
      for (let i = 0; i < views.length; i += 1000) {
        io.out(views.slice(i, i + 1000).map((v) => v.id + "\n").join(""));
      }
      return 0;
    }
    if (!views.length) {
      const why = total === 0
        ? `No experiments in ${repo.url}`
        : running
        ? "No running experiments"
        : `No experiments match the filters (${total} in the repository)`;
      io.err(`${why}\n`);
      return 0;
    }
    io.out(renderTable(views, { all: values.all ?? false, width: terminalWidth(io), io }));
    if (matched > views.length && values.limit === undefined) {
      const what = running ? "running experiments" : texts.length ? "matches" : "experiments";
      io.out(
        style(
          io,
          "dim",
          `(${views.length} of ${matched} ${what} shown; rep ${name} -n all shows every one)`,
        ) + "\n",
      );
    }
    return 0;
  } finally {
    await repo.close();
  }
}

/**
 * Print a JSON array as {@link jsonText} would, a thousand items at a time (a listing of 100k
 * experiments is never one string).
 */
function writeJsonList<T>(io: Io, items: T[], json: (item: T) => unknown): void {
  if (!items.length) {
    io.out("[]\n");
    return;
  }
  // JSON.stringify escapes newlines inside strings: every raw newline is indentation.
  const item = (x: T) => "  " + JSON.stringify(json(x), null, 2).replaceAll("\n", "\n  ");
  for (let i = 0; i < items.length; i += 1000) {
    const part = items.slice(i, i + 1000).map(item).join(",\n");
    const last = i + 1000 >= items.length;
    io.out((i === 0 ? "[\n" : "") + part + (last ? "\n]\n" : ",\n"));
  }
}

/** `rep ls`. */
export const command: Command = {
  summary: "List experiments",
  help,
  run: (args, io) => list(args, io, false),
};

/** `rep ps`: `rep ls` restricted to running experiments. */
export const psCommand: Command = {
  summary: "List running experiments",
  help: psHelp,
  run: (args, io) => list(args, io, true),
};
