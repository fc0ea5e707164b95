/**
 * One stored file as a stream: its chunks fetched by ranged reads, each chunk checked against its
 * sha256. The file's blocks (≤ 8 MiB of neighbouring chunks) are read over a few long requests: a
 * segment of up to 64 MiB of one pack is one ranged GET read block after block, and `parallel`
 * segments are read at once, each one block ahead of the consumer. Memory stays bounded whatever
 * the file size (`parallel + 1` blocks), and each block is read straight into its own buffer
 * (cloud drivers read the body with a BYOB reader, so no HTTP chunk buffers pile up beside it).
 * Servers pay per request (and moto reads the whole pack for every ranged GET): a 1 GiB file costs
 * ~16 GETs, not ~130.
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
import type { ObjectRange, Store } from "../storage/store.ts";
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

/** Largest part of a pack read over one request. */
const SEGMENT_MAX = 64 * 1024 * 1024;

/** A run of blocks of one pack read over one request, block after block. */
interface Segment {
  pack: string;
  blocks: Range[];
  /** The next block not yet handed to the consumer. */
  next: number;
  reader: ObjectRange | null;
  /** The read of block `next`, once started. */
  slot: Promise<Uint8Array> | null;
}

/**
 * The segments to read: neighbouring blocks of one pack merged up to `limit` bytes, where the
 * limit spreads the file over at least `parallel` requests (so small files still read in
 * parallel) and a large file costs one request per pack.
 */
function segments(entry: FileEntry, parallel: number): Segment[] {
  const limit = Math.min(SEGMENT_MAX, Math.max(MAX_RANGE, Math.ceil(entry.size / parallel)));
  const out: Segment[] = [];
  let len = 0;
  for (const b of groupRanges(entry)) {
    const last = out[out.length - 1];
    const prev = last?.blocks[last.blocks.length - 1];
    if (
      last && prev && last.pack === b.pack && prev.offset + prev.length === b.offset &&
      len + b.length <= limit
    ) {
      last.blocks.push(b);
      len += b.length;
    } else {
      out.push({ pack: b.pack, blocks: [b], next: 0, reader: null, slot: null });
      len = b.length;
    }
  }
  return out;
}

/** Stream the bytes of `entry` from `store`, verifying every chunk. */
export function fileStream(
  store: Store,
  entry: FileEntry,
  options: FileStreamOptions = {},
): ReadableStream<Uint8Array> {
  const parallel = options.parallel ?? 4;
  const pool: Uint8Array[] = [];
  const take = (length: number): Uint8Array => {
    if (!options.reuseBuffers) return new Uint8Array(length);
    const buf = pool.pop() ?? new Uint8Array(Math.max(length, MAX_RANGE));
    return buf.byteLength >= length ? buf.subarray(0, length) : new Uint8Array(length);
  };
  const verify = (r: Range, bytes: Uint8Array): Uint8Array => {
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
  const missing = (pack: string) => (e: unknown) => {
    throw e instanceof NotFoundError ? missingPack(pack, entry) : e;
  };
  /** Read the segment's next block (the segment's reader is used by one read at a time). */
  const startBlock = (seg: Segment) => {
    const r = seg.blocks[seg.next]!;
    seg.reader ??= store.openRange!(packKey(seg.pack), r.offset, segmentLength(seg));
    const reader = seg.reader;
    seg.slot = reader.read(take(r.length)).catch(missing(seg.pack)).then((b) => verify(r, b));
    seg.slot.catch(() => {}); // surfaced when awaited in order
  };
  const segs = store.openRange ? segments(entry, parallel) : [];
  let current = 0;
  const fill = () => {
    for (let i = current; i < Math.min(segs.length, current + parallel); i++) {
      const seg = segs[i]!;
      if (seg.slot === null && seg.next < seg.blocks.length) startBlock(seg);
    }
  };
  /** The next block in file order. */
  const nextBlock = async (): Promise<Uint8Array | null> => {
    const seg = segs[current];
    if (!seg) return null;
    fill();
    const bytes = await seg.slot!;
    seg.slot = null;
    seg.next++;
    if (seg.next === seg.blocks.length) {
      await seg.reader?.close();
      seg.reader = null;
      current++;
    }
    fill();
    return bytes;
  };
  const closeAll = async () => {
    for (const seg of segs) {
      const r = seg.reader;
      seg.reader = null;
      await r?.close().catch(() => {});
    }
  };

  // Stores without ranges that stay open: one request per block.
  const blocks = store.openRange ? [] : groupRanges(entry);
  const inflight: Promise<Uint8Array>[] = [];
  let nextRange = 0;
  const fetchRange = async (r: Range): Promise<Uint8Array> => {
    const key = packKey(r.pack);
    const bytes =
      await (store.getInto
        ? store.getInto(key, r.offset, take(r.length))
        : store.getBytes(key, { offset: r.offset, length: r.length })).catch(missing(r.pack));
    return verify(r, bytes);
  };
  const fillRanges = () => {
    while (inflight.length < parallel && nextRange < blocks.length) {
      const p = fetchRange(blocks[nextRange++]!);
      p.catch(() => {}); // surfaced when awaited in order
      inflight.push(p);
    }
  };
  const nextRangeBlock = async (): Promise<Uint8Array | null> => {
    fillRanges();
    const p = inflight.shift();
    if (!p) return null;
    const bytes = await p;
    fillRanges();
    return bytes;
  };

  /** The block the consumer holds: back to the pool when it asks for the next one. */
  let held: Uint8Array | null = null;
  const release = () => {
    if (held && options.reuseBuffers) pool.push(new Uint8Array(held.buffer));
    held = null;
  };
  return new ReadableStream<Uint8Array>({
    async pull(ctl) {
      release();
      let bytes: Uint8Array | null;
      try {
        bytes = store.openRange ? await nextBlock() : await nextRangeBlock();
      } catch (e) {
        await closeAll();
        throw e;
      }
      if (bytes === null) {
        ctl.close();
        return;
      }
      held = bytes;
      ctl.enqueue(bytes);
    },
    async cancel() {
      release();
      await closeAll();
    },
  }, { highWaterMark: 0 });
}

function segmentLength(seg: Segment): number {
  const first = seg.blocks[0]!;
  const last = seg.blocks[seg.blocks.length - 1]!;
  return last.offset + last.length - first.offset;
}
