import assert from "node:assert/strict";
import { Attributor, END, type Timeline } from "./attribution.ts";

/** A timeline from version events: [seq, path, startTime, completeTime]. */
function timeline(versions: [number, string, number, number][]): Timeline {
  return {
    stateAt(seq) {
      const m = new Map<string, number>();
      for (const [s, p] of versions) if (s < seq) m.set(p, s);
      return m;
    },
    savesBetween(from, to) {
      const vs = versions.filter(([s]) => s > from && s < to);
      if (!vs.length) return null;
      return {
        firstStart: Math.min(...vs.map((v) => v[2])),
        lastComplete: Math.max(...vs.map((v) => v[3])),
      };
    },
  };
}

Deno.test("Attributor: save-then-log cuts at each line", () => {
  // V1 (seq 1) L1 (2) V2 (3) L2 (4)
  const t = timeline([[1, "m", 0, 100], [3, "m", 600, 700]]);
  const a = new Attributor<number>();
  a.push({ seq: 2, time: 101, data: 1 });
  assert.deepEqual(a.take(t), [], "the first line waits to see the order");
  a.push({ seq: 4, time: 701, data: 2 });
  assert.deepEqual(a.take(t).map((r) => [r.line.data, r.cut]), [[1, 2], [2, 4]]);
  assert.equal(a.order, "save-then-log");
});

Deno.test("Attributor: log-then-save cuts at the next line, and at the end for the last", () => {
  // L1 (1) V1 (2) L2 (3) V2 (4) end
  const t = timeline([[2, "m", 10, 100], [4, "m", 710, 800]]);
  const a = new Attributor<number>();
  a.push({ seq: 1, time: 0, data: 1 });
  a.push({ seq: 3, time: 600, data: 2 });
  assert.deepEqual(a.take(t).map((r) => [r.line.data, r.cut]), [[1, 3]]);
  assert.equal(a.order, "log-then-save");
  a.end();
  assert.deepEqual(a.take(t).map((r) => [r.line.data, r.cut]), [[2, END]]);
});

Deno.test("Attributor: new files on both sides of a line go with the closer saves", () => {
  // A script that writes a new file per step, then logs: w1 (1) L1 (2) w2 (3) L2 (4)
  const t = timeline([[1, "w1", 0, 5], [3, "w2", 60, 65]]);
  const a = new Attributor<number>();
  a.push({ seq: 2, time: 6, data: 1 });
  a.push({ seq: 4, time: 66, data: 2 });
  assert.deepEqual(a.take(t).map((r) => r.cut), [2, 4]);
  assert.equal(a.order, "save-then-log");
});

Deno.test("Attributor: new files on both sides, seen late by a busy rep, still save-then-log", () => {
  // w1 (1) L1 (2) w2 (3) L2 (4): rep saw w1 at 5, then nothing for 80 ms, then L1 and w2 at once.
  const t = timeline([[1, "w1", 0, 5], [3, "w2", 85, 86]]);
  const a = new Attributor<number>();
  a.push({ seq: 2, time: 85, data: 1 });
  a.push({ seq: 4, time: 140, data: 2 });
  assert.deepEqual(a.take(t).map((r) => r.cut), [2, 4]);
  assert.equal(a.order, "save-then-log");
});

Deno.test("Attributor: a config saved at startup, then log-then-save, is told by timing", () => {
  // config (1) … first epoch … L1 (2) m (3) … L2 (4) m (5)
  const t = timeline([[1, "config", 0, 2], [3, "m", 2005, 2100], [5, "m", 4005, 4100]]);
  const a = new Attributor<number>();
  a.push({ seq: 2, time: 2000, data: 1 });
  a.push({ seq: 4, time: 4000, data: 2 });
  assert.deepEqual(a.take(t).map((r) => r.cut), [4]);
  assert.equal(a.order, "log-then-save");
});

Deno.test("Attributor: an evaluation line before training, then save-then-log, is told by timing", () => {
  // L0 (1) … long compute … V1 (2) L1 (3)
  const t = timeline([[2, "m", 900, 1000], [4, "m", 1900, 2000]]);
  const a = new Attributor<number>();
  a.push({ seq: 1, time: 0, data: 0 });
  a.push({ seq: 3, time: 1001, data: 1 });
  a.push({ seq: 5, time: 2001, data: 2 });
  assert.deepEqual(a.take(t).map((r) => r.cut), [1, 3, 5]);
  assert.equal(a.order, "save-then-log");
});

Deno.test("Attributor: lines with no files between them are released as they come; --order wins", () => {
  const t = timeline([]);
  const a = new Attributor<number>();
  a.push({ seq: 1, time: 0, data: 1 });
  a.push({ seq: 2, time: 1, data: 2 });
  assert.deepEqual(a.take(t).map((r) => r.cut), [1]);
  assert.equal(a.order, null);
  const b = new Attributor<number>("log-then-save");
  b.push({ seq: 1, time: 0, data: 1 });
  assert.deepEqual(b.take(timeline([[2, "m", 0, 1]])), []);
  b.end();
  assert.deepEqual(b.take(timeline([[2, "m", 0, 1]])).map((r) => r.cut), [END]);
});
