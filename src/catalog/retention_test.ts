import assert from "node:assert/strict";
import { planRetention } from "./retention.ts";
import { bestCheckpoint } from "./order.ts";
import type { CheckpointRecord, MetricValue, PrimaryMetric } from "../format/records.ts";

const LOSS: PrimaryMetric = { name: "loss", goal: "minimize" };

function ck(step: number, loss: MetricValue | undefined, pm: PrimaryMetric | null = null) {
  const id = step.toString(16).padStart(32, "0");
  return {
    format: 2,
    type: "checkpoint",
    id,
    experiment: "e".repeat(32),
    attempt: 1,
    created: new Date(Date.UTC(2026, 0, 1, 0, 0, step)).toISOString(),
    step,
    metrics: loss === undefined ? {} : { loss },
    primary_metric: pm,
    files: null,
    torn: [],
    warnings: [],
  } satisfies CheckpointRecord;
}

const steps = (cs: { checkpoint?: CheckpointRecord; step?: number | null }[]) =>
  cs.map((c) => (c.checkpoint ?? c as CheckpointRecord).step);

Deno.test("planRetention() keeps the N best and the M latest, oldest first", () => {
  const cks = [ck(1, 0.9), ck(2, 0.5), ck(3, 0.7), ck(4, 0.4), ck(5, 0.8), ck(6, 0.95)];
  const plan = planRetention(cks, { keepBest: 2, keepLast: 1 }, LOSS);
  assert.deepEqual(steps(plan.keep), [2, 4, 6]);
  assert.deepEqual(plan.keep.map((k) => k.reasons), [["best"], ["best"], ["latest"]]);
  assert.deepEqual(steps(plan.remove), [1, 3, 5]);
  // A checkpoint both best and latest is kept once, for both reasons.
  const both = planRetention([ck(1, 0.9), ck(2, 0.1)], { keepBest: 1, keepLast: 1 }, LOSS);
  assert.deepEqual(both.keep.map((k) => [k.checkpoint.step, k.reasons]), [[2, ["best", "latest"]]]);
  assert.deepEqual(steps(both.remove), [1]);
});

Deno.test("planRetention() never ranks NaN, missing or non-numeric metrics", () => {
  const cks = [ck(1, NaN), ck(2, undefined), ck(3, "low"), ck(4, null), ck(5, 0.5), ck(6, 0.9)];
  const plan = planRetention(cks, { keepBest: 3 }, LOSS);
  assert.deepEqual(steps(plan.keep), [5, 6]);
  assert.deepEqual(steps(plan.remove), [1, 2, 3, 4]);
  // Without any primary metric nothing is best: only the latest survive.
  const none = planRetention(cks, { keepBest: 3, keepLast: 2 }, null);
  assert.deepEqual(steps(none.keep), [5, 6]);
});

Deno.test("planRetention() maximizes, breaks ties toward the older, and keeps all with no count", () => {
  const acc: PrimaryMetric = { name: "loss", goal: "maximize" };
  const cks = [ck(1, 0.5), ck(2, 0.9), ck(3, 0.9), ck(4, 0.1)];
  assert.deepEqual(steps(planRetention(cks, { keepBest: 1 }, acc).keep), [2]);
  assert.deepEqual(steps(planRetention(cks, { keepBest: 2, keepLast: 0 }, acc).keep), [2, 3]);
  assert.deepEqual(steps(planRetention(cks, {}, acc).keep), [1, 2, 3, 4]);
  assert.deepEqual(steps(planRetention(cks, { keepLast: 0 }, acc).remove), [1, 2, 3, 4]);
  // The checkpoint's own primary metric wins over the experiment's.
  const own = [ck(1, 0.5, acc), ck(2, 0.9, acc)];
  assert.deepEqual(steps(planRetention(own, { keepBest: 1 }, LOSS).keep), [2]);
  // Input order does not matter.
  assert.deepEqual(steps(planRetention([...cks].reverse(), { keepLast: 2 }, acc).keep), [3, 4]);
  assert.throws(() => planRetention(cks, { keepBest: -1 }, acc), RangeError);
});

Deno.test("planRetention() keeps exactly the checkpoint best() picks, on random histories", () => {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const values: MetricValue[] = [NaN, null, "x", Infinity, -Infinity, 0, 0.5, 0.5, 1];
  for (let trial = 0; trial < 500; trial++) {
    const n = Math.floor(rand() * 12);
    const cks = Array.from({ length: n }, (_, i) => {
      const r = rand();
      return ck(i + 1, r < 0.5 ? values[Math.floor(rand() * values.length)] : rand());
    });
    const keepBest = Math.floor(rand() * 4);
    const keepLast = Math.floor(rand() * 4);
    const plan = planRetention(cks, { keepBest, keepLast }, LOSS);
    assert.equal(plan.keep.length + plan.remove.length, n);
    const kept = plan.keep.map((k) => k.checkpoint);
    const best = bestCheckpoint(cks, LOSS);
    if (keepBest > 0 && best) {
      assert.ok(kept.includes(best), `best step ${best.step} kept`);
      // ...and best() over what is kept is still that one.
      assert.equal(bestCheckpoint(kept, LOSS), best);
    }
    for (const c of cks.slice(-keepLast || cks.length)) {
      if (keepLast > 0) assert.ok(kept.includes(c), `latest step ${c.step} kept`);
    }
    assert.ok(plan.keep.filter((k) => k.reasons.includes("best")).length <= keepBest);
  }
});
