/**
 * Shared listing segments under `index/`: finished experiments' records gathered into a few
 * gzipped objects, so that a reader with an empty cache, anywhere, reads a few objects instead of
 * one per record. A segment is three objects: `index/<name>.json.gz` (each experiment's record,
 * status, attempts and checkpoint summary: what a listing shows),
 * `index/<name>.checkpoints.json.gz` (their checkpoint records, read only when needed) and
 * `index/<name>.ids.json` (their checkpoint ids, to resolve an id prefix; segments made before
 * it have none). See docs/format.md _Listing_.
 *
 * Segments are a cache of records: a segment that does not parse, or one made before removals
 * that `rep gc` has since dropped ({@link Visibility.trusts}), is skipped, and what it would have
 * given is read from the records.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { NotFoundError } from "../errors.ts";
import {
  PREFIX,
  segmentCheckpointsKey,
  segmentIdsKey,
  segmentKey,
  segmentOfKey,
} from "../format/layout.ts";
import {
  type CheckpointRecord,
  type ExperimentRecord,
  FORMAT_VERSION,
  parseAttempt,
  parseCheckpoint,
  parseExperiment,
  parseJson,
  parseStatus,
} from "../format/records.ts";
import type { Store } from "../storage/store.ts";
import type { AttemptState, ExperimentState } from "./index_db.ts";

/** Most experiments in one segment. */
export const SEGMENT_MAX = 10_000;

/** One experiment as a segment gives it. */
export interface SegmentEntry {
  state: ExperimentState;
  count: number;
  best: CheckpointRecord | null;
  latest: CheckpointRecord | null;
  /** Metric names of all its checkpoints, with type bits (1 number, 2 string, 4 boolean). */
  metrics: Record<string, number>;
}

/** A segment's summary object, parsed. */
export interface Segment {
  name: string;
  key: string;
  created: string;
  /** When its writer listed `changes/`: what was removed then is left out. */
  basis: string;
  /** The `dropped.at` of the changes its writer knew, or null. */
  droppedAt: string | null;
  experiments: SegmentEntry[];
}

async function gzip(data: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([data as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

async function gunzip(data: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([data as BlobPart]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** The name of a segment holding these experiments: the same set always gets the same name. */
export function segmentName(ids: string[]): string {
  return createHash("sha256").update([...ids].sort().join("\n")).digest("hex").slice(0, 32);
}

/** Segment summary keys under `index/`. */
export async function listSegments(store: Store): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of store.list(PREFIX.index)) {
    if (segmentOfKey(info.key)?.part === "summary") keys.push(info.key);
  }
  return keys;
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function parseEntry(raw: unknown, key: string): SegmentEntry {
  if (!isObj(raw)) throw new SyntaxError("not an object");
  const record = parseExperiment(raw.record, key);
  const status = raw.status === null || raw.status === undefined
    ? null
    : parseStatus(raw.status, key);
  const attempts: AttemptState[] = (Array.isArray(raw.attempts) ? raw.attempts : []).map((a) => {
    if (!isObj(a)) throw new SyntaxError("bad attempt");
    const rec = a.record === null || a.record === undefined ? null : parseAttempt(a.record, key);
    const n = rec?.attempt ?? a.attempt;
    if (!Number.isSafeInteger(n) || (n as number) < 2) throw new SyntaxError("bad attempt");
    return {
      attempt: n as number,
      record: rec,
      status: a.status === null || a.status === undefined ? null : parseStatus(a.status, key),
    };
  });
  const ck = (v: unknown) => {
    if (v === null || v === undefined) return null;
    const c = parseCheckpoint(v, key);
    if (c.experiment !== record.id) throw new SyntaxError("checkpoint of another experiment");
    return c;
  };
  const count = raw.count;
  if (!Number.isSafeInteger(count) || (count as number) < 0) throw new SyntaxError("bad count");
  const metrics: Record<string, number> = {};
  if (isObj(raw.metrics)) {
    for (const [k, v] of Object.entries(raw.metrics)) {
      if (Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < 8) {
        metrics[k] = v as number;
      }
    }
  }
  return {
    state: {
      record: { ...record, provenance: {} },
      checkpoints: [],
      status,
      attempts,
      heartbeat: null,
      keys: {},
      corrupt: {},
    },
    count: count as number,
    best: ck(raw.best),
    latest: ck(raw.latest),
    metrics,
  };
}

/**
 * Read a segment's summary object; null when it vanished or does not parse (a bad entry makes the
 * whole segment untrusted: its experiments are read from their records).
 */
export async function readSegment(store: Store, key: string): Promise<Segment | null> {
  const name = segmentOfKey(key)?.name;
  if (!name) return null;
  try {
    const v = parseJson(await gunzip(await store.getBytes(key)), key);
    if (!isObj(v) || v.type !== "segment" || v.format !== FORMAT_VERSION) return null;
    if (!Array.isArray(v.experiments) || typeof v.basis !== "string") return null;
    if (Number.isNaN(Date.parse(v.basis))) return null;
    const droppedAt = typeof v.dropped_at === "string" ? v.dropped_at : null;
    return {
      name,
      key,
      created: typeof v.created === "string" ? v.created : v.basis,
      basis: v.basis,
      droppedAt,
      experiments: v.experiments.map((e) => parseEntry(e, key)),
    };
  } catch (e) {
    if (e instanceof NotFoundError) return null;
    return null;
  }
}

/**
 * Read a segment's checkpoint records: experiment id → records. Null when the object vanished or
 * does not parse.
 */
export async function readSegmentCheckpoints(
  store: Store,
  name: string,
): Promise<Map<string, CheckpointRecord[]> | null> {
  const key = segmentCheckpointsKey(name);
  return await readByExperiment(
    async () => await gunzip(await store.getBytes(key)),
    key,
    "segment-checkpoints",
    (id, list) => {
      if (!Array.isArray(list)) return null;
      const cks = list.map((c) => parseCheckpoint(c, key));
      return cks.some((c) => c.experiment !== id) ? null : cks;
    },
  );
}

/**
 * Read a segment's checkpoint ids: experiment id → its checkpoint ids, concatenated (32 hex digits
 * each). Null when the object is missing (a segment made before ids objects) or does not parse.
 */
export async function readSegmentIds(
  store: Store,
  name: string,
): Promise<Map<string, string> | null> {
  const key = segmentIdsKey(name);
  return await readByExperiment(
    () => store.getBytes(key),
    key,
    "segment-ids",
    (_id, ids) => typeof ids === "string" && ids.length % 32 === 0 ? ids : null,
  );
}

/**
 * A segment part `{"type": type, "experiments": {"<id>": …}}` as a map of what `entry` makes of
 * each value. Null when it is missing, of another type, or when `entry` refuses a value (returns
 * null or throws): one bad entry makes the whole part untrusted.
 */
async function readByExperiment<T>(
  bytes: () => Promise<Uint8Array>,
  key: string,
  type: string,
  entry: (id: string, value: unknown) => T | null,
): Promise<Map<string, T> | null> {
  try {
    const v = parseJson(await bytes(), key);
    if (!isObj(v) || v.type !== type || !isObj(v.experiments)) return null;
    const out = new Map<string, T>();
    for (const [id, value] of Object.entries(v.experiments)) {
      const made = entry(id, value);
      if (made === null) return null;
      out.set(id, made);
    }
    return out;
  } catch {
    return null;
  }
}

/** Write a segment's checkpoint ids object (before its summary, or later for an older segment). */
export async function writeSegmentIds(
  store: Store,
  name: string,
  checkpoints: Map<string, CheckpointRecord[]>,
): Promise<void> {
  const experiments: Record<string, string> = {};
  for (const [id, list] of checkpoints) experiments[id] = list.map((c) => c.id).join("");
  await store.put(
    segmentIdsKey(name),
    new TextEncoder().encode(JSON.stringify({
      format: FORMAT_VERSION,
      type: "segment-ids",
      experiments,
    })),
  );
}

/** What a writer puts in a segment for one experiment. */
export interface SegmentInput {
  state: ExperimentState;
  best: CheckpointRecord | null;
  latest: CheckpointRecord | null;
}

const TYPE_BITS: Record<string, number> = { number: 1, string: 2, boolean: 4 };

function strip(r: ExperimentRecord): ExperimentRecord {
  return { ...r, provenance: {} };
}

/**
 * Write a segment of these finished experiments (all their checkpoints known): the checkpoints
 * and ids objects first, then the summary that names them, so a reader that sees the summary finds both. The
 * name depends only on the experiments, so readers making the same segment at once make one
 * object, and one that already exists is not written again. Returns the summary key.
 */
export async function writeSegment(
  store: Store,
  experiments: SegmentInput[],
  basis: string,
  droppedAt: string | null,
  options: { overwrite?: boolean } = {},
): Promise<string> {
  const sorted = [...experiments].sort((a, b) => (a.state.record.id < b.state.record.id ? -1 : 1));
  const name = segmentName(sorted.map((e) => e.state.record.id));
  const key = segmentKey(name);
  if (!options.overwrite && await store.head(key)) return key;
  const enc = new TextEncoder();
  const checkpoints: Record<string, CheckpointRecord[]> = {};
  for (const e of sorted) checkpoints[e.state.record.id] = e.state.checkpoints;
  await store.put(
    segmentCheckpointsKey(name),
    await gzip(enc.encode(JSON.stringify({
      format: FORMAT_VERSION,
      type: "segment-checkpoints",
      experiments: checkpoints,
    }))),
  );
  await writeSegmentIds(store, name, new Map(Object.entries(checkpoints)));
  const entries = sorted.map(({ state: s, best, latest }) => {
    const metrics: Record<string, number> = {};
    for (const c of s.checkpoints) {
      for (const [k, v] of Object.entries(c.metrics)) {
        metrics[k] = (metrics[k] ?? 0) | (TYPE_BITS[typeof v] ?? 0);
      }
    }
    return {
      record: strip(s.record),
      status: s.status,
      attempts: s.attempts,
      count: s.checkpoints.length,
      best,
      latest,
      metrics,
    };
  });
  await store.put(
    key,
    await gzip(enc.encode(JSON.stringify({
      format: FORMAT_VERSION,
      type: "segment",
      created: new Date().toISOString(),
      basis,
      dropped_at: droppedAt,
      experiments: entries,
    }))),
  );
  return key;
}
