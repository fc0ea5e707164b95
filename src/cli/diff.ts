/**
 * `rep diff ID ID [ID…]`: what differs between experiments or checkpoints — experiment fields,
 * params, metrics, environment, checkpoint files, and the code snapshots as unified diffs.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { shortId } from "../format/ids.ts";
import type { CheckpointRecord, FileEntry } from "../format/records.ts";
import type { ExperimentView, Repository } from "../repository.ts";
import {
  type Command,
  fmtValue,
  type Io,
  openRepo,
  parse,
  REPO_OPTIONS,
  style,
  table,
} from "./common.ts";
import { unifiedDiff } from "./unified_diff.ts";
import { checkpointLabel, jsonText, metricNames } from "./views.ts";

const OPTIONS = {
  ...REPO_OPTIONS,
  json: { type: "boolean" },
  "no-code": { type: "boolean" },
} as const;

/** Files larger than this are reported as differing without a line diff. */
export const MAX_DIFF_BYTES = 1024 * 1024;

const help = `rep diff: compare experiments or checkpoints

Usage: rep diff ID ID [ID...] [options]

Each ID is an experiment or checkpoint id (or prefix). An experiment stands for its best
checkpoint (the latest when there is no primary metric). Only what differs is printed:
  experiment   command, cwd, host, user, platform, rep version, git commit/branch/dirty, status
  params       every param whose value differs ("-" = not set)
  metrics      the checkpoints' metrics
  environment  Python version, GPU, CPU, and Python packages added, removed or changed
  files        the checkpoints' files added, removed or changed (by content hash)
  code         the code snapshots as a unified diff (text files; binary files are named only)
With more than two ids, files and code compare the first with each of the others.

Options:
      --no-code         Do not compare the code snapshots
      --json            Print JSON (see docs/json.md)
  -R, --repository URL  Repository to read
  -h, --help            Show this help

Examples:
  rep diff a1b2c3d e4f5a6b
  rep diff a1b2c3d e4f5a6b 9f8e7d6 --no-code
`;

/** One compared item: an experiment and the checkpoint standing for it. */
interface Item {
  arg: string;
  experiment: ExperimentView;
  checkpoint: CheckpointRecord | null;
}

/** Values per item; `null` where an item has none. */
type Row = (unknown | null)[];

function differs(values: Row): boolean {
  const first = JSON.stringify(values[0] ?? null);
  return values.some((v) => JSON.stringify(v ?? null) !== first);
}

function onlyDiffering(rows: Record<string, Row>): Record<string, Row> {
  return Object.fromEntries(Object.entries(rows).filter(([, v]) => differs(v)));
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v)
    ? v as Record<string, unknown>
    : {};
}

function packagesOf(v: ExperimentView): Map<string, string> | null {
  const pk = obj(obj(v.record.provenance).python).packages;
  if (!Array.isArray(pk)) return null;
  const out = new Map<string, string>();
  for (const p of pk) {
    if (typeof p !== "string") continue;
    const i = p.indexOf("==");
    if (i > 0) out.set(p.slice(0, i).toLowerCase(), p.slice(i + 2));
    else out.set(p.toLowerCase(), "");
  }
  return out;
}

function experimentRows(items: Item[]): Record<string, Row> {
  const rec = (f: (v: ExperimentView) => unknown) => items.map((i) => f(i.experiment));
  return onlyDiffering({
    command: rec((v) => v.record.command),
    cwd: rec((v) => v.record.cwd),
    host: rec((v) => v.record.host),
    user: rec((v) => v.record.user),
    platform: rec((v) => v.record.platform),
    rep_version: rec((v) => v.record.rep_version),
    "git.commit": rec((v) => v.record.git?.commit ?? null),
    "git.branch": rec((v) => v.record.git?.branch ?? null),
    "git.dirty": rec((v) => v.record.git?.dirty ?? null),
    status: rec((v) => v.status),
    exit_code: rec((v) => v.statusRecord?.exit_code ?? null),
    tags: rec((v) => v.record.tags),
  });
}

function keyedRows(items: Item[], get: (i: Item) => Record<string, unknown>, order?: string[]) {
  const names = order ?? [...new Set(items.flatMap((i) => Object.keys(get(i))))].sort();
  const rows: Record<string, Row> = {};
  for (const n of names) rows[n] = items.map((i) => get(i)[n] ?? null);
  return onlyDiffering(rows);
}

function environmentRows(
  items: Item[],
): { fields: Record<string, Row>; packages: Record<string, Row> } {
  const prov = items.map((i) => obj(i.experiment.record.provenance));
  const fields = onlyDiffering({
    "python.version": prov.map((p) => obj(p.python).version ?? null),
    "python.implementation": prov.map((p) => obj(p.python).implementation ?? null),
    gpu: prov.map((p) => Array.isArray(p.gpu) ? p.gpu.map((g) => obj(g).name ?? null) : null),
    cpu: prov.map((p) => obj(p.cpu).model ?? null),
    cpu_count: prov.map((p) => obj(p.cpu).count ?? null),
  });
  const pk = items.map((i) => packagesOf(i.experiment));
  const packages: Record<string, Row> = {};
  if (pk.some((p) => p !== null)) {
    const names = [...new Set(pk.flatMap((p) => p ? [...p.keys()] : []))].sort();
    for (const n of names) {
      const row = pk.map((p) => p?.get(n) ?? null);
      if (differs(row)) packages[n] = row;
    }
  }
  return { fields, packages };
}

/** Files added, removed and changed (by content hash) from `a` to `b`. */
export interface FileChanges {
  added: string[];
  removed: string[];
  changed: string[];
}

function compareFiles(a: FileEntry[], b: FileEntry[]): FileChanges {
  const ma = new Map(a.map((f) => [f.path, f.hash]));
  const mb = new Map(b.map((f) => [f.path, f.hash]));
  return {
    added: [...mb.keys()].filter((p) => !ma.has(p)).sort(),
    removed: [...ma.keys()].filter((p) => !mb.has(p)).sort(),
    changed: [...ma.keys()].filter((p) => mb.has(p) && mb.get(p) !== ma.get(p)).sort(),
  };
}

/** One file of a code comparison. */
export interface CodeFileDiff {
  path: string;
  change: "added" | "removed" | "changed";
  binary: boolean;
  too_large: boolean;
  /** The unified diff, or null for binary and too large files. */
  diff: string | null;
}

async function readAll(repo: Repository, f: FileEntry): Promise<Uint8Array> {
  return new Uint8Array(await new Response(repo.fileStream(f)).arrayBuffer());
}

function asText(bytes: Uint8Array): string | null {
  if (bytes.subarray(0, 8000).includes(0)) return null;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

async function compareCode(
  repo: Repository,
  a: FileEntry[],
  b: FileEntry[],
): Promise<CodeFileDiff[]> {
  const ch = compareFiles(a, b);
  const ma = new Map(a.map((f) => [f.path, f]));
  const mb = new Map(b.map((f) => [f.path, f]));
  const all = [
    ...ch.added.map((p) => ({ path: p, change: "added" as const })),
    ...ch.removed.map((p) => ({ path: p, change: "removed" as const })),
    ...ch.changed.map((p) => ({ path: p, change: "changed" as const })),
  ].sort((x, y) => (x.path < y.path ? -1 : 1));
  const out: CodeFileDiff[] = [];
  for (const { path, change } of all) {
    const fa = ma.get(path);
    const fb = mb.get(path);
    if ((fa?.size ?? 0) > MAX_DIFF_BYTES || (fb?.size ?? 0) > MAX_DIFF_BYTES) {
      out.push({ path, change, binary: false, too_large: true, diff: null });
      continue;
    }
    const ta = fa ? asText(await readAll(repo, fa)) : "";
    const tb = fb ? asText(await readAll(repo, fb)) : "";
    if (ta === null || tb === null) {
      out.push({ path, change, binary: true, too_large: false, diff: null });
      continue;
    }
    const diff = unifiedDiff(ta, tb, {
      aName: fa ? `a/${path}` : "/dev/null",
      bName: fb ? `b/${path}` : "/dev/null",
    });
    out.push({ path, change, binary: false, too_large: false, diff });
  }
  return out;
}

async function treeFiles(repo: Repository, ref: { tree: string } | null): Promise<FileEntry[]> {
  return ref ? (await repo.tree(ref.tree)).files : [];
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return "-";
  if (Array.isArray(v)) return v.map((x) => fmtValue(x)).join(" ");
  return fmtValue(v);
}

function section(io: Io, title: string, heads: string[], rows: Record<string, Row>): string {
  const entries = Object.entries(rows);
  if (!entries.length) return "";
  return `\n${style(io, "bold", title)}\n` +
    table(["", ...heads], entries.map(([k, vals]) => [k, ...vals.map(cell)])).split("\n")
      .map((l) => (l ? "  " + l : l)).join("\n");
}

function colorDiff(io: Io, text: string): string {
  if (!io.color) return text;
  return text.split("\n").map((l) =>
    l.startsWith("+++") || l.startsWith("---")
      ? style(io, "bold", l)
      : l.startsWith("+")
      ? style(io, "green", l)
      : l.startsWith("-")
      ? style(io, "red", l)
      : l.startsWith("@@")
      ? style(io, "cyan", l)
      : l
  ).join("\n");
}

/** `rep diff`. */
export const command: Command = {
  summary: "Compare experiments or checkpoints",
  help,
  async run(args, io) {
    const { values, positionals } = parse("diff", args, OPTIONS);
    if (values.help) {
      io.out(help);
      return 0;
    }
    if (positionals.length < 2) {
      throw new UsageError(
        `rep diff needs at least two ids, got ${positionals.length}`,
        "Example: rep diff a1b2c3d e4f5a6b (to see one: rep show ID)",
      );
    }
    const { repo } = await openRepo(values.repository, io);
    try {
      const views = await repo.list();
      const items: Item[] = [];
      for (const arg of positionals) {
        const h = await repo.resolve(arg, views);
        items.push({
          arg,
          experiment: await repo.withFullRecord(h.experiment),
          checkpoint: h.kind === "checkpoint"
            ? h.checkpoint
            : h.experiment.best ?? h.experiment.latest,
        });
      }
      const experiment = experimentRows(items);
      const params = keyedRows(items, (i) => i.experiment.record.params);
      const primary = items.flatMap((i) =>
        i.experiment.record.primary_metric ? [i.experiment.record.primary_metric.name] : []
      );
      const metrics = keyedRows(
        items,
        (i) => i.checkpoint?.metrics ?? {},
        metricNames(items.map((i) => i.checkpoint), primary),
      );
      const env = environmentRows(items);
      const ckFiles = await Promise.all(
        items.map((i) => treeFiles(repo, i.checkpoint?.files ?? null)),
      );
      const codeFiles = values["no-code"]
        ? null
        : await Promise.all(items.map((i) => treeFiles(repo, i.experiment.record.code)));
      const comparisons = [];
      for (let k = 1; k < items.length; k++) {
        const sameCode =
          items[0]!.experiment.record.code?.tree === items[k]!.experiment.record.code?.tree;
        comparisons.push({
          from: 0,
          to: k,
          files: compareFiles(ckFiles[0]!, ckFiles[k]!),
          code: codeFiles === null
            ? null
            : sameCode
            ? []
            : await compareCode(repo, codeFiles[0]!, codeFiles[k]!),
        });
      }
      if (values.json) {
        io.out(jsonText({
          items: items.map((i) => ({
            arg: i.arg,
            experiment: i.experiment.id,
            checkpoint: i.checkpoint?.id ?? null,
            step: i.checkpoint?.step ?? null,
          })),
          experiment,
          params,
          metrics,
          environment: { ...env.fields, packages: env.packages },
          comparisons,
        }));
        return 0;
      }
      const heads = items.map((i) => shortId(i.checkpoint?.id ?? i.experiment.id));
      let out = table(
        ["", ...heads],
        [
          ["experiment", ...items.map((i) => shortId(i.experiment.id))],
          [
            "checkpoint",
            ...items.map((i) => i.checkpoint ? checkpointLabel(i.checkpoint) : "(none)"),
          ],
        ],
      ).split("\n").slice(1).join("\n");
      const sections = [
        section(io, "Experiment", heads, experiment),
        section(io, "Params", heads, params),
        section(io, "Metrics", heads, metrics),
        section(io, "Environment", heads, env.fields),
        section(io, "Python packages", heads, env.packages),
      ].filter(Boolean);
      out += sections.join("");
      for (const c of comparisons) {
        const a = heads[0]!;
        const b = heads[c.to]!;
        const f = c.files;
        const fileLines = [
          ...f.added.map((p) => `  added    ${p}`),
          ...f.removed.map((p) => `  removed  ${p}`),
          ...f.changed.map((p) => `  changed  ${p}`),
        ];
        if (fileLines.length) {
          out += `\n${style(io, "bold", `Checkpoint files (${a} → ${b})`)}\n${
            fileLines.join("\n")
          }\n`;
        }
        if (c.code?.length) {
          out += `\n${style(io, "bold", `Code (${a} → ${b})`)}\n`;
          for (const d of c.code) {
            const kind = d.binary ? "Binary file" : "File";
            const why = d.binary ? "" : " (too large to diff)";
            if (d.diff) out += colorDiff(io, d.diff);
            else if (d.change === "added") out += `${kind} b/${d.path} added${why}\n`;
            else if (d.change === "removed") out += `${kind} a/${d.path} removed${why}\n`;
            else out += `${kind}s a/${d.path} and b/${d.path} differ${why}\n`;
          }
        }
      }
      if (
        !sections.length &&
        comparisons.every((c) => !c.code?.length && !Object.values(c.files).some((l) => l.length))
      ) {
        out += "\nNo differences\n";
      }
      io.out(out);
      return 0;
    } finally {
      await repo.close();
    }
  },
};
