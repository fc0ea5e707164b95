/**
 * Retention on finished experiments (`rep rm ID --keep-best N --keep-last M`): which of their
 * checkpoints fall outside the policy, and one removal for all of them. Running experiments are
 * left to their own `rep run --keep-*`; an experiment without a primary metric is left alone when
 * the policy keeps "best" ones (nothing would rank, so only the latest would survive).
 *
 * @module
 */
import type { CheckpointRecord } from "../format/records.ts";
import type { ExperimentView, Repository } from "../repository.ts";
import { type KeepReason, planRetention, type RetentionPolicy } from "../catalog/retention.ts";
import { describePolicy } from "./retainer.ts";

/** What retention does to one experiment. */
export interface PrunePlan {
  experiment: ExperimentView;
  keep: { checkpoint: CheckpointRecord; reasons: KeepReason[] }[];
  remove: CheckpointRecord[];
  /** Why the experiment is left alone, when it is. */
  skipped: string | null;
}

/** Plan retention for `experiments` (nothing is written). */
export function planPrune(
  experiments: ExperimentView[],
  policy: RetentionPolicy,
): PrunePlan[] {
  return experiments.map((experiment) => {
    const skip = (why: string): PrunePlan => ({ experiment, keep: [], remove: [], skipped: why });
    if (experiment.status === "running") {
      return skip("it is running (its own rep run --keep-best/--keep-last applies while it runs)");
    }
    const pm = experiment.record.primary_metric;
    if (policy.keepBest && !pm && !experiment.checkpoints.some((c) => c.primary_metric)) {
      return skip("it has no primary metric to rank checkpoints by");
    }
    const plan = planRetention(experiment.checkpoints, policy, pm);
    return { experiment, ...plan, skipped: null };
  });
}

/** Record the removals of `plans` (one change object); returns the number removed. */
export async function applyPrune(
  repo: Repository,
  plans: PrunePlan[],
  policy: RetentionPolicy,
): Promise<number> {
  const refs = plans.flatMap((p) =>
    p.remove.map((c) => ({ experiment: p.experiment.id, checkpoint: c.id }))
  );
  if (refs.length) {
    await repo.catalog.remove([], refs, `retention: ${describePolicy(policy)} (rep rm)`);
  }
  return refs.length;
}
