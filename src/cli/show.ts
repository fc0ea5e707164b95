/**
 * `rep show ID`: one experiment (fields, params, provenance, checkpoint table) or one checkpoint
 * (fields, metrics, files), as text or JSON.
 *
 * @module
 */
import { shortId } from "../format/ids.ts";
import type { CheckpointRecord, ExperimentRecord, FileEntry } from "../format/records.ts";
import type { ExperimentView, Repository } from "../repository.ts";
import { formatBytes, pool } from "../util.ts";
import {
  ago,
  type Command,
  fmtValue,
  type Io,
  oneId,
  openRepo,
  parse,
  REPO_OPTIONS,
  style,
  table,
} from "./common.ts";
import {
  checkpointLabel,
  durationOf,
  formatDuration,
  jsonText,
  metricNames,
  statusText,
} from "./views.ts";
import { attemptJson } from "../present/json.ts";

const OPTIONS = { ...REPO_OPTIONS, json: { type: "boolean" } } as const;

const help = `rep show: show an experiment or a checkpoint

Usage: rep show ID [options]

ID is an experiment or checkpoint id, or an unambiguous prefix of one (as shown by rep ls), or
an experiment's name.

For an experiment: name, status, exit code, duration, command, host, user, platform, git commit,
branch and dirty state, tags, note, params, code snapshot, Python and GPU when recorded, its
attempts when it was resumed, and its checkpoints with their metrics; the best checkpoint is
marked with *.
For a checkpoint: its experiment, step, metrics and files.

Options:
      --json                Print JSON (see docs/json.md); includes every checkpoint's files
  -R, --repository URL      Repository to read
  -h, --help                Show this help

Examples:
  rep show a1b2c3d
  rep show a1b2c3d --json | jq '.checkpoints[-1].metrics'
`;

/** The files of a checkpoint, as JSON: `[{path, size, hash}]`. */
/** Project-relative paths for every format (format 1 rep run paths under their output folder). */
function filesOf(
  repo: Repository,
  exp: ExperimentRecord,
  ck: CheckpointRecord,
): Promise<FileEntry[]> {
  return repo.checkpointFiles(exp, ck);
}

function fileJson(files: FileEntry[]): { path: string; size: number; hash: string }[] {
  return files.map((f) => ({ path: f.path, size: f.size, hash: f.hash }));
}

/** A checkpoint as `rep show --json` prints it. */
export async function checkpointJson(
  repo: Repository,
  exp: ExperimentRecord,
  ck: CheckpointRecord,
): Promise<Record<string, unknown>> {
  return {
    id: ck.id,
    experiment: ck.experiment,
    step: ck.step,
    attempt: ck.attempt,
    created: ck.created,
    metrics: ck.metrics,
    primary_metric: ck.primary_metric,
    torn: ck.torn,
    warnings: ck.warnings ?? [],
    files: fileJson(await filesOf(repo, exp, ck)),
  };
}

function fields(rows: [string, string | null | undefined][]): string {
  const shown = rows.filter((r): r is [string, string] =>
    r[1] !== null && r[1] !== undefined && r[1] !== ""
  );
  const w = Math.max(...shown.map(([k]) => k.length));
  return shown.map(([k, v]) => `${(k + ":").padEnd(w + 2)}${v}\n`).join("");
}

function quoteArg(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

function obj(v: unknown): Record<string, unknown> | null {
  return typeof v === "object" && v !== null && !Array.isArray(v)
    ? v as Record<string, unknown>
    : null;
}

function provenanceRows(p: Record<string, unknown>): [string, string | null][] {
  const rows: [string, string | null][] = [];
  const py = obj(p.python);
  if (py) {
    const pk = Array.isArray(py.packages) ? `${py.packages.length} packages` : null;
    const v = [py.implementation, py.version].filter((x) => typeof x === "string").join(" ");
    rows.push([
      "python",
      [v || String(py.interpreter ?? ""), pk && `(${pk})`].filter(Boolean).join(" "),
    ]);
  }
  if (Array.isArray(p.gpu)) {
    const names = p.gpu.map((g) => {
      const o = obj(g);
      if (!o) return "?";
      return typeof o.memoryMiB === "number" ? `${o.name} (${o.memoryMiB} MiB)` : String(o.name);
    });
    const counts = new Map<string, number>();
    for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
    rows.push(["gpu", [...counts].map(([n, c]) => c > 1 ? `${c}× ${n}` : n).join(", ") || "none"]);
  }
  const cpu = obj(p.cpu);
  if (cpu && (cpu.model || cpu.count)) {
    rows.push([
      "cpu",
      `${cpu.model ?? "?"}${typeof cpu.count === "number" ? ` × ${cpu.count}` : ""}`,
    ]);
  }
  if (typeof p.memoryBytes === "number") rows.push(["memory", formatBytes(p.memoryBytes)]);
  const git = obj(p.git);
  if (git) {
    if (Array.isArray(git.untracked) && git.untracked.length) {
      rows.push([
        "untracked",
        `${git.untracked.length} file(s)${git.untrackedTruncated ? "+" : ""}`,
      ]);
    }
    if (typeof git.diff === "string" && git.diff) {
      rows.push([
        "dirty diff",
        `${git.diff.split("\n").length} lines${git.diffTruncated ? " (truncated)" : ""}`,
      ]);
    }
  }
  return rows;
}

function showExperiment(io: Io, v: ExperimentView): string {
  const r = v.record;
  const now = Date.now();
  const dur = durationOf(v, now);
  const sr = v.statusRecord;
  const statusLine = statusText(io, v.status) +
    (sr?.exit_code !== null && sr?.exit_code !== undefined ? ` (exit code ${sr.exit_code})` : "") +
    (sr?.signal ? ` (signal ${sr.signal})` : "") +
    (v.status === "crashed" ? " (its heartbeat stopped without a final status)" : "");
  const git = r.git
    ? `${r.git.commit?.slice(0, 12) ?? "(no commit)"}${r.git.branch ? ` on ${r.git.branch}` : ""}${
      r.git.dirty ? " (dirty)" : ""
    }`
    : null;
  let out = fields([
    ["experiment", r.id],
    ["name", r.name],
    ["created", `${r.created} (${ago(r.created, now)})`],
    ["status", statusLine],
    [
      "duration",
      dur === null ? null : formatDuration(dur) + (v.status === "running" ? " so far" : ""),
    ],
    ["command", r.command.length ? r.command.map(quoteArg).join(" ") : null],
    ["cwd", r.cwd],
    ["host", r.host],
    ["user", r.user],
    ["platform", r.platform],
    ["rep version", r.rep_version],
    ["git", git],
    ["tags", r.tags.join(", ")],
    ["note", r.note],
    [
      "primary metric",
      r.primary_metric ? `${r.primary_metric.name} (${r.primary_metric.goal})` : null,
    ],
    ["code", r.code ? `${r.code.files} file(s), ${formatBytes(r.code.size)}` : "(no snapshot)"],
    ...provenanceRows(r.provenance),
  ]);
  for (const [k, why] of Object.entries(v.corrupt)) {
    out += style(io, "yellow", `warning: cannot read ${k}: ${why}`) + "\n";
  }
  if (v.attempts.length > 1) {
    out += `\n${style(io, "bold", "Attempts")}\n`;
    out += indent(table(
      ["#", "STARTED", "HOST", "ENDED", "STATUS", "EXIT", "RESUMED FROM"],
      v.attempts.map((a) => [
        String(a.attempt),
        `${a.created} (${ago(a.created, now)})`,
        a.host,
        a.statusRecord?.finished ?? "",
        statusText(io, a.status),
        a.statusRecord?.exit_code === null || a.statusRecord?.exit_code === undefined
          ? ""
          : String(a.statusRecord.exit_code),
        a.record?.resumed_from
          ? `${shortId(a.record.resumed_from)}${
            a.record.resume_step === null ? "" : ` (step ${a.record.resume_step})`
          }`
          : "",
      ]),
    ));
  }
  const params = Object.entries(r.params);
  out += `\n${style(io, "bold", "Params")}\n`;
  out += params.length
    ? indent(table(["NAME", "VALUE"], params.map(([k, val]) => [k, fmtValue(val)])))
    : "  (none)\n";
  out += `\n${style(io, "bold", "Checkpoints")}\n`;
  if (!v.checkpoints.length) return out + "  (none)\n";
  const names = metricNames(v.checkpoints, r.primary_metric ? [r.primary_metric.name] : []);
  const resumed = v.attempts.length > 1;
  const rows = v.checkpoints.map((c) => [
    c.id === v.best?.id ? "*" : "",
    shortId(c.id),
    c.step === null ? "" : String(c.step),
    ...(resumed ? [String(c.attempt)] : []),
    ago(c.created, now),
    c.files ? `${c.files.files} (${formatBytes(c.files.size)})` : "",
    ...names.map((n) => fmtValue(c.metrics[n])),
  ]);
  const head = ["", "ID", "STEP", ...(resumed ? ["ATTEMPT"] : []), "CREATED", "FILES"];
  out += indent(table([...head, ...names], rows));
  if (v.best) {
    out +=
      style(io, "dim", `  * best by ${v.best.primary_metric?.name ?? r.primary_metric?.name}`) +
      "\n";
  }
  const warned = v.checkpoints.filter((c) => c.torn.length || c.warnings.length);
  if (warned.length) {
    out += `\n${style(io, "bold", "Warnings")}\n`;
    for (const c of warned.slice(0, MAX_WARNED)) {
      out += checkpointWarningLines(io, c, `  ${checkpointLabel(c)}: `);
    }
    if (warned.length > MAX_WARNED) {
      out += `  … and ${warned.length - MAX_WARNED} more checkpoint(s) with warnings ` +
        "(rep show CHECKPOINT_ID lists each)\n";
    }
  }
  return out;
}

/** Checkpoints whose warnings `rep show EXPERIMENT` lists. */
const MAX_WARNED = 20;

/** What a checkpoint warns about, one line each: files left out of it (and why), the rest. */
function checkpointWarningLines(io: Io, c: CheckpointRecord, prefix: string): string {
  const lines = c.torn
    .filter((t) => !c.warnings.some((w) => w.startsWith(`${t}: `)))
    .map((t) => `${t}: left out (it changed while rep stored it)`);
  lines.push(...c.warnings);
  return lines.map((l) => style(io, "yellow", `${prefix}warning: ${l}`) + "\n").join("");
}

function indent(s: string): string {
  return s.split("\n").map((l) => (l ? "  " + l : l)).join("\n");
}

async function showCheckpoint(
  io: Io,
  repo: Repository,
  v: ExperimentView,
  c: CheckpointRecord,
): Promise<string> {
  const now = Date.now();
  let out = fields([
    ["checkpoint", c.id],
    ["experiment", `${v.id} (${v.status})`],
    ["step", c.step === null ? null : String(c.step)],
    ["created", `${c.created} (${ago(c.created, now)})`],
    [
      "primary metric",
      c.primary_metric ? `${c.primary_metric.name} (${c.primary_metric.goal})` : null,
    ],
    ["best", v.best?.id === c.id ? "yes, the best checkpoint of its experiment" : null],
    ["latest", v.latest?.id === c.id ? "yes, the latest checkpoint of its experiment" : null],
  ]);
  out += checkpointWarningLines(io, c, "");
  const names = metricNames([c]);
  out += `\n${style(io, "bold", "Metrics")}\n`;
  out += names.length
    ? indent(table(["NAME", "VALUE"], names.map((n) => [n, fmtValue(c.metrics[n])])))
    : "  (none)\n";
  const files = await filesOf(repo, v.record, c);
  out += `\n${style(io, "bold", "Files")}\n`;
  out += files.length
    ? indent(table(["PATH", "SIZE"], files.map((f) => [f.path, formatBytes(f.size)])))
    : "  (none)\n";
  return out;
}

/** `rep show`. */
export const command: Command = {
  summary: "Show an experiment or checkpoint",
  help,
  async run(args, io) {
    const { values, positionals } = parse("show", args, OPTIONS);
    if (values.help) {
      io.out(help);
      return 0;
    }
    const id = oneId("show", positionals, "Example: rep show a1b2c3d (ids from rep ls)");
    const { repo } = await openRepo(values.repository, io);
    try {
      const hit = await repo.resolve(id);
      if (hit.kind === "checkpoint") {
        const full = await repo.withFullRecord(hit.experiment);
        if (values.json) io.out(jsonText(await checkpointJson(repo, full.record, hit.checkpoint)));
        else io.out(await showCheckpoint(io, repo, full, hit.checkpoint));
        return 0;
      }
      const v = await repo.withFullRecord(hit.experiment);
      if (values.json) {
        const checkpoints = await pool(v.checkpoints, 8, async (c) => {
          const { experiment: _, ...rest } = await checkpointJson(repo, v.record, c);
          return rest;
        });
        io.out(jsonText({
          ...v.record,
          status: v.status,
          exit_code: v.statusRecord?.exit_code ?? null,
          signal: v.statusRecord?.signal ?? null,
          finished: v.statusRecord?.finished ?? null,
          best_checkpoint: v.best?.id ?? null,
          latest_checkpoint: v.latest?.id ?? null,
          attempts: v.attempts.map(attemptJson),
          checkpoints,
        }));
        return 0;
      }
      io.out(showExperiment(io, v));
      return 0;
    } finally {
      await repo.close();
    }
  },
};
