/**
 * `--keep-best N` / `--keep-last M`, shared by `rep run` and `rep rm`: the retention policy they
 * ask for, or a usage error saying what is wrong with it.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { PrimaryMetric } from "../format/records.ts";
import { keepsAll, type RetentionPolicy } from "../catalog/retention.ts";

/** A count of checkpoints given with --keep-best / --keep-last. */
function count(text: string, flag: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) {
    throw new UsageError(
      `Invalid ${flag} "${text}": expected a number of checkpoints`,
      `Example: ${flag} 3`,
    );
  }
  return n;
}

/**
 * The retention policy from the flags and `cfg` (rep.yaml's `run:` `keep_best` / `keep_last`):
 * each flag overrides its own key, so `--keep-last 2` under `keep_best: 3` keeps the best three
 * and the last two (`--keep-best 0` drops the file's keep_best); null when none is asked for. With
 * `needMetric`, `--keep-best` without a primary metric is refused (nothing would rank, so only the
 * latest would survive).
 */
export function keepPolicy(
  best: string | undefined,
  last: string | undefined,
  cfg: { keep_best?: number; keep_last?: number },
  primaryMetric: PrimaryMetric | null,
  needMetric = true,
): RetentionPolicy | null {
  const b = best === undefined ? cfg.keep_best : count(best, "--keep-best");
  const l = last === undefined ? cfg.keep_last : count(last, "--keep-last");
  const policy: RetentionPolicy = {};
  if (b !== undefined) policy.keepBest = b;
  if (l !== undefined) policy.keepLast = l;
  if (keepsAll(policy)) return null;
  if ((policy.keepBest ?? 0) + (policy.keepLast ?? 0) === 0) {
    throw new UsageError(
      "--keep-best 0 with --keep-last 0 would remove every checkpoint",
      "Keep at least one: e.g. --keep-best 3 --keep-last 1",
    );
  }
  if (needMetric && policy.keepBest && !primaryMetric) {
    throw new UsageError(
      "--keep-best needs a primary metric to rank checkpoints by",
      "Add --primary-metric NAME:minimize (or maximize), or primary_metric: in rep.yaml's run:",
    );
  }
  return policy;
}
