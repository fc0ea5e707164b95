import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Hasher, Queue } from "./hasher.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

Deno.test("Hasher hashes ranges in a worker, hands the memory back, answers in order", async () => {
  const h = new Hasher();
  try {
    await h.whenReady();
    assert.equal(h.ready, true);
    const inputs = Array.from({ length: 6 }, (_, k) => {
      const b = new Uint8Array(100_000 + k);
      for (let o = 0; o < b.length; o += 65536) crypto.getRandomValues(b.subarray(o, o + 65536));
      return b;
    });
    const expected = inputs.map((b) => [sha(b.subarray(0, 10)), sha(b.subarray(10, 5000)), sha(b)]);
    const copies = inputs.map((b) => b.slice());
    // Several requests in flight at once: answers must come back matched and in order.
    const answers = await Promise.all(
      inputs.map((b) => h.hash(b, [0, 10, 10, 5000, 0, b.length])),
    );
    for (let k = 0; k < inputs.length; k++) {
      assert.equal(inputs[k]!.length, 0, "the caller's view is detached while the worker has it");
      assert.deepEqual(answers[k]!.hashes, expected[k]);
      assert.deepEqual(answers[k]!.buf, copies[k], "the same bytes come back");
    }
    assert.equal(h.pending, 0);
    // An empty range list is fine.
    const none = await h.hash(new Uint8Array(8), []);
    assert.deepEqual(none.hashes, []);
  } finally {
    h.close();
  }
});

Deno.test("Hasher hands over to a fresh worker after recycleBytes, answering every request", async () => {
  const h = new Hasher({ recycleBytes: 10_000 });
  try {
    const bufs = Array.from({ length: 12 }, (_, k) => new Uint8Array(4096).fill(k));
    const expected = bufs.map((b) => sha(b));
    // In flight across three or four workers; the retired ones stop once they have answered.
    const answers = await Promise.all(bufs.map((b) => h.hash(b, [0, b.length])));
    assert.deepEqual(answers.map((a) => a.hashes[0]), expected);
    assert.equal(h.pending, 0);
    await h.whenReady();
    assert.equal((await h.hash(new Uint8Array(1), [0, 1])).hashes[0], sha(new Uint8Array(1)));
  } finally {
    h.close();
  }
});

Deno.test("Hasher refuses partial views and rejects after close", async () => {
  const h = new Hasher();
  const big = new Uint8Array(64);
  await assert.rejects(h.hash(big.subarray(8), [0, 8]), /whole buffer/);
  const pending = h.hash(new Uint8Array(1 << 20), [0, 1 << 20]);
  h.close();
  await assert.rejects(pending, /closed/);
  await assert.rejects(h.hash(new Uint8Array(4), [0, 4]), /closed/);
  assert.equal(h.ready, false);
  h.close(); // twice is fine
});

Deno.test("Queue hands items to waiting takers and gives null once closed and empty", async () => {
  const q = new Queue<number>();
  const waiting = q.take();
  q.put(1);
  q.put(2);
  assert.equal(await waiting, 1);
  assert.equal(await q.take(), 2);
  const blocked = q.take();
  q.close();
  assert.equal(await blocked, null);
  q.put(3);
  assert.deepEqual(q.drain(), [3]);
  assert.equal(await q.take(), null);
});
