import assert from "node:assert/strict";
import { UsageError } from "../errors.ts";
import { keepPolicy } from "./keep.ts";

const PM = { name: "loss", goal: "minimize" as const };

Deno.test("keepPolicy(): each flag overrides its own rep.yaml key; 0 drops one", () => {
  const cfg = { keep_best: 3, keep_last: 1 };
  assert.deepEqual(keepPolicy(undefined, undefined, cfg, PM), { keepBest: 3, keepLast: 1 });
  assert.deepEqual(keepPolicy(undefined, "2", cfg, PM), { keepBest: 3, keepLast: 2 });
  assert.deepEqual(keepPolicy("0", "2", cfg, PM), { keepBest: 0, keepLast: 2 });
  assert.equal(keepPolicy(undefined, undefined, {}, PM), null);
  assert.throws(() => keepPolicy("0", "0", cfg, PM), /would remove every checkpoint/);
  assert.throws(() => keepPolicy(undefined, "x", cfg, PM), UsageError);
  // keep_best from the file still needs a primary metric.
  assert.throws(() => keepPolicy(undefined, "2", cfg, null), /needs a primary metric/);
});
