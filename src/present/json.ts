/**
 * The `--json` shapes (docs/json.md), shared by the CLI and the viewer's API: one place decides
 * what a listed experiment or checkpoint looks like to programs. Fields are only ever added.
 *
 * @module
 */
import type { CheckpointRecord, MetricValue } from "../format/records.ts";
import type { AttemptView, CheckpointBrief, ExperimentView } from "../catalog/views.ts";

/** A checkpoint in `rep ls --json`. */
export interface CheckpointSummaryJson {
  id: string;
  step: number | null;
  created: string;
  metrics: Record<string, MetricValue>;
  primary_metric: CheckpointRecord["primary_metric"];
}

/** A checkpoint in `rep ls --json`: `{id, step, created, metrics, primary_metric}`. */
export function checkpointSummary(
  ck: CheckpointRecord | CheckpointBrief | null,
): CheckpointSummaryJson | null {
  if (!ck) return null;
  return {
    id: ck.id,
    step: ck.step,
    created: ck.created,
    metrics: ck.metrics,
    primary_metric: ck.primary_metric,
  };
}

/** An attempt in `rep show --json`. */
export interface AttemptJson {
  attempt: number;
  created: string;
  host: string;
  user: string;
  status: string;
  exit_code: number | null;
  signal: string | null;
  finished: string | null;
  /** The command of a resume (null for attempt 1: it is the experiment's). */
  command: string[] | null;
  resumed_from: string | null;
  resume_step: number | null;
}

/** One attempt as `rep show --json` prints it. */
export function attemptJson(a: AttemptView): AttemptJson {
  return {
    attempt: a.attempt,
    created: a.created,
    host: a.host,
    user: a.user,
    status: a.status,
    exit_code: a.statusRecord?.exit_code ?? null,
    signal: a.statusRecord?.signal ?? null,
    finished: a.statusRecord?.finished ?? null,
    command: a.record?.command ?? null,
    resumed_from: a.record?.resumed_from ?? null,
    resume_step: a.record?.resume_step ?? null,
  };
}

/** An experiment in `rep ls --json`. */
export function experimentSummary(v: ExperimentView): Record<string, unknown> {
  const r = v.record;
  return {
    id: v.id,
    name: v.name,
    created: v.created,
    status: v.status,
    exit_code: v.statusRecord?.exit_code ?? null,
    finished: v.statusRecord?.finished ?? null,
    attempt: v.attempts.length,
    host: v.host,
    user: v.user,
    command: r.command,
    cwd: r.cwd,
    params: v.params,
    tags: v.tags,
    note: v.note,
    git: r.git,
    primary_metric: v.primaryMetric,
    num_checkpoints: v.numCheckpoints,
    best_checkpoint: checkpointSummary(v.bestBrief),
    latest_checkpoint: checkpointSummary(v.latestBrief),
  };
}
