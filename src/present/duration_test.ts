import assert from "node:assert/strict";
import type { ExperimentView } from "../catalog/views.ts";
import type { CheckpointRecord, ExperimentRecord } from "../format/records.ts";
import { durationOf, formatDuration } from "./duration.ts";

const T0 = Date.parse("2024-05-01T12:00:00.000Z");
const at = (s: number) => new Date(T0 + s * 1000).toISOString();

/** The fields durationOf() reads (a view has more). */
function view(over: Partial<ExperimentView>): ExperimentView {
  return ({
    id: "a".repeat(32),
    record: { created: at(0) } as ExperimentRecord,
    checkpoints: [],
    numCheckpoints: 0,
    status: "crashed",
    statusRecord: null,
    heartbeat: null,
    best: null,
    latest: null,
    corrupt: {},
    ...over,
  }) as unknown as ExperimentView;
}

Deno.test("durationOf() of a crashed experiment runs to its last heartbeat or checkpoint", () => {
  const hb = { pid: 1, host: "h", updated: at(40), interval: 10 };
  assert.equal(durationOf(view({ heartbeat: hb })), 40_000);
  // A checkpoint after the last heartbeat (a crash between two heartbeats) counts.
  const ck = { created: at(47) } as CheckpointRecord;
  assert.equal(durationOf(view({ heartbeat: hb, latest: ck })), 47_000);
  assert.equal(durationOf(view({ latest: ck })), 47_000);
  assert.equal(durationOf(view({})), null);
});

Deno.test("durationOf() of a finished or running experiment", () => {
  const finished = {
    format: 2,
    type: "status" as const,
    status: "failed" as const,
    exit_code: 1,
    signal: null,
    finished: at(90),
  };
  assert.equal(durationOf(view({ status: "failed", statusRecord: finished })), 90_000);
  assert.equal(durationOf(view({ status: "running" }), T0 + 5_000), 5_000);
});

Deno.test("formatDuration() picks the two largest units", () => {
  assert.equal(formatDuration(5_240), "5.2s");
  assert.equal(formatDuration(184_000), "3m 4s");
  assert.equal(formatDuration(3_720_000), "1h 2m");
  assert.equal(formatDuration(3 * 86_400_000 + 3_600_000), "3d 1h");
});
