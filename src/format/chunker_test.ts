import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  AVG_CHUNK,
  Chunker,
  CutKernel,
  GEAR,
  KERNEL_DATA,
  MASK_L,
  MASK_S,
  MAX_CHUNK,
  MIN_CHUNK,
} from "./chunker.ts";

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
    if ((h & MASK_S) === 0) return i + 1;
  }
  for (; i < limit; i++) {
    h = ((h << 1) + GEAR[buf[i]!]!) | 0;
    if ((h & MASK_L) === 0) return i + 1;
  }
  if (limit === start + MAX_CHUNK) return limit;
  return final ? end : -1;
}

/**
 * The TypeScript cut finder rep used until the WebAssembly kernel (unrolled by four), kept as a
 * second oracle: the kernel must give exactly its boundaries.
 */
function findCutTs(buf: Uint8Array, start: number, end: number, final: boolean): number {
  const n = end - start;
  if (n <= MIN_CHUNK) return final ? end : -1;
  const limit = end < start + MAX_CHUNK ? end : start + MAX_CHUNK;
  const normal = limit < start + AVG_CHUNK ? limit : start + AVG_CHUNK;
  const g = GEAR as unknown as number[];
  const b = buf as unknown as number[];
  let h = 0;
  let i = start + MIN_CHUNK;
  const normal4 = normal - 3;
  while (i < normal4) {
    h = ((h << 1) + g[b[i]!]!) | 0;
    if ((h & MASK_S) === 0) return i + 1;
    h = ((h << 1) + g[b[i + 1]!]!) | 0;
    if ((h & MASK_S) === 0) return i + 2;
    h = ((h << 1) + g[b[i + 2]!]!) | 0;
    if ((h & MASK_S) === 0) return i + 3;
    h = ((h << 1) + g[b[i + 3]!]!) | 0;
    if ((h & MASK_S) === 0) return i + 4;
    i += 4;
  }
  while (i < normal) {
    h = ((h << 1) + g[b[i++]!]!) | 0;
    if ((h & MASK_S) === 0) return i;
  }
  const limit4 = limit - 3;
  while (i < limit4) {
    h = ((h << 1) + g[b[i]!]!) | 0;
    if ((h & MASK_L) === 0) return i + 1;
    h = ((h << 1) + g[b[i + 1]!]!) | 0;
    if ((h & MASK_L) === 0) return i + 2;
    h = ((h << 1) + g[b[i + 2]!]!) | 0;
    if ((h & MASK_L) === 0) return i + 3;
    h = ((h << 1) + g[b[i + 3]!]!) | 0;
    if ((h & MASK_L) === 0) return i + 4;
    i += 4;
  }
  while (i < limit) {
    h = ((h << 1) + g[b[i++]!]!) | 0;
    if ((h & MASK_L) === 0) return i;
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

/** Varied inputs: random, constant, periodic, text-like, sparse, and cuts forced at MAX_CHUNK. */
function variedInputs(): [string, Uint8Array][] {
  const random = randomBytes(3 << 20, 12345);
  const periodic = new Uint8Array(2 << 20);
  for (let i = 0; i < periodic.length; i++) periodic[i] = (i * 7) % 251;
  const text = new TextEncoder().encode(
    Array.from({ length: 40_000 }, (_, i) => `line ${i}: loss=${(1 / (i + 1)).toFixed(6)}\n`).join(
      "",
    ),
  );
  const sparse = new Uint8Array(1 << 20);
  for (let i = 0; i < sparse.length; i += 4093) sparse[i] = i & 255;
  // Low entropy: bytes from a four-letter alphabet (long hash runs without a cut).
  const low = randomBytes(1 << 20, 99).map((b) => 0x41 + (b & 3));
  // float32 weights: what checkpoints mostly hold.
  const floats = new Uint8Array(new Float32Array(300_000).map((_, i) => Math.sin(i) * 0.02).buffer);
  return [
    ["random", random],
    ["zeros", new Uint8Array(1 << 20)],
    ["0xff", new Uint8Array(700_001).fill(0xff)],
    ["periodic", periodic],
    ["text", text],
    ["sparse", sparse],
    ["low-entropy", low],
    ["float32", floats],
  ];
}

/** Sizes at the edges of the parameters. */
const EDGE_SIZES = [
  0,
  1,
  MIN_CHUNK - 1,
  MIN_CHUNK,
  MIN_CHUNK + 1,
  MIN_CHUNK + 31,
  AVG_CHUNK - 1,
  AVG_CHUNK,
  AVG_CHUNK + 1,
  MAX_CHUNK - 1,
  MAX_CHUNK,
  MAX_CHUNK + 1,
  2 * MAX_CHUNK,
  2 * MAX_CHUNK + MIN_CHUNK,
  1_000_003,
];

/**
 * Set bytes t - 2, t - 1, t of `d` so that the gear hash of a roll from 0 (MIN_CHUNK on), after
 * byte t, has no bit of `mask` set. Throws if no three bytes do it.
 */
function plantCut(d: Uint8Array, t: number, mask: number): void {
  let h = 0;
  for (let i = MIN_CHUNK; i < t - 2; i++) h = ((h << 1) + GEAR[d[i]!]!) | 0;
  const h3 = (t - 2 > MIN_CHUNK ? h << 3 : 0) | 0;
  for (let x = 0; x < 256; x++) {
    const hx = (h3 + (GEAR[x]! << 2)) | 0;
    for (let y = 0; y < 256; y++) {
      const hy = (hx + (GEAR[y]! << 1)) | 0;
      for (let z = 0; z < 256; z++) {
        if (((hy + GEAR[z]!) & mask) === 0) {
          d[t - 2] = x;
          d[t - 1] = y;
          d[t] = z;
          return;
        }
      }
    }
  }
  throw new Error(`no three bytes make a cut at ${t}`);
}

/** The kernel's cuts of `data` (copied into its memory at `offset` from its data area). */
function kernelCuts(k: CutKernel, data: Uint8Array, offset: number, final: boolean) {
  const base = KERNEL_DATA + offset;
  k.bytes.set(data, base);
  const cuts: number[] = [];
  const rest = k.cuts(base, base + data.length, final, cuts);
  return { cuts: cuts.map((c) => c - base), rest: rest - base };
}

for (const simd of [false, true]) {
  const kind = simd ? "SIMD kernel" : "scalar kernel";
  Deno.test(`CutKernel (${kind}) gives the boundaries of the TypeScript chunker on varied data and sizes`, () => {
    const k = new CutKernel(4 << 20, { simd });
    for (const [name, data] of variedInputs()) {
      for (const size of [...EDGE_SIZES, data.length]) {
        if (size > data.length) continue;
        const d = data.subarray(0, size);
        const expected = referenceChunks(d);
        // Every alignment of the bytes in the kernel's memory.
        for (const offset of [0, 1, 3, 4093]) {
          const got = kernelCuts(k, d, offset, true);
          assert.deepEqual(got.cuts, expected, `${name}, ${size} bytes at +${offset}`);
          assert.equal(got.rest, size);
        }
        // And the unrolled TypeScript loop agrees with the plain one.
        const ts: number[] = [];
        for (let s = 0; s < d.length;) ts.push(s = findCutTs(d, s, d.length, true));
        assert.deepEqual(ts, expected, `${name}, ${size} bytes (TypeScript)`);
      }
    }
  });

  Deno.test(`CutKernel (${kind}) leaves the undecided rest as the TypeScript chunker does (not final)`, () => {
    const k = new CutKernel(1 << 20, { simd });
    const data = randomBytes(1 << 20, 777);
    for (const end of [...EDGE_SIZES, MAX_CHUNK + 7, 3 * AVG_CHUNK + 5]) {
      for (const start of [0, 1, 2, 3, 5]) {
        if (start + end > data.length) continue;
        const d = data.subarray(start, start + end);
        const expected: number[] = [];
        let s = 0;
        for (;;) {
          const c = findCutTs(d, s, d.length, false);
          assert.equal(c, referenceCut(d, s, d.length, false));
          if (c < 0) break;
          expected.push(s = c);
        }
        const got = kernelCuts(k, d, start, false);
        assert.deepEqual(got.cuts, expected, `end ${end} start ${start}`);
        assert.equal(got.rest, expected.length ? expected[expected.length - 1]! : 0);
      }
    }
    // More cuts than the kernel's cut array holds in one call: 400 MiB-worth is not needed, zeros
    // are cut at every MAX_CHUNK, and a kernel of 64 MiB gives 256 of them; the loop must go on.
    const big = new CutKernel(64 << 20, { simd });
    big.bytes.fill(0, KERNEL_DATA);
    const cuts: number[] = [];
    assert.equal(
      big.cuts(KERNEL_DATA, KERNEL_DATA + (64 << 20), true, cuts),
      KERNEL_DATA + (64 << 20),
    );
    assert.equal(cuts.length, 256);
    assert.throws(() => big.cuts(0, 10, true, []), RangeError);
  });

  Deno.test(`CutKernel (${kind}) finds cuts planted at the edges of the SIMD blocks and regions`, () => {
    // Random bytes where, for each target t, the three bytes ending at t are chosen so that the
    // hash after byte t passes the cut test: a cut at t + 1 unless one came earlier. Targets: the
    // first bytes after MIN_CHUNK (where the hash still depends on the roll's start), the first
    // SIMD block (MIN_CHUNK + 32), its lane and block edges, around AVG_CHUNK (the threshold
    // changes), and just before MAX_CHUNK.
    const s0 = MIN_CHUNK;
    const targets = [2, 3, 30, 31, 32, 33, 63, 64, 543, 544, 545, 2079, 2080, 2081, 4127, 4128]
      .map((d) => s0 + d)
      .concat([AVG_CHUNK - 1, AVG_CHUNK, AVG_CHUNK + 1, AVG_CHUNK + 2048, MAX_CHUNK - 2]);
    const k = new CutKernel(1 << 20, { simd });
    for (const t of targets) {
      const d = randomBytes(MAX_CHUNK + 1000, t);
      plantCut(d, t, t < AVG_CHUNK ? MASK_S : MASK_L);
      const expected = referenceChunks(d);
      assert.equal(referenceCut(d, 0, d.length, true) <= t + 1, true, `planted at ${t}`);
      assert.deepEqual(kernelCuts(k, d, 0, true).cuts, expected, `planted at ${t}`);
    }
  });
}

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
