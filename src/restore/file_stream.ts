/**
 * One stored file as a stream: its chunks fetched by ranged reads a few at a time, each chunk
 * checked against its sha256. Memory stays bounded whatever the file size: at most `parallel`
 * ranges (≤ 8 MiB each) are in flight, each read straight into its own buffer (cloud drivers read
 * the body with a BYOB reader, so no HTTP chunk buffers pile up beside it).
 *
 * Each block the stream yields is a fresh buffer the consumer may keep. A consumer that is done
 * with a block once it asks for the next one (checkout writing to a file) can say so with
 * `reuseBuffers`: the stream then cycles through `parallel + 1` buffers and allocates nothing
 * per range, so its memory does not depend on when the garbage collector runs.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { NotFoundError } from "../errors.ts";
import type { FileEntry } from "../format/records.ts";
import { packKey } from "../format/layout.ts";
import type { Store } from "../storage/store.ts";
import {
  corruptChunk,
  groupRanges,
  MAX_RANGE,
  missingPack,
  type Range,
  shortPack,
} from "./ranges.ts";

/** Options of {@link fileStream}. */
export interface FileStreamOptions {
  /** Ranged reads in flight. @default 4 */
  parallel?: number;
  /**
   * The consumer is done with a block when it reads the next one, so the stream may overwrite
   * it: blocks then come from a fixed pool of buffers. @default false
   */
  reuseBuffers?: boolean;
}

/** Stream the bytes of `entry` from `store`, verifying every chunk. */
export function fileStream(
  store: Store,
  entry: FileEntry,
  options: FileStreamOptions = {},
): ReadableStream<Uint8Array> {
  const ranges = groupRanges(entry);
  const parallel = options.parallel ?? 4;
  const pool: Uint8Array[] = [];
  const take = (length: number): Uint8Array => {
    if (!options.reuseBuffers) return new Uint8Array(length);
    const buf = pool.pop() ?? new Uint8Array(Math.max(length, MAX_RANGE));
    return buf.byteLength >= length ? buf.subarray(0, length) : new Uint8Array(length);
  };
  const inflight: Promise<Uint8Array>[] = [];
  let next = 0;
  /** The block the consumer holds: back to the pool when it asks for the next one. */
  let held: Uint8Array | null = null;
  const fetchRange = async (r: Range): Promise<Uint8Array> => {
    let bytes: Uint8Array;
    try {
      const key = packKey(r.pack);
      bytes = store.getInto
        ? await store.getInto(key, r.offset, take(r.length))
        : await store.getBytes(key, { offset: r.offset, length: r.length });
    } catch (e) {
      if (e instanceof NotFoundError) throw missingPack(r.pack, entry);
      throw e;
    }
    if (bytes.length !== r.length) throw shortPack(r.pack, entry);
    let o = 0;
    for (const [len, hash] of r.chunks) {
      const c = bytes.subarray(o, o + len);
      o += len;
      if (createHash("sha256").update(c).digest("hex") !== hash) throw corruptChunk(r, entry);
    }
    // The range's chunks are contiguous: hand them on as one block (fewer, larger writes).
    return bytes;
  };
  const fill = () => {
    while (inflight.length < parallel && next < ranges.length) {
      const p = fetchRange(ranges[next++]!);
      p.catch(() => {}); // surfaced when awaited in order
      inflight.push(p);
    }
  };
  const release = () => {
    if (held && options.reuseBuffers) pool.push(new Uint8Array(held.buffer));
    held = null;
  };
  return new ReadableStream<Uint8Array>({
    async pull(ctl) {
      release();
      fill();
      const p = inflight.shift();
      if (!p) {
        ctl.close();
        return;
      }
      held = await p;
      ctl.enqueue(held);
      fill();
    },
    cancel() {
      release();
    },
  }, { highWaterMark: 0 });
}
