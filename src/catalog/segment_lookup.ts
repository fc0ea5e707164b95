/**
 * Finding checkpoints by id among experiments merged in from shared segments, whose checkpoint
 * records are not loaded yet: the segments' ids objects say which experiments hold them, so only
 * those experiments' records are loaded (not every checkpoint of a 100k-experiment repository).
 *
 * @module
 */
import type { Store } from "../storage/store.ts";
import { pool } from "../util.ts";
import type { IndexDb } from "./index_db.ts";
import { readSegmentCheckpoints, readSegmentIds, writeSegmentIds } from "./segments.ts";

/** Which checkpoints to find: those whose id starts with `prefix`, or those in `ids`. */
export type CheckpointMatch = { prefix: string } | { ids: ReadonlySet<string> };

/**
 * The experiments, among those whose checkpoints wait in a segment, holding a checkpoint whose id
 * `match` names. A segment made before ids objects has its checkpoints object read instead, and its
 * ids object written for later readers (best effort: a read-only store keeps the slow way).
 */
export async function pendingHolding(
  store: Store,
  db: IndexDb,
  match: CheckpointMatch,
): Promise<string[]> {
  const hits: string[] = [];
  const older: [string, string[]][] = [];
  await pool([...db.pending()], 4, async ([name, exps]) => {
    const ids = await readSegmentIds(store, name);
    if (ids) collect(ids, exps, match, hits);
    else older.push([name, exps]);
  });
  // One at a time: a checkpoints object of 10,000 experiments is large once parsed.
  for (const [name, exps] of older) {
    const lists = await readSegmentCheckpoints(store, name);
    if (!lists) {
      hits.push(...exps); // unreadable: their records are read from their folders
      continue;
    }
    await writeSegmentIds(store, name, lists).catch(() => {});
    const ids = new Map([...lists].map(([id, list]) => [id, list.map((c) => c.id).join("")]));
    collect(ids, exps, match, hits);
  }
  return hits;
}

function collect(
  ids: Map<string, string>,
  exps: string[],
  match: CheckpointMatch,
  into: string[],
): void {
  for (const id of exps) {
    const all = ids.get(id);
    // An experiment the ids object does not name: load it to be sure.
    if (all === undefined || holds(all, match)) into.push(id);
  }
}

/** Whether concatenated ids (32 hex digits each) hold one that `match` names. */
function holds(all: string, match: CheckpointMatch): boolean {
  for (let at = 0; at < all.length; at += 32) {
    if (
      "prefix" in match ? all.startsWith(match.prefix, at) : match.ids.has(all.slice(at, at + 32))
    ) {
      return true;
    }
  }
  return false;
}
