import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { AVG_CHUNK, Chunker, findCut, GEAR, MAX_CHUNK, MIN_CHUNK } from "./chunker.ts";

/** The reference cut finder: the plain one-byte-at-a-time loop the format was defined with. */
function referenceCut(buf: Uint8Array, start: number, end: number, final: boolean): number {
  const n = end - start;
  if (n <= MIN_CHUNK) return final ? end : -1;
  const limit = Math.min(end, start + MAX_CHUNK);
  const normal = Math.min(limit, start + AVG_CHUNK);
  let h = 0;
  let i = start + MIN_CHUNK;
  for (; i < normal; i++) {
    h = ((h << 1) + GEAR[buf[i]!]!) | 0;
    if ((h & (0xffffc000 | 0)) === 0) return i + 1;
  }
  for (; i < limit; i++) {
    h = ((h << 1) + GEAR[buf[i]!]!) | 0;
    if ((h & (0xfffc0000 | 0)) === 0) return i + 1;
  }
  if (limit === start + MAX_CHUNK) return limit;
  return final ? end : -1;
}

/** Reference chunking of a whole buffer. */
function referenceChunks(data: Uint8Array): number[] {
  const cuts: number[] = [];
  let s = 0;
  while (s < data.length) {
    s = referenceCut(data, s, data.length, true);
    cuts.push(s);
  }
  return cuts;
}

/** Deterministic pseudo-random bytes (xorshift32 from a seed). */
function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed | 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x >>> 24;
  }
  return out;
}

/** Chunk `data` through a Chunker fed in blocks of the given sizes (cycled); returns the cuts. */
function chunkerCuts(
  data: Uint8Array,
  blockSizes: number[],
): { cuts: number[]; chunks: Uint8Array[] } {
  const ch = new Chunker();
  const chunks: Uint8Array[] = [];
  let o = 0;
  let k = 0;
  while (o < data.length) {
    const len = Math.min(blockSizes[k++ % blockSizes.length]!, data.length - o);
    // A fresh copy per block, overwritten after the push: the chunker must not keep it.
    const block = data.slice(o, o + len);
    for (const c of ch.push(block)) chunks.push(c.slice());
    block.fill(0xaa);
    o += len;
  }
  for (const c of ch.finish()) chunks.push(c.slice());
  const cuts: number[] = [];
  let pos = 0;
  for (const c of chunks) cuts.push(pos += c.length);
  return { cuts, chunks };
}

Deno.test("findCut gives the reference boundaries", () => {
  const data = randomBytes(4 << 20, 12345);
  assert.deepEqual(
    (() => {
      const cuts: number[] = [];
      let s = 0;
      while (s < data.length) cuts.push(s = findCut(data, s, data.length, true));
      return cuts;
    })(),
    referenceChunks(data),
  );
  // Not final, at every alignment of the end near the scan.
  for (const end of [MIN_CHUNK, MIN_CHUNK + 1, MIN_CHUNK + 3, AVG_CHUNK + 2, MAX_CHUNK - 1]) {
    for (const start of [0, 1, 2, 3]) {
      assert.deepEqual(
        findCut(data, start, start + end, false),
        referenceCut(data, start, start + end, false),
      );
    }
  }
});

Deno.test("Chunker boundaries and bytes are the same whatever the block sizes", () => {
  const data = randomBytes(3 << 20, 987654321);
  const expected = referenceChunks(data);
  for (
    const sizes of [[data.length], [1 << 20], [4096], [MAX_CHUNK], [MAX_CHUNK - 1, 7], [
      100_000,
      1,
      300_000,
      17,
    ], [5_000_000]]
  ) {
    const { cuts, chunks } = chunkerCuts(data, sizes);
    assert.deepEqual(cuts, expected, `block sizes ${sizes}`);
    let pos = 0;
    for (const c of chunks) {
      assert.deepEqual(c, data.subarray(pos, pos + c.length));
      pos += c.length;
    }
  }
});

Deno.test("Chunker: low-entropy data, small files and empty input", () => {
  const zeros = new Uint8Array(1 << 20);
  assert.deepEqual(chunkerCuts(zeros, [65536]).cuts, referenceChunks(zeros));
  const small = randomBytes(1000, 5);
  assert.deepEqual(chunkerCuts(small, [10]).cuts, [1000]);
  assert.deepEqual(new Chunker().finish(), []);
});

Deno.test("Chunker: inserting bytes in the middle leaves most chunks unchanged", () => {
  const data = randomBytes(8 << 20, 42);
  const mid = data.length >> 1;
  const edited = new Uint8Array(data.length + 100);
  edited.set(data.subarray(0, mid));
  edited.set(randomBytes(100, 7), mid);
  edited.set(data.subarray(mid), mid + 100);
  const hashes = (d: Uint8Array) => {
    const out = new Set<string>();
    for (const c of chunkerCuts(d, [1 << 20]).chunks) {
      out.add(createHash("sha256").update(c).digest("hex"));
    }
    return out;
  };
  const a = hashes(data);
  const b = hashes(edited);
  const changed = [...b].filter((h) => !a.has(h)).length;
  assert(a.size > 50, `expected many chunks, got ${a.size}`);
  assert(changed <= 3, `${changed} of ${b.size} chunks changed`);
});
