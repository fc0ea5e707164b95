/**
 * Pieces shared by the read-side commands (`ls`, `show`, `diff`): labels, metric ordering, status
 * colours, durations, terminal width, and the JSON shapes documented in docs/json.md.
 *
 * @module
 */
import type { CheckpointRecord } from "../format/records.ts";
import { shortId } from "../format/ids.ts";
import { type Io, style } from "./common.ts";

/** `abc1234 (step 9)`, or `abc1234` when the checkpoint has no step. */
export function checkpointLabel(ck: Pick<CheckpointRecord, "id" | "step"> | null): string {
  if (!ck) return "";
  return ck.step === null ? shortId(ck.id) : `${shortId(ck.id)} (step ${ck.step})`;
}

export { metricNames } from "../present/metric_names.ts";

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

export { durationOf, formatDuration } from "../present/duration.ts";

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
