/**
 * `rep gc`'s part of the pack index: before gc deletes packs, no index object may still list them
 * (a writer learning of a chunk from an index relies on its pack being stored), and many small
 * index objects are compacted into a few. New objects are written before old ones are deleted, so
 * a writer listing meanwhile sees every live pack in at least one object. See docs/format.md,
 * _Pack index_.
 *
 * @module
 */
import { NotFoundError } from "../errors.ts";
import { newId } from "../format/ids.ts";
import { packIndexKey, packIndexOfKey, PREFIX } from "../format/layout.ts";
import { encodePackIndex, type PackEntry, parsePackIndex } from "../format/pack_index.ts";
import { CorruptObjectError } from "../errors.ts";
import type { Store } from "../storage/store.ts";
import { pool } from "../util.ts";

/** An index object with fewer chunks than this is small: gc merges small objects. */
export const COMPACT_CHUNKS = 100_000;
/**
 * An index entry whose pack was not in gc's listing of packs is kept while its index object is
 * younger than this (or the grace period, if longer): its pack may have been stored after gc
 * listed `packs/`.
 */
const YOUNG_MS = 3600 * 1000;

/** Options of {@link rewritePackIndex}. */
export interface PackIndexGcOptions {
  /** Packs this gc run is about to delete. */
  deleted: ReadonlySet<string>;
  /** Every pack id gc found stored (listed before the index is read). */
  stored: ReadonlySet<string>;
  /** Grace period of this gc run, in milliseconds. */
  graceMs: number;
  now?: number;
  /** Only count what would change. */
  dryRun?: boolean;
}

/** What {@link rewritePackIndex} did (or would do). */
export interface PackIndexGcResult {
  /** Index objects found. */
  objects: number;
  /** Index objects deleted (their live entries rewritten into `written`). */
  removed: number;
  /** Index objects written. */
  written: number;
  /** Pack entries dropped: packs deleted now, or no longer stored. */
  dropped: number;
}

/**
 * Rewrite the pack index so that it lists no pack in `deleted` (nor packs gone from the store),
 * merging small index objects into objects of up to {@link COMPACT_CHUNKS} chunks. Call it
 * before deleting the packs.
 */
export async function rewritePackIndex(
  store: Store,
  options: PackIndexGcOptions,
): Promise<PackIndexGcResult> {
  const now = options.now ?? Date.now();
  const youngMs = Math.max(YOUNG_MS, options.graceMs);
  const infos: { key: string; mtime: number }[] = [];
  for await (const info of store.list(PREFIX.packIndex)) {
    if (packIndexOfKey(info.key)) {
      infos.push({ key: info.key, mtime: info.mtime?.getTime() ?? now });
    }
  }
  const objects = await pool(infos, 8, async (info) => {
    let packs: PackEntry[] | null;
    try {
      packs = parsePackIndex(await store.getBytes(info.key), info.key).packs;
    } catch (e) {
      if (e instanceof NotFoundError) return null; // another gc compacted it
      if (!(e instanceof CorruptObjectError)) throw e;
      packs = []; // damaged: deleted, nothing to keep
    }
    const young = now - info.mtime < youngMs;
    const keep = packs.filter((p) =>
      !options.deleted.has(p.id) && (options.stored.has(p.id) || young)
    );
    const chunks = keep.reduce((n, p) => n + p.chunks.length, 0);
    return { key: info.key, keep, dropped: packs.length - keep.length, chunks };
  });
  const found = objects.filter((o) => o !== null);
  const changed = found.filter((o) => o.dropped > 0);
  const small = found.filter((o) => o.dropped === 0 && o.chunks < COMPACT_CHUNKS);
  // Merge small objects when there are several; rewrite every object that lists a dropped pack.
  const rewrite = [...changed, ...(small.length >= 2 ? small : [])];
  const result: PackIndexGcResult = {
    objects: found.length,
    removed: rewrite.length,
    written: 0,
    dropped: changed.reduce((n, o) => n + o.dropped, 0),
  };
  // Live entries of the rewritten objects, each pack once (and not if an object kept lists it),
  // in objects of up to COMPACT_CHUNKS chunks.
  const rewritten = new Set(rewrite);
  const seen = new Set<string>();
  for (const o of found) if (!rewritten.has(o)) { for (const p of o.keep) seen.add(p.id); }
  const groups: PackEntry[][] = [];
  let group: PackEntry[] = [];
  let size = 0;
  for (const o of rewrite) {
    for (const p of o.keep) {
      if (seen.has(p.id)) continue;
      seen.add(p.id);
      if (group.length && size + p.chunks.length > COMPACT_CHUNKS) {
        groups.push(group);
        group = [];
        size = 0;
      }
      group.push(p);
      size += p.chunks.length;
    }
  }
  if (group.length) groups.push(group);
  result.written = groups.length;
  if (options.dryRun || !rewrite.length) return result;
  const created = new Date();
  for (const g of groups) {
    await store.put(packIndexKey(newId(), created), encodePackIndex(g, created));
  }
  await store.delete(rewrite.map((o) => o.key));
  return result;
}
