/**
 * How long an experiment ran, for `rep show`, `rep ls` and the viewer.
 *
 * @module
 */
import type { ExperimentView } from "../catalog/views.ts";

/**
 * How long an experiment ran (or has been running), in ms; null when unknown. An experiment that
 * crashed ran at least until its last sign of life: its last heartbeat or its latest checkpoint,
 * whichever is later.
 */
export function durationOf(view: ExperimentView, now: number = Date.now()): number | null {
  const start = Date.parse(view.record.created);
  if (view.statusRecord) return Date.parse(view.statusRecord.finished) - start;
  if (view.status === "running") return now - start;
  const signs = [view.heartbeat?.updated, view.latest?.created]
    .filter((t): t is string => t !== undefined)
    .map((t) => Date.parse(t));
  return signs.length ? Math.max(...signs) - start : null;
}

/** `1h 2m`, `3m 4s`, `5.2s`. */
export function formatDuration(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.floor(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.floor(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}
