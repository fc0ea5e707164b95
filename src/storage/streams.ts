/**
 * Downloads shared by the cloud drivers: a ranged download that resumes where a broken or stalled
 * connection left off, either as a stream ({@link resumingStream}) or straight into one buffer
 * ({@link downloadInto}, which reads with a BYOB reader when the body allows it, so the bytes land
 * in the caller's memory with no chunk buffers in between).
 *
 * A body that delivers nothing for {@link STALL_TIMEOUT_MS} while it is being read counts as
 * broken. Breaks are retried with the policy of `retry.ts`, counted from the last byte received:
 * a download that keeps making progress is never given up on.
 *
 * @module
 */
import { retryDelay, sleep, STALL_TIMEOUT_MS, StallError } from "./retry.ts";
import type { ObjectRange } from "./store.ts";

/**
 * Read a whole stream. With `expected` (the length of a ranged read) the bytes go straight into
 * one buffer of that size. A stream that turns out longer falls back to growing; a shorter one
 * returns what came.
 */
export async function readAll(
  stream: ReadableStream<Uint8Array>,
  expected?: number,
): Promise<Uint8Array> {
  if (expected === undefined) return new Uint8Array(await new Response(stream).arrayBuffer());
  let out = new Uint8Array(expected);
  let n = 0;
  for await (const c of stream) {
    if (n + c.byteLength > out.byteLength) {
      const bigger = new Uint8Array(Math.max(out.byteLength * 2, n + c.byteLength));
      bigger.set(out.subarray(0, n));
      out = bigger;
    }
    out.set(c, n);
    n += c.byteLength;
  }
  return n === out.byteLength ? out : out.slice(0, n);
}

/** A stream with no bytes. */
export function emptyStream(): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(ctl) {
      ctl.close();
    },
  });
}

/** An opened download: its body, and the object offset of the first byte the body yields. */
export interface OpenedBody {
  body: ReadableStream<Uint8Array>;
  at: number;
}

/** Opens a download at object offset `pos`; null when `pos` is at or past the end. */
export type Opener = (pos: number) => Promise<OpenedBody | null>;

/** Makes the error to throw once a broken download is given up on. */
export type GiveUp = (error: unknown, attempts: number, elapsedMs: number) => Error;

/** Retries of one download: counted since the last progress, spaced and bounded by `retry.ts`. */
class Resumes {
  #breaks = 0;
  #since = Date.now();
  readonly #giveUp: GiveUp;

  constructor(giveUp: GiveUp) {
    this.#giveUp = giveUp;
  }

  /** Bytes arrived: the next break starts a fresh count. */
  progress(): void {
    this.#breaks = 0;
    this.#since = Date.now();
  }

  /** Wait before reopening after `error`, or throw when it is time to give up. */
  async after(error: unknown): Promise<void> {
    const delay = retryDelay(++this.#breaks, this.#since);
    if (delay === null) throw this.#giveUp(error, this.#breaks, Date.now() - this.#since);
    await sleep(delay);
  }
}

const STALLED = Symbol("stalled");

/** `p`, or {@link STALLED} when it takes longer than the stall timeout. */
async function within<T>(p: Promise<T>): Promise<T | typeof STALLED> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stalled = new Promise<typeof STALLED>((r) => {
    timer = setTimeout(() => r(STALLED), STALL_TIMEOUT_MS);
  });
  try {
    return await Promise.race([p, stalled]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The bytes `[start, end)` of an object (to its end when `end` is undefined). `open(pos)` starts a
 * download at `pos`; a server that ignores the range is fine, bytes before `pos` are skipped and
 * bytes past `end` dropped. When the connection breaks or stalls mid-body, the download is
 * reopened from the first byte not yet delivered (`giveUp` makes the error once the retries are
 * spent).
 */
export async function resumingStream(
  start: number,
  end: number | undefined,
  open: Opener,
  giveUp: GiveUp,
): Promise<ReadableStream<Uint8Array>> {
  let pos = start;
  const first = await open(pos);
  if (first === null) return emptyStream();
  let reader = first.body.getReader();
  let at = first.at;
  const resumes = new Resumes(giveUp);
  return new ReadableStream<Uint8Array>({
    pull: async (ctl) => {
      for (;;) {
        if (end !== undefined && pos >= end) {
          await reader.cancel().catch(() => {});
          ctl.close();
          return;
        }
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          const got = await within(reader.read());
          if (got === STALLED) {
            const e = new StallError();
            await reader.cancel(e).catch(() => {});
            throw e;
          }
          r = got;
        } catch (e) {
          await resumes.after(e);
          const next = await open(pos);
          if (next === null) {
            ctl.close();
            return;
          }
          reader = next.body.getReader();
          at = next.at;
          continue;
        }
        if (r.done) {
          ctl.close();
          return;
        }
        let chunk = r.value;
        const chunkStart = at;
        at += chunk.byteLength;
        if (at <= pos) continue; // before the range (the server ignored Range)
        if (chunkStart < pos) chunk = chunk.subarray(pos - chunkStart);
        if (end !== undefined && pos + chunk.byteLength > end) chunk = chunk.subarray(0, end - pos);
        pos += chunk.byteLength;
        resumes.progress();
        ctl.enqueue(chunk);
        return;
      }
    },
    cancel: async (reason) => {
      await reader.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
}

/** The open body of a {@link RangeReader}. */
interface Body {
  byob: ReadableStreamBYOBReader | null;
  plain: ReadableStreamDefaultReader<Uint8Array> | null;
  /** Bytes still to drop before the position (a server that ignored Range). */
  skip: number;
  /** Bytes read from a default reader past what the last read wanted. */
  rest: Uint8Array | null;
}

/**
 * The bytes `[start, end)` of an object, read block by block from one download that stays open
 * between reads, resumed from the first byte not yet delivered when it breaks or stalls (see
 * {@link resumingStream}). A byte-stream body is read with a BYOB reader, straight into the
 * caller's memory.
 */
export class RangeReader implements ObjectRange {
  #pos: number;
  readonly #end: number;
  readonly #open: Opener;
  readonly #resumes: Resumes;
  #body: Body | null = null;
  #ended = false;

  constructor(start: number, end: number, open: Opener, giveUp: GiveUp) {
    this.#pos = start;
    this.#end = end;
    this.#open = open;
    this.#resumes = new Resumes(giveUp);
  }

  async read(into: Uint8Array): Promise<Uint8Array> {
    const size = into.buffer.byteLength;
    const base = into.byteOffset;
    const want = Math.min(into.byteLength, Math.max(0, this.#end - this.#pos));
    const blockStart = this.#pos;
    let mem = into.buffer as ArrayBuffer;
    let got = 0;
    while (got < want && !this.#ended) {
      if (this.#body === null) {
        const opened = await this.#open(this.#pos);
        if (opened === null) {
          this.#ended = true;
          break;
        }
        this.#body = attach(opened, this.#pos);
      }
      const body = this.#body;
      const r = body.byob
        ? await fillByob(body.byob, mem, base + got, want - got)
        : await fillPlain(body, new Uint8Array(mem, base + got, want - got));
      if (r.buffer === null) {
        // A byte stream that failed keeps the memory it was reading into: redo this block.
        mem = new ArrayBuffer(size);
        got = 0;
        this.#pos = blockStart;
      } else {
        mem = r.buffer;
        got += r.n;
        this.#pos += r.n;
        if (r.n > 0) this.#resumes.progress();
      }
      if (r.error !== undefined) {
        await this.#drop(r.error);
        await this.#resumes.after(r.error);
      } else if (r.ended) {
        await this.#drop();
        this.#ended = true; // the object is shorter than the range
      }
    }
    return new Uint8Array(mem, base, got);
  }

  async #drop(reason?: unknown): Promise<void> {
    const b = this.#body;
    this.#body = null;
    await (b?.byob ?? b?.plain)?.cancel(reason).catch(() => {});
  }

  close(): Promise<void> {
    this.#ended = true;
    return this.#drop();
  }
}

function attach(opened: OpenedBody, pos: number): Body {
  const skip = pos - opened.at;
  if (skip === 0) {
    try {
      return { byob: opened.body.getReader({ mode: "byob" }), plain: null, skip: 0, rest: null };
    } catch { /* not a byte stream */ }
  }
  // A body starting after `pos` cannot happen with a correct server; skipping a negative count
  // would be wrong, so such a body is read as if it ended.
  return { byob: null, plain: opened.body.getReader(), skip: Math.max(0, skip), rest: null };
}

/**
 * Read the bytes at object offset `start` into `into`, up to its length or the end of the object,
 * resuming broken or stalled bodies. Returns the bytes read as a view of `into`'s memory (see
 * `ObjectRange.read`: `into` itself may be detached afterwards).
 */
export async function downloadInto(
  start: number,
  into: Uint8Array,
  open: Opener,
  giveUp: GiveUp,
): Promise<Uint8Array> {
  const reader = new RangeReader(start, start + into.byteLength, open, giveUp);
  try {
    return await reader.read(into);
  } finally {
    await reader.close();
  }
}

interface Filled {
  /** The memory the bytes are in (the same memory, possibly a new ArrayBuffer object), or null. */
  buffer: ArrayBuffer | null;
  /** Bytes written. */
  n: number;
  /** The body ended before the space was full. */
  ended: boolean;
  /** Why the body broke off, if it did. */
  error?: unknown;
}

/** Fill `length` bytes of `mem` at `offset` with a BYOB reader (left open for the next read). */
async function fillByob(
  byob: ReadableStreamBYOBReader,
  mem: ArrayBuffer,
  offset: number,
  length: number,
): Promise<Filled> {
  let n = 0;
  while (n < length) {
    const p = byob.read(new Uint8Array(mem, offset + n, length - n));
    let r: ReadableStreamReadResult<Uint8Array> | typeof STALLED;
    try {
      r = await within(p);
    } catch (error) {
      return { buffer: null, n, ended: false, error };
    }
    if (r === STALLED) {
      // A cancelled stream hands the memory back with the pending read.
      const error = new StallError();
      await byob.cancel(error).catch(() => {});
      const back = await p.catch(() => null);
      const buffer = (back?.value?.buffer as ArrayBuffer | undefined) ?? null;
      return { buffer, n, ended: false, error };
    }
    if (r.value) mem = r.value.buffer as ArrayBuffer;
    if (r.done) return { buffer: mem, n, ended: true };
    n += r.value.byteLength;
  }
  return { buffer: mem, n, ended: false };
}

/** Fill `into` from a default reader (copying), dropping the bytes before the position. */
async function fillPlain(body: Body, into: Uint8Array): Promise<Filled> {
  const reader = body.plain!;
  const buffer = into.buffer as ArrayBuffer;
  let n = 0;
  while (n < into.byteLength) {
    let c: Uint8Array;
    if (body.rest) {
      c = body.rest;
      body.rest = null;
    } else {
      let r: ReadableStreamReadResult<Uint8Array> | typeof STALLED;
      try {
        r = await within(reader.read());
      } catch (error) {
        return { buffer, n, ended: false, error };
      }
      if (r === STALLED) return { buffer, n, ended: false, error: new StallError() };
      if (r.done) return { buffer, n, ended: true };
      c = r.value;
    }
    if (body.skip > 0) {
      const drop = Math.min(body.skip, c.byteLength);
      body.skip -= drop;
      c = c.subarray(drop);
    }
    const take = Math.min(c.byteLength, into.byteLength - n);
    into.set(c.subarray(0, take), n);
    n += take;
    if (take < c.byteLength) body.rest = c.subarray(take);
  }
  return { buffer, n, ended: false };
}
