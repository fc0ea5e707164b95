/**
 * `gc`: delete what nothing refers to, safely while other machines write.
 *
 * Phase 1 lists unreferenced packs and trees older than the grace period in a `gc/` object. A later
 * run deletes the listed objects that are still unreferenced, once the listing itself is older than
 * the grace period. Writers never reuse chunks from packs listed there, and a run that reused a
 * chunk before the listing appeared has published its records long before the grace period ends,
 * so a deleted object is one that no record will ever refer to. Records of removed experiments and
 * checkpoints are deleted with their tombstones.
 *
 * @module
 */
import { FORMAT_VERSION, parseJson } from "../format/records.ts";
import { type Repository, viewsOf } from "../repository.ts";
import { jsonBytes, pool } from "../util.ts";
import { gcCandidates } from "../catalog/gc_listings.ts";
import { type PackIndexGcResult, rewritePackIndex } from "./pack_index_gc.ts";

export { gcCandidates };
import {
  checkpointKey,
  experimentPrefix,
  gcListingKey,
  packOfKey,
  PREFIX,
  treeOfKey,
} from "../format/layout.ts";

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
  /** Keys deleted (or that would be). */
  deleted: string[];
  /** Bytes freed (or that would be). */
  freed: number;
  /** Unreferenced objects newly listed for deletion by a later run. */
  listed: string[];
  /** Unreferenced objects still too young to list. */
  young: number;
  /** Records of removed experiments and checkpoints deleted. */
  records: number;
  /** What happened to the pack index (entries of deleted packs dropped, small objects merged). */
  packIndex: PackIndexGcResult;
}

/** Collect garbage. */
export async function collectGarbage(repo: Repository, options: GcOptions = {}): Promise<GcResult> {
  const now = options.now ?? Date.now();
  const graceMs = (options.grace ?? 86400) * 1000;
  const index = await repo.index({ full: true });
  const views = viewsOf(index, now);
  // Live references: trees of listed experiments and their checkpoints, and what they point to.
  const liveTrees = new Set<string>();
  for (const e of views) {
    if (e.record.code) liveTrees.add(e.record.code.tree);
    for (const c of e.checkpoints) if (c.files) liveTrees.add(c.files.tree);
  }
  // Experiments whose record is not there yet may be mid-upload: keep everything young anyway.
  const livePacks = new Set<string>();
  await pool([...liveTrees], 8, async (h) => {
    const tree = await repo.tree(h);
    for (const f of tree.files) for (const c of f.chunks) livePacks.add(c[0]);
  });
  const isLive = (key: string) => {
    const pack = packOfKey(key);
    if (pack) return livePacks.has(pack);
    const tree = treeOfKey(key);
    if (tree) return liveTrees.has(tree);
    return true;
  };
  const candidates = await gcCandidates(repo.store);
  const deleted: string[] = [];
  const listed: string[] = [];
  let freed = 0;
  let young = 0;
  const stored = new Set<string>(); // every pack and tree key, for pruning old listings below
  for (const prefix of [PREFIX.packs, PREFIX.trees]) {
    for await (const info of repo.store.list(prefix)) {
      stored.add(info.key);
      if (isLive(info.key)) continue;
      const age = now - (info.mtime?.getTime() ?? now);
      if (age < graceMs) {
        young++;
        continue;
      }
      const since = candidates.get(info.key);
      if (since !== undefined && now - Date.parse(since) >= graceMs) {
        deleted.push(info.key);
        freed += info.size;
      } else if (since === undefined) {
        listed.push(info.key);
      }
    }
  }
  // Records of removed experiments and checkpoints, then the tombstones that named them.
  const goneExp = new Set<string>();
  const goneCk = new Set<string>();
  for (const t of Object.values(index.tombstones)) {
    for (const id of t.experiments) goneExp.add(id);
    for (const id of t.checkpoints) goneCk.add(id);
  }
  const recordKeys: string[] = [];
  for (const [id, entry] of Object.entries(index.experiments)) {
    if (goneExp.has(id)) {
      for await (const info of repo.store.list(experimentPrefix(id))) recordKeys.push(info.key);
    } else {
      for (const c of entry.checkpoints) {
        if (goneCk.has(c.id)) recordKeys.push(checkpointKey(id, c.id));
      }
    }
  }
  // No pack index may list a pack once it is deleted: rewrite the index first.
  const packIds = (keys: Iterable<string>) =>
    new Set([...keys].map(packOfKey).filter((p): p is string => p !== null));
  const packIndex = await rewritePackIndex(repo.store, {
    deleted: packIds(deleted),
    stored: packIds(stored),
    graceMs,
    now,
    dryRun: options.dryRun ?? false,
  });
  if (!options.dryRun) {
    await repo.store.delete(deleted);
    await repo.store.delete(recordKeys);
    // Tombstones go once the records they name are deleted (just above); gc listings once all
    // their keys are gone or live again.
    await repo.store.delete(Object.keys(index.tombstones));
    if (listed.length) {
      const created = new Date(now).toISOString();
      await repo.store.put(
        gcListingKey(new Date(created)),
        jsonBytes({ format: FORMAT_VERSION, type: "gc", created, keys: listed }),
      );
    }
    // Old listings whose objects are all gone.
    const gcKeys: string[] = [];
    for await (const info of repo.store.list(PREFIX.gc)) gcKeys.push(info.key);
    for (const k of deleted) stored.delete(k);
    await pool(gcKeys, 8, async (k) => {
      try {
        const v = parseJson(await repo.store.getBytes(k), k) as { keys?: string[] };
        if (Array.isArray(v.keys) && v.keys.every((x) => !stored.has(x) || isLive(x))) {
          await repo.store.delete([k]);
        }
      } catch {
        // leave it
      }
    });
  }
  return { deleted, freed, listed, young, records: recordKeys.length, packIndex };
}
