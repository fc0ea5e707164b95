/**
 * What `rep diff` and the viewer's compare view show: the differences between experiments or
 * checkpoints — experiment fields, params, metrics, environment, checkpoint files, and the code
 * snapshots as unified diffs. The shape is `rep diff --json`'s (docs/json.md).
 *
 * @module
 */
import type { CheckpointRecord, FileEntry } from "../format/records.ts";
import type { ExperimentView, Repository } from "../repository.ts";
import { unifiedDiff } from "./unified_diff.ts";
import { metricNames } from "./metric_names.ts";

/** Files larger than this are reported as differing without a line diff. */
export const MAX_DIFF_BYTES = 1024 * 1024;

/** One compared item: an experiment and the checkpoint standing for it. */
export interface Item {
  arg: string;
  experiment: ExperimentView;
  checkpoint: CheckpointRecord | null;
}

/** Values per item; `null` where an item has none. */
export type Row = (unknown | null)[];

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

/** Resolve ids (or prefixes) to items: an experiment stands for its best (else latest) checkpoint. */
export async function resolveItems(repo: Repository, args: string[]): Promise<Item[]> {
  const views = await repo.list();
  const items: Item[] = [];
  for (const arg of args) {
    const h = await repo.resolve(arg, views);
    items.push({
      arg,
      experiment: await repo.withFullRecord(h.experiment),
      checkpoint: h.kind === "checkpoint" ? h.checkpoint : h.experiment.best ?? h.experiment.latest,
    });
  }
  return items;
}

/** The first item compared with another one. */
export interface Comparison {
  from: number;
  to: number;
  files: FileChanges;
  /** Null when the code was not compared; `[]` when both have the same snapshot. */
  code: CodeFileDiff[] | null;
}

/** What differs between items. */
export interface Diff {
  items: Item[];
  experiment: Record<string, Row>;
  params: Record<string, Row>;
  metrics: Record<string, Row>;
  env: { fields: Record<string, Row>; packages: Record<string, Row> };
  comparisons: Comparison[];
}

/** Compare `items`: only keys whose values differ; files and code of the first against each other. */
export async function diffItems(
  repo: Repository,
  items: Item[],
  options: { code: boolean },
): Promise<Diff> {
  const primary = items.flatMap((i) =>
    i.experiment.record.primary_metric ? [i.experiment.record.primary_metric.name] : []
  );
  // Project-relative paths for every format (format 1 rep run paths under their output folder).
  const ckFiles = await Promise.all(
    items.map((i) =>
      i.checkpoint ? repo.checkpointFiles(i.experiment.record, i.checkpoint) : Promise.resolve([])
    ),
  );
  const codeFiles = options.code
    ? await Promise.all(items.map((i) => treeFiles(repo, i.experiment.record.code)))
    : null;
  const comparisons: Comparison[] = [];
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
  return {
    items,
    experiment: experimentRows(items),
    params: keyedRows(items, (i) => i.experiment.record.params),
    metrics: keyedRows(
      items,
      (i) => i.checkpoint?.metrics ?? {},
      metricNames(items.map((i) => i.checkpoint), primary),
    ),
    env: environmentRows(items),
    comparisons,
  };
}

/** The `rep diff --json` document (docs/json.md). */
export function diffJson(d: Diff): Record<string, unknown> {
  return {
    items: d.items.map((i) => ({
      arg: i.arg,
      experiment: i.experiment.id,
      checkpoint: i.checkpoint?.id ?? null,
      step: i.checkpoint?.step ?? null,
    })),
    experiment: d.experiment,
    params: d.params,
    metrics: d.metrics,
    environment: { ...d.env.fields, packages: d.env.packages },
    comparisons: d.comparisons,
  };
}
