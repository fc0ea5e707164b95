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
 *
 * The loops are unrolled by four (a cut is still tested after every byte, so boundaries are those of
 * the plain loop): this about doubles the speed under V8.
 */
export function findCut(buf: Uint8Array, start: number, end: number, final: boolean): number {
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

/**
 * Incremental chunker: feed it blocks of a file with {@link Chunker.push} and it returns the chunks
 * that are complete; {@link Chunker.finish} returns the rest. Returned arrays are never reused.
 *
 * The undecided tail of a block (always shorter than {@link MAX_CHUNK}) is copied into the chunker,
 * so only that tail is ever copied, never the whole block, and the caller may reuse a block's
 * buffer once it is done with the chunks returned for it.
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
    let start = 0;
    if (this.#restLen > 0) {
      // The chunk that began in earlier data: it ends within MAX_CHUNK of its start, so copying
      // that much of `data` after the tail is enough to find its cut.
      const rl = this.#restLen;
      const take = Math.min(data.length, MAX_CHUNK - rl);
      const joined = new Uint8Array(rl + take);
      joined.set(this.#rest.subarray(0, rl));
      joined.set(data.subarray(0, take), rl);
      const cut = findCut(joined, 0, joined.length, false);
      if (cut < 0) {
        // Not decided yet (then `take` is all of `data`): keep it all as the tail.
        this.#keep(joined);
        return out;
      }
      // No cut can fall inside the old tail (it was scanned without one), so cut > rl.
      out.push(joined.subarray(0, cut));
      start = cut - rl;
    }
    for (;;) {
      const cut = findCut(data, start, data.length, false);
      if (cut < 0) break;
      out.push(data.subarray(start, cut));
      start = cut;
    }
    this.#keep(data.subarray(start));
    return out;
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
    const buf = this.#rest.slice(0, this.#restLen);
    this.#rest = new Uint8Array(0);
    this.#restLen = 0;
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
