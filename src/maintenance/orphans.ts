/**
 * Orphans and removed records, found from one listing of every key under `experiments/`: the
 * records `rep gc` deletes and `rep verify` reports.
 *
 * - a folder without `experiment.json` (the experiment was removed while its writer still ran, or
 *   its record never arrived);
 * - a heartbeat left beside the final status of the newest attempt (its writer is gone).
 *
 * @module
 */
import { isId } from "../format/ids.ts";
import { experimentObject, PREFIX } from "../format/layout.ts";
import type { ObjectInfo, Store } from "../storage/store.ts";
import type { Visibility } from "../catalog/visibility.ts";

/** Every key under `experiments/`, by experiment id. */
export async function listExperimentKeys(store: Store): Promise<Map<string, ObjectInfo[]>> {
  const out = new Map<string, ObjectInfo[]>();
  for await (const info of store.list(PREFIX.experiments)) {
    const id = info.key.slice(PREFIX.experiments.length).split("/")[0]!;
    if (!isId(id)) continue;
    const list = out.get(id) ?? [];
    list.push(info);
    out.set(id, list);
  }
  return out;
}

/** The part of an experiment's key after `experiments/<id>/`. */
export function nameOf(id: string, info: ObjectInfo): string {
  return info.key.slice(PREFIX.experiments.length + id.length + 1);
}

/** One orphan. */
export interface Orphan {
  experiment: string;
  kind: "folder" | "heartbeat";
  /** Its keys. */
  keys: string[];
}

/** Orphans whose every object is at least `minAgeMs` old. */
export function findOrphans(
  keys: Map<string, ObjectInfo[]>,
  vis: Visibility,
  now: number,
  minAgeMs: number,
): Orphan[] {
  const out: Orphan[] = [];
  const old = (i: ObjectInfo) => now - (i.mtime?.getTime() ?? now) >= minAgeMs;
  for (const [id, infos] of keys) {
    if (vis.removedExperiments.has(id)) continue;
    const names = new Map(infos.map((i) => [nameOf(id, i), i]));
    if (!names.has("experiment.json")) {
      if (infos.every(old)) {
        out.push({
          experiment: id,
          kind: "folder",
          keys: infos.map((i) => i.key),
        });
      }
      continue;
    }
    let newest = 1;
    for (const n of names.keys()) {
      const o = experimentObject(n);
      if (o.kind === "attempt" || o.kind === "attempt-status") newest = Math.max(newest, o.attempt);
    }
    const final = newest === 1
      ? names.has("status.json")
      : names.has(`attempts/${newest}/status.json`);
    const hb = names.get("heartbeat.json");
    if (final && hb && old(hb)) out.push({ experiment: id, kind: "heartbeat", keys: [hb.key] });
  }
  return out;
}

/** Records of removed experiments and checkpoints, and the keys of orphans older than the grace. */
export function recordsToDelete(
  keys: Map<string, ObjectInfo[]>,
  vis: Visibility,
  now: number,
  graceMs: number,
): { records: string[]; orphans: string[] } {
  const records: string[] = [];
  for (const [id, infos] of keys) {
    if (vis.removedExperiments.has(id)) {
      records.push(...infos.map((i) => i.key));
      continue;
    }
    for (const info of infos) {
      const o = experimentObject(nameOf(id, info));
      if (o.kind === "checkpoint" && vis.removedCheckpoints.has(o.checkpoint)) {
        records.push(info.key);
      }
    }
  }
  const orphans = findOrphans(keys, vis, now, graceMs).flatMap((o) => o.keys);
  return { records, orphans };
}
