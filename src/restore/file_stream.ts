/**
 * One stored file as a stream: its chunks fetched by ranged reads a few at a time, each chunk
 * checked against its sha256. Memory stays bounded whatever the file size.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { NotFoundError } from "../errors.ts";
import type { FileEntry } from "../format/records.ts";
import { packKey } from "../format/layout.ts";
import type { Store } from "../storage/store.ts";
import { corruptChunk, groupRanges, missingPack, type Range, shortPack } from "./ranges.ts";

/** Options of {@link fileStream}. */
export interface FileStreamOptions {
  /** Ranged reads in flight. @default 4 */
  parallel?: number;
}

/** Stream the bytes of `entry` from `store`, verifying every chunk. */
export function fileStream(
  store: Store,
  entry: FileEntry,
  options: FileStreamOptions = {},
): ReadableStream<Uint8Array> {
  const ranges = groupRanges(entry);
  const parallel = options.parallel ?? 4;
  const inflight: Promise<Uint8Array>[] = [];
  let next = 0;
  const fetchRange = async (r: Range): Promise<Uint8Array> => {
    let bytes: Uint8Array;
    try {
      bytes = await store.getBytes(packKey(r.pack), { offset: r.offset, length: r.length });
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
  return new ReadableStream<Uint8Array>({
    async pull(ctl) {
      fill();
      const p = inflight.shift();
      if (!p) {
        ctl.close();
        return;
      }
      ctl.enqueue(await p);
      fill();
    },
  }, { highWaterMark: 0 });
}
