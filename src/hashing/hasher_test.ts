import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Hasher, Queue } from "./hasher.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** A shared memory of `pages` 64 KiB pages, filled with random bytes. */
function sharedMemory(pages: number): { memory: WebAssembly.Memory; bytes: Uint8Array } {
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const bytes = new Uint8Array(memory.buffer);
  const tmp = new Uint8Array(65536);
  for (let o = 0; o < bytes.length; o += 65536) {
    crypto.getRandomValues(tmp);
    bytes.set(tmp, o);
  }
  return { memory, bytes };
}

Deno.test("Hasher hashes ranges of a shared memory in a worker, answering in order", async () => {
  const { memory, bytes } = sharedMemory(32);
  const h = new Hasher(memory);
  try {
    await h.whenReady();
    assert.equal(h.ready, true);
    const requests = Array.from({ length: 6 }, (_, k) => {
      const at = k * 300_000 + k;
      return [at, at + 10, at + 10, at + 5000, at, at + 100_000 + k, at + 7, at + 7];
    });
    const expected = requests.map((r) => {
      const out: string[] = [];
      for (let i = 0; i < r.length; i += 2) out.push(sha(bytes.slice(r[i]!, r[i + 1]!)));
      return out;
    });
    // Several requests in flight at once: answers must come back matched and in order.
    const answers = await Promise.all(requests.map((r) => h.hash(r)));
    assert.deepEqual(answers, expected);
    assert.equal(h.pending, 0);
    // The worker reads the memory as it is now, not a copy taken earlier.
    bytes.fill(7, 0, 4096);
    assert.deepEqual(await h.hash([0, 4096]), [sha(new Uint8Array(4096).fill(7))]);
    assert.deepEqual(await h.hash([]), []);
  } finally {
    h.close();
  }
});

Deno.test("Hasher hands over to a fresh worker after recycleBytes, answering every request", async () => {
  const { memory, bytes } = sharedMemory(2);
  const h = new Hasher(memory, { recycleBytes: 10_000 });
  try {
    const ranges = Array.from({ length: 12 }, (_, k) => [k * 4096, (k + 1) * 4096]);
    const expected = ranges.map(([a, b]) => [sha(bytes.slice(a, b))]);
    // In flight across three or four workers; the retired ones stop once they have answered.
    const answers = await Promise.all(ranges.map((r) => h.hash(r)));
    assert.deepEqual(answers, expected);
    assert.equal(h.pending, 0);
    await h.whenReady();
    assert.deepEqual(await h.hash([5, 6]), [sha(bytes.slice(5, 6))]);
  } finally {
    h.close();
  }
});

Deno.test("Hasher refuses memory that is not shared, bad ranges, and requests after close", async () => {
  assert.throws(() => new Hasher(new WebAssembly.Memory({ initial: 1 })), /shared/);
  const { memory } = sharedMemory(1);
  const h = new Hasher(memory);
  await assert.rejects(h.hash([0, 65537]), RangeError);
  await assert.rejects(h.hash([10, 5]), RangeError);
  const pending = h.hash([0, 65536]);
  h.close();
  await assert.rejects(pending, /closed/);
  await assert.rejects(h.hash([0, 4]), /closed/);
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
