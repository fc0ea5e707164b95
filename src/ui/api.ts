/**
 * The viewer's JSON: what each view of the page asks for. Experiments are the `rep ls --json`
 * shapes of src/present/json.ts with what a table needs besides (duration, sizes); comparisons are
 * `rep diff --json`; filters are `rep ls -f` filters, parsed by the same module.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { CheckpointRecord, FileEntry, MetricValue } from "../format/records.ts";
import type { ExperimentView, Repository } from "../repository.ts";
import { compileFilters, matches } from "../catalog/filter.ts";
import { experimentSummary } from "../present/json.ts";
import { durationOf } from "../present/duration.ts";
import { attemptLogPrefix, packKey } from "../format/layout.ts";
import { redactEnv } from "../run/provenance.ts";
import { pool } from "../util.ts";

/** One row of the experiments table. */
export function experimentRow(v: ExperimentView, now: number): Record<string, unknown> {
  const shown = v.best ?? v.latest;
  return {
    name: v.record.name, // until src/present/json.ts says (its own fields win)
    ...experimentSummary(v),
    // Null while running: the page counts from `created`, so an unchanged list stays unchanged.
    duration_ms: v.status === "running" ? null : durationOf(v, now),
    heartbeat: v.heartbeat?.updated ?? null,
    /** Bytes of the files of the checkpoint the table shows (best, else latest). */
    checkpoint_size: shown?.files?.size ?? null,
    checkpoint_files: shown?.files?.files ?? null,
    code_size: v.record.code?.size ?? null,
    code_files: v.record.code?.files ?? null,
    corrupt_records: Object.keys(v.corrupt).length,
  };
}

/** Numeric metrics only: what a chart can plot. */
function numeric(metrics: Record<string, MetricValue>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, x] of Object.entries(metrics)) {
    if (typeof x === "number" && Number.isFinite(x)) out[k] = x;
  }
  return out;
}

/** Every checkpoint's step, time and numeric metrics, for the charts of `views`. */
export function seriesJson(views: ExperimentView[]): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  for (const v of views) {
    out[v.id] = v.checkpoints.map((c) => ({
      step: c.step,
      created: c.created,
      metrics: numeric(c.metrics),
    }));
  }
  return out;
}

/**
 * For each experiment and numeric metric: `[min, max, last]` over its checkpoints, so that the
 * param-versus-metric views can plot the best value whichever way a metric gets better.
 */
export function statsJson(views: ExperimentView[]): Record<string, Record<string, number[]>> {
  const out: Record<string, Record<string, number[]>> = {};
  for (const v of views) {
    const s: Record<string, number[]> = {};
    for (const c of v.checkpoints) {
      for (const [k, x] of Object.entries(numeric(c.metrics))) {
        const cur = s[k];
        if (!cur) s[k] = [x, x, x];
        else {
          cur[0] = Math.min(cur[0]!, x);
          cur[1] = Math.max(cur[1]!, x);
          cur[2] = x;
        }
      }
    }
    out[v.id] = s;
  }
  return out;
}

/**
 * Split a search expression into `rep ls -f` filters: `lr < 0.01 and status = succeeded` (also
 * `&&`), outside quotes.
 */
export function splitFilters(q: string): string[] {
  const parts: string[] = [];
  let cur = "";
  let quote: string | null = null;
  for (let i = 0; i < q.length; i++) {
    const ch = q[i]!;
    if (quote) {
      if (ch === quote) quote = null;
      cur += ch;
      continue;
    }
    if (ch === '"' || ch === "'") {
      quote = ch;
      cur += ch;
      continue;
    }
    const m = /^\s+(?:and|&&)\s+/i.exec(q.slice(i)) ?? (q.startsWith("&&", i) ? ["&&"] : null);
    if (m) {
      parts.push(cur);
      cur = "";
      i += m[0].length - 1;
      continue;
    }
    cur += ch;
  }
  parts.push(cur);
  return parts.map((p) => p.trim()).filter((p) => p !== "");
}

/** The ids of `views` that pass every filter of `q` (a usage error names what is wrong). */
export function filterIds(views: ExperimentView[], q: string, now = Date.now()): string[] {
  const texts = splitFilters(q);
  if (!texts.length) return views.map((v) => v.id);
  const filters = compileFilters(texts, views, now);
  return views.filter((v) => filters.every((f) => matches(v, f))).map((v) => v.id);
}

function checkpointJson(c: CheckpointRecord): Record<string, unknown> {
  return {
    id: c.id,
    step: c.step,
    attempt: c.attempt,
    created: c.created,
    metrics: c.metrics,
    primary_metric: c.primary_metric,
    files: c.files,
    torn: c.torn,
    warnings: c.warnings,
  };
}

function obj(v: unknown): Record<string, unknown> | null {
  return typeof v === "object" && v !== null && !Array.isArray(v)
    ? v as Record<string, unknown>
    : null;
}

/**
 * One experiment with everything the detail view shows: the full record (provenance with the
 * environment redacted again, in case an older or foreign writer kept a secret), every checkpoint
 * with its torn files and warnings, and the records that could not be read.
 */
export function detailJson(v: ExperimentView, now: number): Record<string, unknown> {
  const provenance = { ...v.record.provenance };
  const env = obj(provenance.env);
  if (env) {
    const strings = Object.fromEntries(Object.entries(env).map(([k, x]) => [k, String(x)]));
    provenance.env = redactEnv(strings);
  }
  return {
    ...experimentRow(v, now),
    record: { ...v.record, provenance },
    signal: v.statusRecord?.signal ?? null,
    checkpoints: v.checkpoints.map(checkpointJson),
    attempts: attemptCount(v),
    corrupt: v.corrupt,
  };
}

/** How many attempts an experiment has had (1 unless it was resumed). */
export function attemptCount(v: ExperimentView): number {
  return Math.max(1, ...v.attempts.map((a) => a.attempt));
}

/** A slice of an experiment's log: bytes from `from` (or the last `tail` bytes). */
export interface LogSlice {
  /** Where the returned bytes start. */
  offset: number;
  /** The log's size now. */
  size: number;
  bytes: Uint8Array<ArrayBuffer>;
}

/**
 * Read the stored output of an experiment (of its attempt `attempt`, default 1) from `from`, at
 * most `max` bytes.
 */
export async function readLog(
  repo: Repository,
  id: string,
  options: { from?: number; tail?: number; max?: number; attempt?: number } = {},
): Promise<LogSlice> {
  const segments: { key: string; size: number; start: number }[] = [];
  let size = 0;
  for await (const info of repo.store.list(attemptLogPrefix(id, options.attempt ?? 1))) {
    segments.push({ key: info.key, size: info.size, start: size });
    size += info.size;
  }
  const max = options.max ?? 4 << 20;
  let from = options.from ?? (options.tail !== undefined ? Math.max(0, size - options.tail) : 0);
  from = Math.min(Math.max(0, from), size);
  const end = Math.min(size, from + max);
  const parts: Uint8Array[] = [];
  for (const s of segments) {
    const a = Math.max(from, s.start);
    const b = Math.min(end, s.start + s.size);
    if (b <= a) continue;
    parts.push(await repo.store.getBytes(s.key, { offset: a - s.start, length: b - a }));
  }
  const bytes = new Uint8Array(end - from);
  let off = 0;
  for (const p of parts) {
    bytes.set(p, off);
    off += p.length;
  }
  return { offset: from, size, bytes };
}

/** What a file list shows of each file. */
export function fileJson(files: FileEntry[]): { path: string; size: number; hash: string }[] {
  return files.map((f) => ({ path: f.path, size: f.size, hash: f.hash }));
}

/**
 * Check that the stored data of each checkpoint is there: its file list and the packs its files'
 * chunks are in, long enough. Returns, by checkpoint id, the files whose data is missing (and
 * why); checkpoints with everything present are left out. Sizes only: `rep verify` reads the data.
 */
export async function missingFiles(
  repo: Repository,
  v: ExperimentView,
): Promise<Record<string, { files: string[]; reason: string }>> {
  const packEnds = new Map<string, number>();
  const trees = new Map<string, FileEntry[] | string>();
  await pool(v.checkpoints.filter((c) => c.files), 8, async (c) => {
    const hash = c.files!.tree;
    if (trees.has(hash)) return;
    try {
      const files = (await repo.tree(hash)).files;
      trees.set(hash, files);
      for (const f of files) {
        for (const [pack, off, len] of f.chunks) {
          packEnds.set(pack, Math.max(packEnds.get(pack) ?? 0, off + len));
        }
      }
    } catch (e) {
      trees.set(hash, e instanceof Error ? e.message : String(e));
    }
  });
  const short = new Map<string, string>();
  await pool([...packEnds], 8, async ([pack, end]) => {
    const info = await repo.store.head(packKey(pack));
    if (!info) short.set(pack, `pack ${pack.slice(0, 7)} is missing`);
    else if (info.size < end) short.set(pack, `pack ${pack.slice(0, 7)} is truncated`);
  });
  const out: Record<string, { files: string[]; reason: string }> = {};
  for (const c of v.checkpoints) {
    if (!c.files) continue;
    const t = trees.get(c.files.tree);
    if (typeof t === "string") {
      out[c.id] = { files: [`all ${c.files.files} file(s)`], reason: t };
      continue;
    }
    const bad = (t ?? []).flatMap((f) => {
      const why = f.chunks.map(([p]) => short.get(p)).find((x) => x !== undefined);
      return why ? [[f.path, why] as const] : [];
    });
    if (bad.length) {
      out[c.id] = {
        files: bad.map(([p]) => p),
        reason: [...new Set(bad.map(([, w]) => w))].join("; "),
      };
    }
  }
  return out;
}

/** The ids of a `?ids=a,b,c` parameter, checked. */
export function idList(text: string | null): string[] {
  const ids = (text ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  if (!ids.length || ids.length > 100 || ids.some((i) => !/^[0-9a-f]{1,32}$/.test(i))) {
    throw new UsageError(
      "Expected ids=ID,ID,… (1 to 100 hexadecimal ids)",
      "Pick experiments in the table",
    );
  }
  return ids;
}
