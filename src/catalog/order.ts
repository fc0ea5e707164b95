/**
 * How checkpoints are ordered and which one is best: the one rule every reader uses.
 *
 * @module
 */
import type { CheckpointRecord, PrimaryMetric } from "../format/records.ts";

/** Order checkpoints by creation time, then step, then id. */
export function compareCheckpoints(a: CheckpointRecord, b: CheckpointRecord): number {
  if (a.created !== b.created) return a.created < b.created ? -1 : 1;
  const s = (a.step ?? -1) - (b.step ?? -1);
  if (s !== 0) return s;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Pick the best checkpoint by the primary metric (each checkpoint's own, else `fallback`); NaN,
 * missing and non-numeric values are ignored. Ties go to the earlier checkpoint.
 */
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
