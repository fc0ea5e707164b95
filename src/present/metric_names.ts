/**
 * The order metric columns appear in, everywhere: primary metrics first, then alphabetical.
 *
 * @module
 */
import type { CheckpointRecord } from "../format/records.ts";

/** Metric names of `checkpoints`: primary metrics first, then alphabetical. */
export function metricNames(
  checkpoints: (Pick<CheckpointRecord, "metrics" | "primary_metric"> | null)[],
  primary: string[] = [],
): string[] {
  const all = new Set<string>();
  const prim = new Set<string>(primary);
  for (const c of checkpoints) {
    if (!c) continue;
    for (const k of Object.keys(c.metrics)) all.add(k);
    if (c.primary_metric) prim.add(c.primary_metric.name);
  }
  const first = [...prim].filter((n) => all.has(n));
  return [...first, ...[...all].filter((n) => !prim.has(n)).sort()];
}
