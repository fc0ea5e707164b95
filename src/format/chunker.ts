/**
 * Content-defined chunking (FastCDC with normalized chunking). Chunk boundaries are found by a gear
 * rolling hash over the bytes, so an edit in the middle of a file changes only the chunks around it
 * and every other chunk keeps its boundaries and its hash. The parameters are part of the repository
 * format: changing them changes every chunk id.
 *
 * @module
 */

/** Smallest chunk, except the last chunk of a file. */
export const MIN_CHUNK = 16 * 1024;
/** The size chunks tend towards. */
export const AVG_CHUNK = 64 * 1024;
/** Largest chunk: a cut is forced here. */
export const MAX_CHUNK = 256 * 1024;

// Before AVG_CHUNK a cut needs 18 zero bits (less likely), after it 14 (more likely): this keeps
// chunk sizes close to the average. High bits, since with a left shift they mix the most bytes.
const MASK_S = 0xffffc000 | 0;
const MASK_L = 0xfffc0000 | 0;

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

/**
 * Find the end of the chunk that starts at `start` in `buf[start..end)`. Returns the cut position, or
 * -1 when more data is needed to decide (and `final` is false).
 */
export function findCut(buf: Uint8Array, start: number, end: number, final: boolean): number {
  const n = end - start;
  if (n <= MIN_CHUNK) return final ? end : -1;
  const limit = Math.min(end, start + MAX_CHUNK);
  const normal = Math.min(limit, start + AVG_CHUNK);
  const gear = GEAR;
  let h = 0;
  let i = start + MIN_CHUNK;
  for (; i < normal; i++) {
    h = ((h << 1) + gear[buf[i]!]!) | 0;
    if ((h & MASK_S) === 0) return i + 1;
  }
  for (; i < limit; i++) {
    h = ((h << 1) + gear[buf[i]!]!) | 0;
    if ((h & MASK_L) === 0) return i + 1;
  }
  if (limit === start + MAX_CHUNK) return limit;
  return final ? end : -1;
}

/**
 * Incremental chunker: feed it blocks of a file with {@link Chunker.push} and it returns the chunks
 * that are complete; {@link Chunker.finish} returns the rest. Returned arrays are never reused.
 */
export class Chunker {
  #rest: Uint8Array = new Uint8Array(0);

  /**
   * Add bytes; returns the chunks completed by them. The chunker keeps `data` (and returned chunks
   * may be views of it), so the caller must not modify it afterwards.
   */
  push(data: Uint8Array): Uint8Array[] {
    let buf: Uint8Array;
    if (this.#rest.length === 0) {
      buf = data;
    } else {
      buf = new Uint8Array(this.#rest.length + data.length);
      buf.set(this.#rest);
      buf.set(data, this.#rest.length);
    }
    const out: Uint8Array[] = [];
    let start = 0;
    for (;;) {
      const cut = findCut(buf, start, buf.length, false);
      if (cut < 0) break;
      out.push(buf.subarray(start, cut));
      start = cut;
    }
    this.#rest = buf.subarray(start);
    return out;
  }

  /** The chunks left at the end of the input (none for empty input). */
  finish(): Uint8Array[] {
    const buf = this.#rest;
    this.#rest = new Uint8Array(0);
    const out: Uint8Array[] = [];
    let start = 0;
    while (start < buf.length) {
      const cut = findCut(buf, start, buf.length, true);
      out.push(buf.subarray(start, cut));
      start = cut;
    }
    return out;
  }
}
