/**
 * `rep ls` and `rep ps`: list experiments as a table, ids or JSON, with filters and sorting.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { shortId } from "../format/ids.ts";
import type { ExperimentView } from "../repository.ts";
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
import { compileFilters, matches, parseSort, sortViews } from "../catalog/filter.ts";
import { checkpointLabel, jsonText, metricNames, statusText, terminalWidth } from "./views.ts";

const OPTIONS = {
  ...REPO_OPTIONS,
  filter: { type: "string", short: "f", multiple: true },
  sort: { type: "string", short: "s" },
  all: { type: "boolean", short: "a" },
  json: { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
} as const;

const FILTER_HELP = `Filters (-f "NAME OP VALUE", repeatable, all must match):
  OP is one of  =  !=  <  <=  >  >=  ~ (contains). VALUE is read as an integer, else a float,
  else true/false, else a string; quote it ('"10"') to force a string.
  NAME is one of:
    status        running, succeeded, failed, stopped or crashed
    created       start time: an ISO date or time (2024-05-01, 2024-05-01T12:00Z), or an age
                  (30m, 12h, 7d, 2w): "created > 7d" = started in the last 7 days
    user, host    who and where
    command       the command line as one string (use ~ to match part of it)
    tag           "tag = best" has the tag, "tag != best" lacks it
    step          step of the latest checkpoint
    exit_code     the command's exit code
    id            "id = a1b2" matches ids starting with a1b2
    PARAM         any param, e.g. "lr <= 0.01"
    METRIC        a metric of the best checkpoint (the latest when there is no primary metric)
    latest.METRIC the latest checkpoint's metric
    any.METRIC    matches when ANY checkpoint matches, e.g. "any.loss < 0.1"
    params.NAME / best.NAME   the param or the metric when both have that name
  An experiment without the value never matches. An unknown NAME is an error listing valid names.`;

const help = `rep ls: list experiments

Usage: rep ls [options]

Shows one row per experiment, newest first: id, when it started, status, host and user (when
they vary), the params that differ between the listed experiments, and the best and latest
checkpoints with their metrics (primary metric first).

Options:
  -f, --filter "NAME OP VALUE"  Keep experiments that match (repeatable; see below)
  -s, --sort KEY[-desc|-asc]    Sort by a field, param or metric (default: created-desc;
                                ascending when no direction is given; missing values last)
  -a, --all                     Show every param, not only the ones that differ
  -q, --quiet                   Print full experiment ids only, one per line
      --json                    Print JSON (see docs/json.md)
  -R, --repository URL          Repository to read
  -h, --help                    Show this help

${FILTER_HELP}

Examples:
  rep ls -f "status = succeeded" -s accuracy-desc
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
}

function sameEverywhere(values: unknown[]): boolean {
  const first = JSON.stringify(values[0] ?? null);
  return values.every((v) => JSON.stringify(v ?? null) === first);
}

function clip(s: string, max: number | null): string {
  return max !== null && s.length > max ? s.slice(0, max - 1) + "…" : s;
}

/** Build the columns of the table. */
function columns(views: ExperimentView[], all: boolean, io: Io, cellMax: number | null): Column[] {
  const cols: Column[] = [];
  const now = Date.now();
  cols.push({ head: "ID", cells: views.map((v) => shortId(v.id)), priority: 100 });
  cols.push({ head: "CREATED", cells: views.map((v) => ago(v.record.created, now)), priority: 80 });
  cols.push({ head: "STATUS", cells: views.map((v) => statusText(io, v.status)), priority: 90 });
  if (!sameEverywhere(views.map((v) => v.record.host))) {
    cols.push({
      head: "HOST",
      cells: views.map((v) => clip(v.record.host, cellMax)),
      priority: 30,
    });
  }
  if (!sameEverywhere(views.map((v) => v.record.user))) {
    cols.push({
      head: "USER",
      cells: views.map((v) => clip(v.record.user, cellMax)),
      priority: 31,
    });
  }
  const paramNames = [...new Set(views.flatMap((v) => Object.keys(v.record.params)))];
  const shown = all || views.length < 2
    ? paramNames
    : paramNames.filter((p) => !sameEverywhere(views.map((v) => v.record.params[p])));
  shown.forEach((p, i) => {
    cols.push({
      head: p,
      cells: views.map((v) => clip(fmtValue(v.record.params[p]), cellMax)),
      priority: 40 - i / 1000,
    });
  });
  const primary = views.flatMap((v) =>
    v.record.primary_metric ? [v.record.primary_metric.name] : []
  );
  for (const which of ["best", "latest"] as const) {
    const cks = views.map((v) => v[which]);
    if (cks.every((c) => c === null)) continue;
    const base = which === "best" ? 70 : 50;
    cols.push({ head: which.toUpperCase(), cells: cks.map(checkpointLabel), priority: base });
    const names = metricNames(cks, primary);
    names.forEach((m, i) => {
      cols.push({
        head: m,
        cells: cks.map((c) => clip(fmtValue(c?.metrics[m]), cellMax)),
        priority: i === 0 ? base - 5 : base - 40 - i / 1000,
      });
    });
  }
  return cols;
}

function visibleLength(s: string): number {
  // deno-lint-ignore no-control-regex
  return s.replace(/\x1b\[[0-9;]*m/g, "").length;
}

function render(cols: Column[], width: number | null, io: Io): string {
  const hidden: string[] = [];
  const widthOf = (c: Column) => Math.max(c.head.length, ...c.cells.map(visibleLength));
  const total = (cs: Column[]) => cs.reduce((n, c) => n + widthOf(c), 0) + 2 * (cs.length - 1);
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
  const widths = shown.map(widthOf);
  const n = shown[0]?.cells.length ?? 0;
  const line = (cells: string[]) =>
    cells.map((c, i) => i === cells.length - 1 ? c : c + " ".repeat(widths[i]! - visibleLength(c)))
      .join("  ").trimEnd();
  const lines = [style(io, "bold", line(shown.map((c) => c.head)))];
  for (let r = 0; r < n; r++) lines.push(line(shown.map((c) => c.cells[r]!)));
  let out = lines.map((l) => width !== null && visibleLength(l) > width ? cutVisible(l, width) : l)
    .join("\n") + "\n";
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
  return render(columns(views, all, io, width === null ? null : 32), width, io);
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
  const { repo } = await openRepo(values.repository, io);
  try {
    const progress = listProgress(io);
    const all = await repo.list(progress ? { progress } : {});
    const filters = compileFilters(values.filter ?? [], all);
    const sort = parseSort(values.sort ?? "created-desc", all);
    let views = all.filter((v) =>
      (!running || v.status === "running") && filters.every((f) => matches(v, f))
    );
    views = sortViews(views, sort);
    if (values.json) {
      io.out(jsonText(views.map(experimentSummary)));
      return 0;
    }
    if (values.quiet) {
      io.out(views.map((v) => v.id + "\n").join(""));
      return 0;
    }
    if (!views.length) {
      const why = all.length === 0
        ? `No experiments in ${repo.url}`
        : running
        ? "No running experiments"
        : `No experiments match the filters (${all.length} in the repository)`;
      io.err(`${why}\n`);
      return 0;
    }
    io.out(renderTable(views, { all: values.all ?? false, width: terminalWidth(io), io }));
    return 0;
  } finally {
    await repo.close();
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
