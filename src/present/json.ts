/**
 * The `--json` shapes (docs/json.md), shared by the CLI and the viewer's API: one place decides
 * what a listed experiment or checkpoint looks like to programs.
 *
 * @module
 */
import type { CheckpointRecord, MetricValue } from "../format/records.ts";
import type { ExperimentView } from "../catalog/views.ts";

/** A checkpoint in `rep ls --json`: `{id, step, created, metrics, primary_metric}`. */
export function checkpointSummary(ck: CheckpointRecord | null): {
  id: string;
  step: number | null;
  created: string;
  metrics: Record<string, MetricValue>;
  primary_metric: CheckpointRecord["primary_metric"];
} | null {
  if (!ck) return null;
  return {
    id: ck.id,
    step: ck.step,
    created: ck.created,
    metrics: ck.metrics,
    primary_metric: ck.primary_metric,
  };
}

/** An experiment in `rep ls --json`. */
export function experimentSummary(v: ExperimentView): Record<string, unknown> {
  const r = v.record;
  return {
    id: v.id,
    created: r.created,
    status: v.status,
    exit_code: v.statusRecord?.exit_code ?? null,
    finished: v.statusRecord?.finished ?? null,
    host: r.host,
    user: r.user,
    command: r.command,
    cwd: r.cwd,
    params: r.params,
    tags: r.tags,
    note: r.note,
    git: r.git,
    primary_metric: r.primary_metric,
    num_checkpoints: v.numCheckpoints,
    best_checkpoint: checkpointSummary(v.best),
    latest_checkpoint: checkpointSummary(v.latest),
  };
}
