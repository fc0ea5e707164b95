/**
 * `gc`: delete what nothing refers to, safely while other machines write.
 *
 * What is live is decided by the catalog (the same visibility every reader uses), from a fresh
 * index that trusts no local cache, cross-checked against one listing of every key under
 * `experiments/` (a record the index does not hold yet keeps its data). Then, in this order:
 *
 * 1. records of removed experiments and checkpoints are deleted, and orphans older than the grace
 *    period (folders without `experiment.json`, a heartbeat left beside a final status);
 * 2. data: an unreferenced pack or tree older than the grace period is first listed in a `gc/`
 *    object, and deleted by a later run once the listing is older than the grace period (writers
 *    never reuse data listed there); `--grace 0` lists and deletes in one run;
 * 3. shared listing segments are rewritten from the fresh index (when they changed), old ones
 *    deleted;
 * 4. change objects are compacted into one: written before the old ones are deleted, keeping
 *    every entry except removals older than the grace period whose records are all gone (and the
 *    tags and notes of experiments so removed). Dropping anything is recorded (`dropped`), so a
 *    reader whose index may predate a dropped removal rebuilds it (see `catalog/visibility.ts`).
 *
 * Each step is a function of its own; the pack index (pack-index objects) is rewritten without the
 * packs step 2 deletes before they are deleted (`pack_index_gc.ts`).
 *
 * @module
 */
import { NotFoundError } from "../errors.ts";
import {
  changeKey,
  experimentObject,
  gcListingKey,
  packOfKey,
  PREFIX,
  segmentKey,
  segmentOfKey,
  treeOfKey,
} from "../format/layout.ts";
import { FORMAT_VERSION, parseCheckpoint, parseExperiment, parseJson } from "../format/records.ts";
import type { ObjectInfo, Store } from "../storage/store.ts";
import { listExperimentKeys, nameOf, recordsToDelete } from "./orphans.ts";
import { START_GRACE_MS } from "../lifecycle/attempts.ts";
import type { Repository } from "../repository.ts";
import { jsonBytes, pool } from "../util.ts";
import { gcCandidates } from "../catalog/gc_listings.ts";
import { type PackIndexGcResult, rewritePackIndex } from "./pack_index_gc.ts";
import { Catalog } from "../catalog/catalog.ts";
import { changeObjectBytes, type Dropped } from "../catalog/changes.ts";
import { SEGMENT_MIN } from "../catalog/refresh.ts";
import { SEGMENT_MAX, type SegmentInput, segmentName, writeSegment } from "../catalog/segments.ts";
import type { ExperimentView } from "../catalog/views.ts";
import type { Visibility } from "../catalog/visibility.ts";

export { gcCandidates };

/** Options of {@link collectGarbage}. */
export interface GcOptions {
  /** Only report. */
  dryRun?: boolean;
  /** Seconds an unreferenced object must have existed, and been listed, before deletion. @default 86400 */
  grace?: number;
  now?: number;
}

/** What {@link collectGarbage} did (or would do). */
export interface GcResult {
  /** Keys of data deleted (or that would be). */
  deleted: string[];
  /** Bytes freed (or that would be). */
  freed: number;
  /** Unreferenced objects newly listed for deletion by a later run. */
  listed: string[];
  /** Unreferenced objects still too young to list. */
  young: number;
  /**
   * Unreferenced objects the grace asked for would have deleted, kept because experiments are
   * being recorded (see {@link SAFE_GRACE_MS}); deleted by a later run.
   */
  held: number;
  /** Experiments being recorded while gc ran (running, or starting). */
  writers: string[];
  /** Records of removed experiments and checkpoints deleted. */
  records: number;
  /** Keys of orphans deleted (folders without an experiment record, leftover heartbeats). */
  orphans: string[];
  /** Change objects compacted into one (0 when there was nothing to compact). */
  compacted: number;
  /** Removals dropped from the change objects (their records are all gone). */
  droppedRemovals: number;
  /** Listing segments written and deleted. */
  segments: { written: number; deleted: number };
  /** What happened to the pack index (entries of deleted packs dropped, small objects merged). */
  packIndex: PackIndexGcResult;
}

/**
 * Trees that live experiments refer to: from the catalog's views, plus records in the store that
 * the index does not hold (written after it was read).
 */
async function liveTrees(
  store: Store,
  views: ExperimentView[],
  keys: Map<string, ObjectInfo[]>,
  vis: Visibility,
): Promise<Set<string>> {
  const live = new Set<string>();
  const known = new Set<string>();
  const listed = new Set<string>();
  for (const e of views) {
    listed.add(e.id);
    if (e.record.code) live.add(e.record.code.tree);
    for (const c of e.checkpoints) {
      known.add(c.id);
      if (c.files) live.add(c.files.tree);
    }
  }
  const unknown: string[] = [];
  for (const [id, infos] of keys) {
    if (vis.removedExperiments.has(id)) continue;
    const names = infos.map((i) => nameOf(id, i));
    if (!names.includes("experiment.json")) continue; // an orphan keeps nothing alive
    for (const info of infos) {
      const o = experimentObject(nameOf(id, info));
      if (o.kind === "experiment" && !listed.has(id)) unknown.push(info.key);
      if (
        o.kind === "checkpoint" && !known.has(o.checkpoint) &&
        !vis.removedCheckpoints.has(o.checkpoint)
      ) unknown.push(info.key);
    }
  }
  await pool(unknown, 16, async (key) => {
    try {
      const v = parseJson(await store.getBytes(key), key);
      if (key.endsWith("/experiment.json")) {
        const r = parseExperiment(v, key);
        if (r.code) live.add(r.code.tree);
      } else {
        const c = parseCheckpoint(v, key);
        if (c.files) live.add(c.files.tree);
      }
    } catch {
      // gone or unreadable: refers to nothing
    }
  });
  return live;
}

/**
 * The shortest grace period under which deleting data is safe while other processes write: a
 * writer checks a pack it reuses against a view of `gc/` at most a minute old, and its record
 * follows within moments (docs/format.md, _Pack index_). A shorter `--grace` deletes at once only
 * while nothing is being recorded; while something is, it lists, and deletes after this long.
 */
export const SAFE_GRACE_MS = 10 * 60_000;

/**
 * Experiments being recorded now: those reading as running (a fresh heartbeat), and folders
 * without an experiment record yet whose objects are fresh (a writer starting: its heartbeat
 * comes first, then its code snapshot, which may reuse any pack).
 */
export function writersNow(
  views: ExperimentView[],
  keys: Map<string, ObjectInfo[]>,
  vis: Visibility,
  now: number,
): string[] {
  const ids = new Set(views.filter((v) => v.status === "running").map((v) => v.id));
  for (const [id, infos] of keys) {
    if (ids.has(id) || vis.removedExperiments.has(id)) continue;
    if (infos.some((i) => nameOf(id, i) === "experiment.json")) continue;
    if (infos.some((i) => now - (i.mtime?.getTime() ?? now) < START_GRACE_MS)) ids.add(id);
  }
  return [...ids].sort();
}

/** Step 2: unreferenced data to list and to delete. */
async function dataToDelete(
  store: Store,
  trees: Set<string>,
  readTree: (hash: string) => Promise<{ files: { chunks: [string, ...unknown[]][] }[] }>,
  now: number,
  graceMs: number,
  deleteGraceMs: number,
): Promise<{
  deleted: string[];
  listed: string[];
  freed: number;
  young: number;
  /** Unreferenced objects that this grace would delete, kept because something is recorded. */
  held: number;
  stored: Set<string>;
  isLive: (key: string) => boolean;
  candidates: Map<string, string>;
}> {
  const packs = new Set<string>();
  await pool([...trees], 8, async (h) => {
    const tree = await readTree(h);
    for (const f of tree.files) for (const c of f.chunks) packs.add(c[0]);
  });
  const isLive = (key: string) => {
    const pack = packOfKey(key);
    if (pack) return packs.has(pack);
    const tree = treeOfKey(key);
    if (tree) return trees.has(tree);
    return true;
  };
  const candidates = await gcCandidates(store);
  const deleted: string[] = [];
  const listed: string[] = [];
  let freed = 0;
  let young = 0;
  let held = 0;
  const stored = new Set<string>();
  for (const prefix of [PREFIX.packs, PREFIX.trees]) {
    for await (const info of store.list(prefix)) {
      stored.add(info.key);
      if (isLive(info.key)) continue;
      const age = now - (info.mtime?.getTime() ?? now);
      if (age < graceMs) {
        young++;
        continue;
      }
      const since = candidates.get(info.key);
      const due = (ms: number) =>
        ms === 0 || (since !== undefined && now - Date.parse(since) >= ms);
      if (due(deleteGraceMs)) {
        deleted.push(info.key);
        freed += info.size;
      } else if (due(graceMs)) held++;
      if (since === undefined) listed.push(info.key);
    }
  }
  return { deleted, listed, freed, young, held, stored, isLive, candidates };
}

/**
 * Step 4: the compacted change object: every entry kept except removals older than the grace
 * period whose records are all gone (and tags and notes of experiments so removed).
 */
function compactChanges(
  vis: Visibility,
  keysLeft: (experiment: string) => boolean,
  checkpointLeft: (checkpoint: string) => boolean,
  experimentOf: Map<string, string>,
  now: number,
  graceMs: number,
): { entries: Record<string, unknown>[]; dropped: Dropped | null; count: number } {
  const goneExperiments = new Set<string>();
  const kept: Record<string, unknown>[] = [];
  let count = 0;
  let before = vis.dropped?.before ?? "";
  for (const e of vis.entries) {
    const entry = e.entry;
    if (entry?.op === "remove") {
      const old = now - Date.parse(e.created) >= graceMs;
      const allGone = entry.experiments.every((x) => !keysLeft(x)) &&
        entry.checkpoints.every((c) => !checkpointLeft(c.checkpoint));
      if (old && allGone) {
        for (const x of entry.experiments) goneExperiments.add(x);
        count++;
        if (e.created > before) before = e.created;
        continue;
      }
      // Name each checkpoint's experiment where a format 1 tombstone did not.
      const checkpoints = entry.checkpoints.map((c) => {
        const exp = c.experiment ?? experimentOf.get(c.checkpoint) ?? null;
        return exp ? [exp, c.checkpoint] : c.checkpoint;
      });
      kept.push({ ...e.raw, checkpoints });
      continue;
    }
    kept.push(e.raw);
  }
  const entries = kept.filter((raw) => {
    const exp = raw.experiment;
    return !(typeof exp === "string" && goneExperiments.has(exp) && raw.op !== "remove");
  });
  const dropped = count ? { at: new Date(now).toISOString(), before } : vis.dropped;
  return { entries, dropped, count };
}

/** Collect garbage. */
export async function collectGarbage(repo: Repository, options: GcOptions = {}): Promise<GcResult> {
  const now = options.now ?? Date.now();
  const graceMs = (options.grace ?? 86400) * 1000;
  const store = repo.store;
  // A fresh index: nothing a local cache holds is trusted for deciding what to delete.
  const catalog = new Catalog(store, { cache: false });
  try {
    const views = await catalog.list({ now });
    const { visibility: vis, changes, basis } = catalog.lastRefresh!;
    const keys = await listExperimentKeys(store);
    const trees = await liveTrees(store, views, keys, vis);
    // While something is recorded, a short grace lists data but deletes only what is safe.
    const writers = writersNow(views, keys, vis, now);
    const deleteGraceMs = writers.length ? Math.max(graceMs, SAFE_GRACE_MS) : graceMs;
    const data = await dataToDelete(store, trees, (h) => repo.tree(h), now, graceMs, deleteGraceMs);
    // A folder without a record is a writer starting until its heartbeat is older than this.
    const { records, orphans } = recordsToDelete(keys, vis, now, Math.max(graceMs, START_GRACE_MS));
    // What is left once step 1 is done, for deciding which removals can be dropped.
    const deleting = new Set([...records, ...orphans]);
    const left = new Map<string, number>();
    const checkpointKeys = new Set<string>();
    const experimentOf = new Map<string, string>();
    for (const [id, infos] of keys) {
      for (const i of infos) {
        const o = experimentObject(nameOf(id, i));
        if (o.kind === "checkpoint") experimentOf.set(o.checkpoint, id);
        if (deleting.has(i.key)) continue;
        left.set(id, (left.get(id) ?? 0) + 1);
        if (o.kind === "checkpoint") checkpointKeys.add(o.checkpoint);
      }
    }
    const compact = compactChanges(
      vis,
      (x) => (left.get(x) ?? 0) > 0,
      (c) => checkpointKeys.has(c),
      experimentOf,
      now,
      graceMs,
    );
    // No pack index may list a pack once it is deleted: rewrite the index first.
    const packIds = (keys: Iterable<string>) =>
      new Set([...keys].map(packOfKey).filter((p): p is string => p !== null));
    const packIndex = await rewritePackIndex(store, {
      deleted: packIds(data.deleted),
      stored: packIds(data.stored),
      graceMs,
      now,
      dryRun: options.dryRun ?? false,
    });
    const result: GcResult = {
      deleted: data.deleted,
      freed: data.freed,
      listed: data.listed,
      young: data.young,
      held: data.held,
      writers,
      records: records.length,
      orphans,
      compacted: 0,
      droppedRemovals: compact.count,
      segments: { written: 0, deleted: 0 },
      packIndex,
    };
    if (changes.length > 1 || compact.count) result.compacted = changes.length;
    if (options.dryRun) return result;

    // 1. records and orphans
    await store.delete(records);
    await store.delete(orphans);
    // 2. data: listed first, so writers stop reusing it, then (when due) deleted
    if (data.listed.length) {
      const created = new Date(now).toISOString();
      await store.put(
        gcListingKey(new Date(created)),
        jsonBytes({ format: FORMAT_VERSION, type: "gc", created, keys: data.listed }),
      );
    }
    await store.delete(data.deleted);
    await pruneListings(store, data.stored, new Set(data.deleted), data.isLive);
    // 3. segments, made knowing of this run's drop
    const dropAt = compact.dropped?.at ?? null;
    result.segments = await rewriteSegments(store, catalog, views, vis, {
      basis,
      dropAt,
      dropped: compact.count > 0,
    });
    // 4. change objects: the compacted one first, then the ones it replaces
    if (result.compacted) {
      const created = new Date(now);
      await store.put(
        changeKey(created),
        changeObjectBytes(created.toISOString(), compact.entries, compact.dropped),
      );
      await store.delete(changes.map((c) => c.key));
    }
    return result;
  } finally {
    catalog.close();
  }
}

/** Delete `gc/` listings whose objects are all gone or live again. */
async function pruneListings(
  store: Store,
  stored: Set<string>,
  deleted: Set<string>,
  isLive: (key: string) => boolean,
): Promise<void> {
  const keys: string[] = [];
  for await (const info of store.list(PREFIX.gc)) keys.push(info.key);
  await pool(keys, 8, async (k) => {
    try {
      const v = parseJson(await store.getBytes(k), k) as { keys?: string[] };
      if (
        Array.isArray(v.keys) &&
        v.keys.every((x) => !stored.has(x) || deleted.has(x) || isLive(x))
      ) {
        await store.delete([k]);
      }
    } catch (e) {
      if (!(e instanceof NotFoundError)) {
        // unreadable: leave it
      }
    }
  });
}

/**
 * Step 3: segments of every finished experiment, from the fresh index, then delete every other
 * object under `index/`. Segments whose experiments did not change are kept as they are, unless
 * this run dropped removals (then they are made again, knowing of the drop).
 */
async function rewriteSegments(
  store: Store,
  catalog: Catalog,
  views: ExperimentView[],
  vis: Visibility,
  made: { basis: string; dropAt: string | null; dropped: boolean },
): Promise<{ written: number; deleted: number }> {
  const byId = new Map(views.map((v) => [v.id, v]));
  const finished = views.filter((v) => v.statusRecord !== null && !Object.keys(v.corrupt).length)
    .map((v) => v.id).sort();
  const want = new Set<string>();
  let written = 0;
  if (finished.length >= SEGMENT_MIN) {
    for (let i = 0; i < finished.length; i += SEGMENT_MAX) {
      const ids = finished.slice(i, i + SEGMENT_MAX);
      const name = segmentName(ids);
      want.add(name);
      if (!made.dropped && await store.head(segmentKey(name))) continue;
      const batch: SegmentInput[] = [];
      for (const id of ids) {
        const s = catalog.db.state(id);
        if (!s) continue;
        s.checkpoints = s.checkpoints.filter((c) => !vis.removedCheckpoints.has(c.id));
        const v = byId.get(id)!;
        batch.push({ state: s, best: v.best, latest: v.latest });
      }
      await writeSegment(store, batch, made.basis, made.dropAt, { overwrite: true });
      written++;
    }
  }
  const stale: string[] = [];
  for await (const info of store.list(PREFIX.index)) {
    const seg = segmentOfKey(info.key);
    if (!seg || !want.has(seg.name)) stale.push(info.key);
  }
  // Summaries first: a reader that sees one finds its checkpoints and ids.
  const isPart = (k: string) => (segmentOfKey(k)?.part ?? "summary") !== "summary";
  await store.delete(stale.filter((k) => !isPart(k)));
  await store.delete(stale.filter(isPart));
  return { written, deleted: stale.filter((k) => !isPart(k)).length };
}
