import assert from "node:assert/strict";
import type { CheckpointRecord } from "../format/records.ts";
import { resumePoint } from "./begin.ts";

function ck(id: string, step: number | null, torn: string[] = []): CheckpointRecord {
  return {
    format: 2,
    type: "checkpoint",
    id,
    experiment: "e".repeat(32),
    attempt: 1,
    created: "2026-01-01T00:00:00.000Z",
    step,
    metrics: {},
    primary_metric: null,
    files: null,
    torn,
    warnings: [],
  } as CheckpointRecord;
}

Deno.test("resumePoint: the latest checkpoint with a step and no torn file, else the latest", () => {
  assert.equal(resumePoint([]), null);
  const a = ck("a", 1);
  const b = ck("b", 2);
  const end = ck("c", null);
  const torn = ck("d", 3, ["output/model.pt"]);
  assert.equal(resumePoint([a, b, end, torn]), b);
  assert.equal(resumePoint([a, b]), b);
  assert.equal(resumePoint([end]), end);
  assert.equal(resumePoint([torn, end]), end);
});
