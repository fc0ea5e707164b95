/**
 * Retention: which checkpoints of an experiment are worth keeping. The planner is a pure function
 * of the checkpoint records; `rep run --keep-best N --keep-last M` and `rep rm --keep-best N
 * --keep-last M` record removals for what it does not keep.
 *
 * @module
 */
import type { CheckpointRecord, PrimaryMetric } from "../format/records.ts";

/** How many checkpoints to keep. An omitted count keeps none for that reason. */
export interface RetentionPolicy {
  /** Keep the N best by the primary metric. */
  keepBest?: number;
  /** Keep the M latest. */
  keepLast?: number;
}

/** Why a checkpoint is kept. */
export type KeepReason = "best" | "latest";

/** What {@link planRetention} decided. */
export interface RetentionPlan {
  /** Kept checkpoints, oldest first, with why. */
  keep: { checkpoint: CheckpointRecord; reasons: KeepReason[] }[];
  /** Checkpoints outside the N best and the M latest, oldest first. */
  remove: CheckpointRecord[];
}

/** True when the policy keeps every checkpoint (no count given). */
export function keepsAll(policy: RetentionPolicy): boolean {
  return policy.keepBest === undefined && policy.keepLast === undefined;
}

/** Oldest first: by creation time, then step (as listings order them). */
function byAge(a: CheckpointRecord, b: CheckpointRecord): number {
  if (a.created !== b.created) return a.created < b.created ? -1 : 1;
  return (a.step ?? -1) - (b.step ?? -1);
}

/**
 * The value a checkpoint is ranked by, lower is better; null when it has none. As `best()` does,
 * a checkpoint is ranked by its own primary metric (else the experiment's), and NaN, missing and
 * non-numeric values do not rank: such a checkpoint is never among the best.
 */
function score(ck: CheckpointRecord, fallback: PrimaryMetric | null): number | null {
  const pm = ck.primary_metric ?? fallback;
  if (!pm) return null;
  const v = ck.metrics[pm.name];
  if (typeof v !== "number" || Number.isNaN(v)) return null;
  return pm.goal === "minimize" ? v : -v;
}

/**
 * Split checkpoints into those to keep (the `keepBest` best by the primary metric and the
 * `keepLast` latest) and those to remove. Ties in the metric go to the older checkpoint, so the
 * best kept is always the one `best()` picks. A policy with no count keeps everything.
 *
 * @param checkpoints The experiment's visible checkpoints, in any order.
 * @param policy The counts to keep.
 * @param fallback The experiment's primary metric, for checkpoints that name none.
 * @returns Kept (with reasons) and removed checkpoints, each oldest first.
 *
 * @example Keep the best 2 and the latest 1
 * ```ts ignore
 * const { remove } = planRetention(view.checkpoints, { keepBest: 2, keepLast: 1 }, pm);
 * ```
 */
export function planRetention(
  checkpoints: readonly CheckpointRecord[],
  policy: RetentionPolicy,
  fallback: PrimaryMetric | null,
): RetentionPlan {
  const ordered = [...checkpoints].sort(byAge);
  const reasons = new Map<CheckpointRecord, KeepReason[]>();
  const mark = (ck: CheckpointRecord, why: KeepReason) => {
    const list = reasons.get(ck);
    if (list) list.push(why);
    else reasons.set(ck, [why]);
  };
  if (keepsAll(policy)) {
    for (const ck of ordered) mark(ck, "latest");
  } else {
    const best = ordered
      .map((ck, i) => ({ ck, i, s: score(ck, fallback) }))
      .filter((x): x is { ck: CheckpointRecord; i: number; s: number } => x.s !== null)
      .sort((a, b) => a.s - b.s || a.i - b.i);
    for (const { ck } of best.slice(0, count(policy.keepBest))) mark(ck, "best");
    const last = count(policy.keepLast);
    for (const ck of last > 0 ? ordered.slice(-last) : []) mark(ck, "latest");
  }
  return {
    keep: ordered.filter((ck) => reasons.has(ck)).map((ck) => ({
      checkpoint: ck,
      reasons: reasons.get(ck)!,
    })),
    remove: ordered.filter((ck) => !reasons.has(ck)),
  };
}

function count(n: number | undefined): number {
  if (n === undefined) return 0;
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`Invalid retention count ${n}`);
  return n;
}
