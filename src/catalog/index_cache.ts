/**
 * The listing index: every experiment's records, refreshed incrementally from the store and kept in
 * a local cache file. A finished experiment (one with `status.json`) never changes, so a warm refresh
 * lists the `experiments/` folder once and reads only what is new. The cache is only a cache:
 * deleting it loses nothing, and an experiment that vanished from the store is dropped from it.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import {
  type CheckpointRecord,
  type ExperimentRecord,
  type Heartbeat,
  parseCheckpoint,
  parseExperiment,
  parseHeartbeat,
  parseJson,
  parseStatus,
  parseTombstone,
  type PrimaryMetric,
  type StatusRecord,
  type TombstoneRecord,
} from "../format/records.ts";
import { NotFoundError } from "../errors.ts";
import type { Store } from "../storage/store.ts";
import { pool, writeFileAtomic } from "../util.ts";
import {
  experimentOfPrefix,
  experimentPrefix,
  heartbeatKey,
  indexSegmentKey,
  PREFIX,
} from "../format/layout.ts";

const CACHE_VERSION = 3;

/** Fewest finished experiments worth reading or writing an index segment for. */
export const SEGMENT_MIN = 100;

/** Everything known about one experiment. */
export interface ExperimentEntry {
  record: ExperimentRecord | null;
  checkpoints: CheckpointRecord[];
  /**
   * Number, best and latest of the checkpoints, kept in the cache file so that a listing does not
   * have to parse every checkpoint of every experiment (they are parsed when first used).
   */
  summary?: CheckpointSummary;
  status: StatusRecord | null;
  heartbeat: Heartbeat | null;
  /** Keys already read (besides the heartbeat), with their sizes. */
  keys: Record<string, number>;
  /** Records that failed to parse: key → reason. */
  corrupt: Record<string, string>;
}

/** What a listing shows of an experiment's checkpoints. */
export interface CheckpointSummary {
  count: number;
  best: CheckpointRecord | null;
  latest: CheckpointRecord | null;
}

/**
 * An entry as stored: its checkpoints are a byte range (`cr`: offset, length) of JSON in the
 * cache's companion `.ckpt` file, parsed on first use.
 */
type StoredEntry = ExperimentEntry & { cr?: [number, number] };

/** The JSON bytes of each lazily loaded entry's checkpoints, while they were not touched. */
const untouched = new WeakMap<ExperimentEntry, Uint8Array>();

/** Make `entry.checkpoints` parse `bytes` when first read (or replaced). */
function lazyCheckpoints(entry: ExperimentEntry, bytes: Uint8Array): void {
  let list: CheckpointRecord[] | null = null;
  untouched.set(entry, bytes);
  Object.defineProperty(entry, "checkpoints", {
    get() {
      if (!list) {
        list = JSON.parse(new TextDecoder().decode(bytes)) as CheckpointRecord[];
        untouched.delete(entry);
      }
      return list;
    },
    set(v: CheckpointRecord[]) {
      list = v;
      untouched.delete(entry);
    },
    enumerable: true,
    configurable: true,
  });
}

/** Pick the best checkpoint by the primary metric; NaN, missing and non-numbers are ignored. */
export function bestCheckpoint(
  checkpoints: CheckpointRecord[],
  fallback: PrimaryMetric | null,
): CheckpointRecord | null {
  let best: CheckpointRecord | null = null;
  let bestVal = 0;
  for (const ck of checkpoints) {
    const pm = ck.primary_metric ?? fallback;
    if (!pm) continue;
    const v = ck.metrics[pm.name];
    if (typeof v !== "number" || Number.isNaN(v)) continue;
    if (best === null || (pm.goal === "minimize" ? v < bestVal : v > bestVal)) {
      best = ck;
      bestVal = v;
    }
  }
  return best;
}

/**
 * The cache as two files' contents: the index JSON (records, statuses, and per experiment a
 * summary of its checkpoints) and the companion bytes holding every experiment's checkpoint list
 * as plain JSON, so that loading the index never parses checkpoints a listing does not look at.
 */
function serializeIndex(index: IndexData, ckptName: string): { json: string; ckpt: Uint8Array } {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  let offset = 0;
  const experiments: Record<string, unknown> = {};
  for (const [id, e] of Object.entries(index.experiments)) {
    let bytes = untouched.get(e);
    let summary = e.summary;
    if (bytes === undefined || !summary) {
      const list = e.checkpoints;
      bytes = enc.encode(JSON.stringify(list));
      summary = {
        count: list.length,
        best: bestCheckpoint(list, e.record?.primary_metric ?? null),
        latest: list[list.length - 1] ?? null,
      };
    }
    const { checkpoints: _, ...rest } = e;
    experiments[id] = { ...rest, summary, cr: [offset, bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  const ckpt = new Uint8Array(offset);
  let o = 0;
  for (const p of parts) {
    ckpt.set(p, o);
    o += p.length;
  }
  return { json: JSON.stringify({ ...index, experiments, ckpt: ckptName }), ckpt };
}

/** The whole index. */
export interface IndexData {
  version: number;
  url: string;
  experiments: Record<string, ExperimentEntry>;
  tombstones: Record<string, TombstoneRecord>;
  refreshed: string;
  /** Index segments already merged in. */
  segments?: string[];
}

/** Progress callback: items done out of total. */
export type Progress = (done: number, total: number) => void;

function emptyIndex(url: string): IndexData {
  return { version: CACHE_VERSION, url, experiments: {}, tombstones: {}, refreshed: "" };
}

/** Path of the cache file for a repository URL. */
export function indexPath(cacheRoot: string, url: string): string {
  const h = createHash("sha256").update(url).digest("hex").slice(0, 24);
  return join(cacheRoot, "index", `${h}.json`);
}

async function loadIndex(path: string, url: string): Promise<IndexData> {
  try {
    const data = JSON.parse(await Deno.readTextFile(path)) as IndexData & { ckpt?: string };
    if (
      data.version !== CACHE_VERSION || data.url !== url || typeof data.experiments !== "object" ||
      typeof data.ckpt !== "string" || data.ckpt.includes("/")
    ) {
      return emptyIndex(url);
    }
    const ckpt = await Deno.readFile(join(dirname(path), data.ckpt));
    for (const entry of Object.values(data.experiments) as StoredEntry[]) {
      const [off, len] = entry.cr ?? [0, -1];
      if (len < 0 || off + len > ckpt.length) return emptyIndex(url);
      lazyCheckpoints(entry, ckpt.subarray(off, off + len));
      delete entry.cr;
    }
    delete data.ckpt;
    return data;
  } catch {
    return emptyIndex(url);
  }
}

/**
 * Save the cache: the companion checkpoint file under a new name first, then the index that
 * names it (atomically), then older companions are removed.
 */
async function saveIndex(path: string, index: IndexData): Promise<void> {
  const dir = dirname(path);
  await Deno.mkdir(dir, { recursive: true });
  const base = basename(path, ".json");
  const ckptName = `${base}-${crypto.randomUUID().slice(0, 8)}.ckpt`;
  const { json, ckpt } = serializeIndex(index, ckptName);
  await writeFileAtomic(join(dir, ckptName), ckpt);
  await writeFileAtomic(path, json);
  for await (const e of Deno.readDir(dir)) {
    if (e.name.startsWith(`${base}-`) && e.name.endsWith(".ckpt") && e.name !== ckptName) {
      await Deno.remove(join(dir, e.name)).catch(() => {});
    }
  }
}

async function readJson(store: Store, key: string): Promise<unknown> {
  return parseJson(await store.getBytes(key), key);
}

/**
 * Bring the index up to date with the store and save it. Reads only keys not seen before, plus the
 * heartbeats of experiments that have not finished.
 */
export async function refreshIndex(
  store: Store,
  cacheFile: string | null,
  options: { full?: boolean; progress?: Progress; noSegments?: boolean } = {},
): Promise<IndexData> {
  const index = cacheFile && !options.full
    ? await loadIndex(cacheFile, store.url)
    : emptyIndex(store.url);
  const ids: string[] = [];
  for await (const p of store.listPrefixes(PREFIX.experiments)) {
    const id = experimentOfPrefix(p);
    if (id) ids.push(id);
  }
  // Whether anything differs from the cache file: a warm listing with nothing new skips
  // rewriting it (serializing tens of MB is most of a warm listing's time).
  let changed = index.refreshed === "";
  const present = new Set(ids);
  for (const id of Object.keys(index.experiments)) {
    if (!present.has(id)) {
      delete index.experiments[id];
      changed = true;
    }
  }
  let todo = ids.filter((id) => {
    const e = index.experiments[id];
    return !e || !e.status || !e.record;
  });
  // Many experiments unknown here (a cold cache): shared index segments hold finished
  // experiments in a few objects instead of one read per record.
  if (todo.length >= SEGMENT_MIN && !options.noSegments) {
    changed = true;
    await loadSegments(store, index, present);
    todo = todo.filter((id) => {
      const e = index.experiments[id];
      return !e || !e.status || !e.record;
    });
  }
  if (todo.length) changed = true;
  let done = 0;
  const finishedNow: string[] = [];
  await pool(todo, 16, async (id) => {
    const entry = index.experiments[id] ??
      (index.experiments[id] = {
        record: null,
        checkpoints: [],
        status: null,
        heartbeat: null,
        keys: {},
        corrupt: {},
      });
    await refreshExperiment(store, id, entry);
    if (entry.status && entry.record) {
      // Finished: never read again, so the keys already read need not be remembered (~15% of
      // the cache file).
      entry.keys = {};
      if (!Object.keys(entry.corrupt).length) finishedNow.push(id);
    }
    options.progress?.(++done, todo.length);
  });
  // Share what was read the slow way, so the next cold reader anywhere reads one object.
  if (finishedNow.length >= SEGMENT_MIN && !options.noSegments) {
    await writeSegment(store, finishedNow.map((id) => index.experiments[id]!)).catch(() => {});
  }
  // Tombstones: small and few; read the new ones.
  const tkeys: string[] = [];
  for await (const info of store.list(PREFIX.tombstones)) tkeys.push(info.key);
  const tset = new Set(tkeys);
  for (const k of Object.keys(index.tombstones)) {
    if (!tset.has(k)) {
      delete index.tombstones[k];
      changed = true;
    }
  }
  const newTombstones = tkeys.filter((k) => !index.tombstones[k]);
  if (newTombstones.length) changed = true;
  await pool(newTombstones, 16, async (k) => {
    try {
      index.tombstones[k] = parseTombstone(await readJson(store, k), k);
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
    }
  });
  index.refreshed = new Date().toISOString();
  if (cacheFile && changed) {
    await Deno.mkdir(join(cacheFile, ".."), { recursive: true });
    await saveIndex(cacheFile, index);
  }
  return index;
}

async function refreshExperiment(store: Store, id: string, entry: ExperimentEntry): Promise<void> {
  delete entry.summary; // recomputed when the cache is saved
  const base = experimentPrefix(id);
  const keys: { key: string; size: number }[] = [];
  for await (const info of store.list(base)) keys.push({ key: info.key, size: info.size });
  const indexed = (name: string) =>
    name === "experiment.json" || name === "status.json" ||
    (name.startsWith("checkpoints/") && name.endsWith(".json"));
  const fresh = keys.filter((k) =>
    entry.keys[k.key] === undefined && indexed(k.key.slice(base.length))
  );
  await pool(fresh, 8, async ({ key, size }) => {
    const name = key.slice(base.length);
    try {
      const v = await readJson(store, key);
      if (name === "experiment.json") {
        const rec = parseExperiment(v, key);
        if (rec.id !== id) throw new Error(`id ${rec.id} does not match its folder`);
        // The index keeps what listing needs; provenance (environment, packages, git diff) can be
        // large and is read from the record when shown.
        entry.record = { ...rec, provenance: {} };
      } else if (name === "status.json") {
        entry.status = parseStatus(v, key);
      } else {
        const ck = parseCheckpoint(v, key);
        if (ck.experiment !== id) throw new Error(`experiment ${ck.experiment} is not its folder`);
        entry.checkpoints.push(ck);
      }
      entry.keys[key] = size;
    } catch (e) {
      if (e instanceof NotFoundError) return; // deleted meanwhile
      entry.corrupt[key] = e instanceof Error ? e.message : String(e);
      entry.keys[key] = size;
    }
  });
  entry.checkpoints.sort(compareCheckpoints);
  if (!entry.status && keys.some((k) => k.key === heartbeatKey(id))) {
    try {
      entry.heartbeat = parseHeartbeat(await readJson(store, heartbeatKey(id)));
    } catch {
      entry.heartbeat = null;
    }
  }
}

/** Order checkpoints by creation time, then step. */
export function compareCheckpoints(a: CheckpointRecord, b: CheckpointRecord): number {
  if (a.created !== b.created) return a.created < b.created ? -1 : 1;
  return (a.step ?? -1) - (b.step ?? -1);
}

/** A shared index segment: finished experiments' records in one gzipped object. */
interface Segment {
  format: number;
  type: "index";
  created: string;
  experiments: { record: unknown; checkpoints: unknown[]; status: unknown }[];
}

async function gzip(data: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([data as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

async function gunzip(data: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([data as BlobPart]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** Write a segment holding these finished experiments under `index/`. */
export async function writeSegment(store: Store, entries: ExperimentEntry[]): Promise<string> {
  const created = new Date().toISOString();
  const seg: Segment = {
    format: 1,
    type: "index",
    created,
    experiments: entries.map((e) => ({
      record: e.record,
      checkpoints: e.checkpoints,
      status: e.status,
    })),
  };
  const key = indexSegmentKey(new Date(created));
  await store.put(key, await gzip(new TextEncoder().encode(JSON.stringify(seg))));
  return key;
}

/**
 * Load the index segments not loaded before; experiments in them that still exist in the store
 * and are not yet known here are taken from them. Segments are checked like any record (a
 * repository may be hostile); a bad or vanished segment is skipped: the records are the truth.
 */
async function loadSegments(store: Store, index: IndexData, present: Set<string>): Promise<void> {
  index.segments ??= [];
  const loaded = new Set(index.segments);
  const keys: string[] = [];
  for await (const info of store.list(PREFIX.index)) if (!loaded.has(info.key)) keys.push(info.key);
  await pool(keys, 4, async (key) => {
    let seg: Segment;
    try {
      seg = parseJson(await gunzip(await store.getBytes(key)), key) as Segment;
      if (seg?.type !== "index" || !Array.isArray(seg.experiments)) return;
    } catch {
      return;
    }
    for (const raw of seg.experiments) {
      try {
        const record = parseExperiment(raw.record, key);
        if (!present.has(record.id)) continue;
        const known = index.experiments[record.id];
        if (known?.status && known.record) continue;
        const status = parseStatus(raw.status, key);
        const checkpoints = (Array.isArray(raw.checkpoints) ? raw.checkpoints : []).map((c) =>
          parseCheckpoint(c, key)
        ).filter((c) => c.experiment === record.id).sort(compareCheckpoints);
        index.experiments[record.id] = {
          record,
          checkpoints,
          status,
          heartbeat: null,
          keys: {},
          corrupt: {},
        };
      } catch {
        // a bad entry: that experiment is read from its records instead
      }
    }
    index.segments!.push(key);
  });
}
