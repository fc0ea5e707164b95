/**
 * What a listing shows: experiments as views (records plus derived status, best and latest
 * checkpoints), with removals applied.
 *
 * @module
 */
import type {
  CheckpointRecord,
  ExperimentRecord,
  Heartbeat,
  Status,
  StatusRecord,
} from "../format/records.ts";
import { bestCheckpoint, type IndexData } from "./index_cache.ts";

export { bestCheckpoint };

/** An experiment as listed: its records plus derived state. */
export interface ExperimentView {
  id: string;
  record: ExperimentRecord;
  checkpoints: CheckpointRecord[];
  /** `checkpoints.length`, known without reading the checkpoint list. */
  numCheckpoints: number;
  status: Status;
  statusRecord: StatusRecord | null;
  heartbeat: Heartbeat | null;
  best: CheckpointRecord | null;
  latest: CheckpointRecord | null;
  /** Keys of records that could not be read. */
  corrupt: Record<string, string>;
}

/** What an id prefix resolved to. */
export type Resolved =
  | { kind: "experiment"; experiment: ExperimentView }
  | { kind: "checkpoint"; experiment: ExperimentView; checkpoint: CheckpointRecord };

/** Options of {@link Repository.checkout}. */

/** How stale a heartbeat may be before its experiment counts as crashed. */
export function heartbeatDeadline(hb: Heartbeat): number {
  return Date.parse(hb.updated) + (hb.interval * 3 + 30) * 1000;
}

/** Turn an index into experiment views: tombstones applied, status derived, best/latest picked. */
export function viewsOf(index: IndexData, now: number): ExperimentView[] {
  const goneExp = new Set<string>();
  const goneCk = new Set<string>();
  for (const t of Object.values(index.tombstones)) {
    for (const id of t.experiments) goneExp.add(id);
    for (const id of t.checkpoints) goneCk.add(id);
  }
  const out: ExperimentView[] = [];
  for (const [id, e] of Object.entries(index.experiments)) {
    if (!e.record || goneExp.has(id)) continue;
    let status: Status;
    if (e.status) status = e.status.status;
    else if (e.heartbeat) status = heartbeatDeadline(e.heartbeat) >= now ? "running" : "crashed";
    else status = Date.parse(e.record.created) + 120_000 >= now ? "running" : "crashed";
    const base = {
      id,
      record: e.record,
      status,
      statusRecord: e.status,
      heartbeat: e.heartbeat,
      corrupt: e.corrupt,
    };
    if (e.summary && goneCk.size === 0) {
      // From the cached summary; the checkpoint list itself is parsed only if someone reads it.
      const view = {
        ...base,
        numCheckpoints: e.summary.count,
        best: e.summary.best,
        latest: e.summary.latest,
      } as ExperimentView;
      Object.defineProperty(view, "checkpoints", {
        get: () => e.checkpoints,
        enumerable: true,
        configurable: true,
      });
      out.push(view);
      continue;
    }
    const checkpoints = e.checkpoints.filter((c) => !goneCk.has(c.id));
    out.push({
      ...base,
      checkpoints,
      numCheckpoints: checkpoints.length,
      best: bestCheckpoint(checkpoints, e.record.primary_metric),
      latest: checkpoints[checkpoints.length - 1] ?? null,
    });
  }
  out.sort((a, b) => (a.record.created < b.record.created ? 1 : -1));
  return out;
}
