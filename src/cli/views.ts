/**
 * Pieces shared by the read-side commands (`ls`, `show`, `diff`): labels, metric ordering, status
 * colours, durations, terminal width, and the JSON shapes documented in docs/json.md.
 *
 * @module
 */
import type { CheckpointRecord } from "../format/records.ts";
import type { ExperimentView } from "../repository.ts";
import { shortId } from "../format/ids.ts";
import { type Io, style } from "./common.ts";

/** `abc1234 (step 9)`, or `abc1234` when the checkpoint has no step. */
export function checkpointLabel(ck: CheckpointRecord | null): string {
  if (!ck) return "";
  return ck.step === null ? shortId(ck.id) : `${shortId(ck.id)} (step ${ck.step})`;
}

/** Metric names of `checkpoints`: primary metrics first, then alphabetical. */
export function metricNames(
  checkpoints: (CheckpointRecord | null)[],
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

/** A status, coloured when colour is on. */
export function statusText(io: Io, status: string): string {
  switch (status) {
    case "running":
      return style(io, "cyan", status);
    case "succeeded":
      return style(io, "green", status);
    case "failed":
    case "crashed":
      return style(io, "red", status);
    case "stopped":
      return style(io, "yellow", status);
    default:
      return status;
  }
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

/** How long an experiment ran (or has been running); null when unknown. */
export function durationOf(view: ExperimentView, now = Date.now()): number | null {
  const start = Date.parse(view.record.created);
  if (view.statusRecord) return Date.parse(view.statusRecord.finished) - start;
  if (view.status === "running") return now - start;
  const last = view.heartbeat?.updated ?? view.latest?.created;
  return last ? Date.parse(last) - start : null;
}

/** The terminal width when stdout is a terminal, else null (no truncation). */
export function terminalWidth(io: Io): number | null {
  if (!io.isTty) return null;
  try {
    return Deno.consoleSize().columns;
  } catch {
    const c = Number(Deno.env.get("COLUMNS"));
    return c > 0 ? c : null;
  }
}

/** Render JSON for stdout. */
export function jsonText(v: unknown): string {
  return JSON.stringify(v, null, 2) + "\n";
}
