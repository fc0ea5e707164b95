/**
 * `rep plot`: a metric over steps, drawn in the terminal (for SSH and HPC sessions with no browser).
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { ExperimentView } from "../repository.ts";
import { type Command, fmtValue, type Io, openRepo, parse, REPO_OPTIONS, style } from "./common.ts";

const HELP = `Usage: rep plot ID [ID…] [-m METRIC] [--width N] [--height N] [--json]

Draw a metric of one or more experiments against the step, as a chart in the terminal. Without
-m, the experiment's primary metric (else its first metric) is drawn. Each experiment gets its own
mark; the legend lists them with their best value.

Options:
  -m, --metric NAME      Metric to draw (default: the primary metric)
      --width N          Chart width in columns (default: the terminal's, at most 100)
      --height N         Chart height in rows (default 15)
      --json             Print the series as JSON instead: [{id, metric, points: [[step, value]]}]
  -R, --repository URL   Repository
  -h, --help             This help
`;

const MARKS = ["*", "o", "+", "x", "#", "@", "%", "&"];

/** One series: (step, value) points of one experiment. */
export interface Series {
  id: string;
  metric: string;
  points: [number, number][];
}

/** The points of `metric` in an experiment's checkpoints (numbers only, NaN dropped). */
export function seriesOf(v: ExperimentView, metric: string): Series {
  const points: [number, number][] = [];
  v.checkpoints.forEach((c, i) => {
    const val = c.metrics[metric];
    if (typeof val === "number" && Number.isFinite(val)) points.push([c.step ?? i, val]);
  });
  points.sort((a, b) => a[0] - b[0]);
  return { id: v.id, metric, points };
}

/** Render series as a text chart of `width` × `height` plot cells plus axes. */
export function renderChart(series: Series[], width: number, height: number): string[] {
  const all = series.flatMap((s) => s.points);
  if (!all.length) return ["(no numeric values to plot)"];
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  if (y0 === y1) [y0, y1] = [y0 - Math.abs(y0 || 1) * 0.1, y1 + Math.abs(y1 || 1) * 0.1];
  const grid = Array.from({ length: height }, () => Array<string>(width).fill(" "));
  series.forEach((s, si) => {
    const mark = MARKS[si % MARKS.length]!;
    let prev: [number, number] | null = null;
    for (const [x, y] of s.points) {
      const cx = Math.round(((x - x0) / (x1 - x0)) * (width - 1));
      const cy = height - 1 - Math.round(((y - y0) / (y1 - y0)) * (height - 1));
      // Join consecutive points with dots so trends read as lines.
      if (prev) {
        const n = Math.max(Math.abs(cx - prev[0]), Math.abs(cy - prev[1]));
        for (let k = 1; k < n; k++) {
          const ix = Math.round(prev[0] + ((cx - prev[0]) * k) / n);
          const iy = Math.round(prev[1] + ((cy - prev[1]) * k) / n);
          if (grid[iy]![ix] === " ") grid[iy]![ix] = "·";
        }
      }
      grid[cy]![cx] = mark;
      prev = [cx, cy];
    }
  });
  const labels = [fmtValue(y1), fmtValue((y0 + y1) / 2), fmtValue(y0)];
  const lw = Math.max(...labels.map((l) => l.length));
  const lines = grid.map((row, i) => {
    const label = i === 0
      ? labels[0]!
      : i === height - 1
      ? labels[2]!
      : i === Math.floor((height - 1) / 2)
      ? labels[1]!
      : "";
    return `${label.padStart(lw)} │${row.join("")}`.trimEnd();
  });
  lines.push(`${" ".repeat(lw)} └${"─".repeat(width)}`);
  const left = `step ${fmtValue(x0)}`;
  const right = fmtValue(x1);
  lines.push(
    `${" ".repeat(lw + 2)}${left}${
      " ".repeat(Math.max(1, width - left.length - right.length))
    }${right}`,
  );
  return lines;
}

async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse("plot", args, {
    ...REPO_OPTIONS,
    metric: { type: "string", short: "m" },
    width: { type: "string" },
    height: { type: "string" },
    json: { type: "boolean" },
  });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  if (!positionals.length) {
    throw new UsageError("rep plot needs at least one id", "Example: rep plot 3f2a1b9 -m loss");
  }
  const num = (v: string | undefined, name: string, def: number, min: number) => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) {
      throw new UsageError(`Invalid --${name} "${v}": expected a whole number ≥ ${min}`);
    }
    return n;
  };
  const termWidth = (() => {
    try {
      return Deno.consoleSize().columns;
    } catch {
      return 80;
    }
  })();
  const height = num(values.height, "height", 15, 3);
  const { repo } = await openRepo(values.repository, io);
  try {
    const views = await repo.list();
    const exps: ExperimentView[] = [];
    for (const id of positionals) {
      const r = await repo.resolve(id, views);
      if (!exps.includes(r.experiment)) exps.push(r.experiment);
    }
    const metric = values.metric ?? exps[0]!.record.primary_metric?.name ??
      Object.keys(
        exps[0]!.checkpoints.find((c) => Object.keys(c.metrics).length)?.metrics ?? {},
      )[0];
    if (!metric) {
      throw new UsageError(
        "These experiments have no metrics to plot",
        "Record metrics with rep run or checkpoint()",
      );
    }
    const known = new Set(
      exps.flatMap((e) => e.checkpoints.flatMap((c) => Object.keys(c.metrics))),
    );
    if (!known.has(metric)) {
      throw new UsageError(
        `No metric "${metric}" in ${exps.length > 1 ? "these experiments" : "this experiment"}`,
        `Metrics recorded: ${[...known].sort().join(", ") || "none"}`,
      );
    }
    const series = exps.map((e) => seriesOf(e, metric));
    if (values.json) {
      io.out(JSON.stringify(series, null, 2) + "\n");
      return 0;
    }
    const labelWidth = 10;
    const width = num(
      values.width,
      "width",
      Math.max(20, Math.min(100, termWidth - labelWidth - 4)),
      10,
    );
    io.out(`${style(io, "bold", metric)} by step\n`);
    io.out(renderChart(series, width, height).join("\n") + "\n");
    series.forEach((s, i) => {
      const goal = exps[i]!.record.primary_metric;
      const vals = s.points.map((p) => p[1]);
      const best = !vals.length
        ? "no values"
        : goal?.name === metric
        ? `best ${fmtValue(goal.goal === "minimize" ? Math.min(...vals) : Math.max(...vals))}`
        : `last ${fmtValue(vals[vals.length - 1]!)}`;
      io.out(
        `  ${MARKS[i % MARKS.length]} ${s.id.slice(0, 7)}  ${s.points.length} point(s), ${best}\n`,
      );
    });
    return 0;
  } finally {
    await repo.close();
  }
}

/** The `plot` command. */
export const command: Command = {
  summary: "Plot a metric over steps in the terminal",
  help: HELP,
  run,
};
