/**
 * Content-defined chunking (FastCDC with normalized chunking). Chunk boundaries are found by a gear
 * rolling hash over the bytes, so an edit in the middle of a file changes only the chunks around it
 * and every other chunk keeps its boundaries and its hash. The parameters below are part of the
 * repository format: changing them changes every chunk id.
 *
 * The boundaries are found by a small WebAssembly kernel (`gear/gear.c`, built into
 * `gear_wasm.ts`), about 1.6× the speed of the same loop in TypeScript. The module also has a SIMD
 * variant (four lanes rule out 2 KiB blocks, then the scalar loop finds the exact cut: the same
 * cuts by construction, tested against the reference); `CutKernel` uses it only when
 * {@link SIMD_BY_DEFAULT} says so (measured: see bench/RESULTS.md, "chunk + hash throughput"). It works on the bytes of
 * its own memory: a {@link CutKernel} owns one (shared, so a hashing worker can read it too), and
 * {@link Chunker} copies what it is given into a scratch kernel.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { GEAR_WASM_BASE64 } from "./gear_wasm.ts";

/** Smallest chunk, except the last chunk of a file. */
export const MIN_CHUNK = 16 * 1024;
/** The size chunks tend towards. */
export const AVG_CHUNK = 64 * 1024;
/** Largest chunk: a cut is forced here. */
export const MAX_CHUNK = 256 * 1024;
/**
 * Before {@link AVG_CHUNK} a cut needs `(h & MASK_S) === 0` (18 zero bits: less likely), after it
 * `(h & MASK_L) === 0` (14 bits: more likely); this keeps chunk sizes close to the average. High
 * bits, since with a left shift they mix the most bytes.
 */
export const MASK_S = 0xffffc000 | 0;
/** See {@link MASK_S}. */
export const MASK_L = 0xfffc0000 | 0;

/** The gear table: 256 fixed pseudo-random 32-bit values (xorshift32 from a fixed seed). */
export const GEAR: Int32Array = (() => {
  const t = new Int32Array(256);
  let x = 0x9e3779b9 | 0;
  for (let i = 0; i < 256; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    t[i] = x;
  }
  return t;
})();

/** Where the kernel expects the gear table (see gear.c). */
const GEAR_AT = 1024;
/** Where cut positions are written, and how many fit before {@link KERNEL_DATA}. */
const CUTS_AT = 4096;
/** First byte of a {@link CutKernel}'s memory free for the caller's data. */
export const KERNEL_DATA = 64 * 1024;
const CUTS_CAP = (KERNEL_DATA - CUTS_AT) / 4;

let compiled: WebAssembly.Module | null = null;

type CutsFn = (
  mem: number,
  start: number,
  end: number,
  final: number,
  out: number,
  cap: number,
) => number;

/**
 * Whether a {@link CutKernel} uses the SIMD variant of the kernel unless told otherwise. Measured
 * on the 2-core bench machine, it found cuts at the scalar kernel's speed (CPU time per byte within
 * a few percent either way: the four lanes' table loads cost as many instructions per byte as the
 * scalar loop, which V8 already runs at about a cycle per byte), so the scalar kernel stays.
 */
export const SIMD_BY_DEFAULT = false;

/**
 * A shared WebAssembly memory with the chunk-boundary kernel bound to it. Bytes from
 * {@link KERNEL_DATA} on are the caller's; {@link CutKernel.cuts} finds chunk boundaries in them.
 */
export class CutKernel {
  /** The memory (backed by a SharedArrayBuffer of fixed size). */
  readonly memory: WebAssembly.Memory;
  /** All of the memory's bytes. */
  readonly bytes: Uint8Array;
  readonly #cuts: CutsFn;
  readonly #out: Int32Array;

  /**
   * A memory with room for `dataBytes` bytes from {@link KERNEL_DATA}. `simd`: use the SIMD
   * variant (the same cuts; default {@link SIMD_BY_DEFAULT}).
   */
  constructor(dataBytes: number, options: { simd?: boolean } = {}) {
    const pages = Math.ceil((KERNEL_DATA + dataBytes) / 65536);
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    compiled ??= new WebAssembly.Module(Buffer.from(GEAR_WASM_BASE64, "base64"));
    const instance = new WebAssembly.Instance(compiled, { env: { memory: this.memory } });
    const simd = options.simd ?? SIMD_BY_DEFAULT;
    this.#cuts = (simd ? instance.exports.cuts_simd : instance.exports.cuts) as CutsFn;
    const buf = this.memory.buffer as SharedArrayBuffer;
    this.bytes = new Uint8Array(buf);
    new Int32Array(buf, GEAR_AT, 256).set(GEAR);
    this.#out = new Int32Array(buf, CUTS_AT, CUTS_CAP);
  }

  /**
   * Find the chunk boundaries in `bytes[start, end)`, for chunks starting at `start`: each
   * boundary (the end of a chunk, an offset into {@link CutKernel.bytes}) is appended to `out`.
   * Returns the start of the undecided rest (`end` when `final`: then every byte is in a chunk).
   */
  cuts(start: number, end: number, final: boolean, out: number[]): number {
    if (start < KERNEL_DATA || end > this.bytes.length || start > end) {
      throw new RangeError(`CutKernel.cuts: bad range [${start}, ${end})`);
    }
    const res = this.#out;
    for (;;) {
      const k = this.#cuts(0, start, end, final ? 1 : 0, CUTS_AT, CUTS_CAP);
      for (let i = 0; i < k; i++) out.push(res[i]!);
      if (k > 0) start = res[k - 1]!;
      if (k < CUTS_CAP) return start;
    }
  }
}

/** Bytes {@link Chunker} copies into its kernel at a time (besides the undecided tail). */
const SCRATCH_BLOCK = 4 * 1024 * 1024;
let scratch: CutKernel | null = null;

/**
 * Incremental chunker: feed it blocks of a file with {@link Chunker.push} and it returns the chunks
 * that are complete; {@link Chunker.finish} returns the rest. Returned arrays are never reused.
 *
 * Each block is copied into a scratch kernel memory (shared by all chunkers of the thread: the
 * kernel runs synchronously) after the undecided tail of the block before. The tail (always
 * shorter than {@link MAX_CHUNK}) is kept by the chunker, so the caller may reuse a block's buffer
 * once it is done with the chunks returned for it.
 */
export class Chunker {
  /** The undecided tail: `#rest[0..#restLen)`, owned by the chunker. */
  #rest: Uint8Array = new Uint8Array(0);
  #restLen = 0;

  /**
   * Add bytes; returns the chunks completed by them. Returned chunks may be views of `data` (so they
   * are valid as long as `data` is unchanged); the chunker keeps no reference to `data`.
   */
  push(data: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let o = 0; o < data.length;) {
      const take = Math.min(data.length - o, SCRATCH_BLOCK);
      this.#scan(data, o, take, false, out);
      o += take;
    }
    return out;
  }

  /**
   * Chunk the tail followed by `data[o, o + take)`; the new undecided tail is kept. Chunks wholly
   * inside `data` are views of it, the one that began in the tail is a copy.
   */
  #scan(data: Uint8Array, o: number, take: number, final: boolean, out: Uint8Array[]): void {
    const k = scratch ??= new CutKernel(MAX_CHUNK + SCRATCH_BLOCK);
    const mem = k.bytes;
    const rl = this.#restLen;
    const base = KERNEL_DATA;
    mem.set(this.#rest.subarray(0, rl), base);
    mem.set(data.subarray(o, o + take), base + rl);
    const end = base + rl + take;
    const cuts: number[] = [];
    const rest = k.cuts(base, end, final, cuts);
    // Offsets from `dataAt` on are data[o..]: a chunk starting there is a view of `data`.
    const dataAt = base + rl;
    let prev = base;
    for (const c of cuts) {
      out.push(
        prev >= dataAt ? data.subarray(o + prev - dataAt, o + c - dataAt) : mem.slice(prev, c),
      );
      prev = c;
    }
    this.#keep(mem.subarray(rest, end));
  }

  #keep(tail: Uint8Array): void {
    if (tail.length > this.#rest.length) {
      this.#rest = new Uint8Array(
        Math.max(tail.length, Math.min(2 * this.#rest.length, MAX_CHUNK)),
      );
    }
    this.#rest.set(tail);
    this.#restLen = tail.length;
  }

  /** The chunks left at the end of the input (none for empty input). */
  finish(): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (this.#restLen > 0) this.#scan(new Uint8Array(0), 0, 0, true, out);
    this.#rest = new Uint8Array(0);
    this.#restLen = 0;
    return out;
  }
}
