/**
 * Checkout's path for a local store: pack ranges read straight into a few reused buffers,
 * verified (in-thread, or in a {@link Hasher} worker) and written, as a pipeline.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { FileEntry } from "../format/records.ts";
import { packKey } from "../format/layout.ts";
import type { LocalStore } from "../storage/local.ts";
import { type Hasher, Queue } from "../hashing/hasher.ts";
import { writeAll } from "../util.ts";
import {
  corruptChunk,
  groupRanges,
  MAX_RANGE,
  missingPack,
  type Range,
  shortPack,
} from "./ranges.ts";

/** Buffers per file in flight through checkout's read → verify → write pipeline. */
const CHECKOUT_BUFFERS = 4;
/** When the worker has this many ranges queued, the main thread verifies the next one itself. */
const WORKER_BACKLOG = 2;

/** Hex sha256 of each chunk of a range read into `buf`, in-thread. */
function hashChunks(buf: Uint8Array, r: Range): string[] {
  const out: string[] = [];
  let o = 0;
  for (const [len] of r.chunks) {
    out.push(createHash("sha256").update(buf.subarray(o, o + len)).digest("hex"));
    o += len;
  }
  return out;
}

/**
 * Reads byte ranges of a local store's packs into caller buffers, keeping the last pack open
 * (consecutive ranges of a file are mostly in one pack). Missing or short packs are reported as
 * corrupt data of `entry`.
 */
export class PackReader {
  #open: { pack: string; file: Deno.FsFile } | null = null;
  constructor(readonly store: LocalStore, readonly entry: FileEntry) {}

  /** Fill `buf` (from its start) with range `r`. */
  async read(r: Range, buf: Uint8Array): Promise<void> {
    if (this.#open?.pack !== r.pack) {
      this.close();
      try {
        this.#open = {
          pack: r.pack,
          file: await Deno.open(this.store.path(packKey(r.pack))),
        };
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) throw missingPack(r.pack, this.entry);
        throw e;
      }
    }
    const file = this.#open!.file;
    await file.seek(r.offset, Deno.SeekMode.Start);
    const view = buf.subarray(0, r.length);
    let n = 0;
    while (n < view.length) {
      const got = await file.read(view.subarray(n));
      if (got === null) break;
      n += got;
    }
    if (n !== r.length) throw shortPack(r.pack, this.entry);
  }

  close(): void {
    this.#open?.file.close();
    this.#open = null;
  }
}

/**
 * {@link writeFromLocalPacks} without a worker: read each range into one of three reused buffers,
 * verify its chunks in-thread, and write it, with the next range read and the previous one written
 * meanwhile.
 */
async function writeFromLocalPacksInThread(
  store: LocalStore,
  entry: FileEntry,
  out: Deno.FsFile,
): Promise<void> {
  const ranges = groupRanges(entry);
  const free: Uint8Array[] = [];
  const packs = new PackReader(store, entry);
  const readRange = async (r: Range): Promise<Uint8Array> => {
    let buf = free.pop();
    if (!buf || buf.length < r.length) buf = new Uint8Array(Math.max(MAX_RANGE, r.length));
    await packs.read(r, buf);
    return buf;
  };
  let reading: Promise<Uint8Array> | null = null;
  let writing: Promise<void> = Promise.resolve();
  try {
    if (ranges.length) reading = readRange(ranges[0]!);
    for (let k = 0; k < ranges.length; k++) {
      const r = ranges[k]!;
      const buf = await reading!;
      reading = null;
      if (k + 1 < ranges.length) reading = readRange(ranges[k + 1]!);
      let o = 0;
      for (const [len, hash] of r.chunks) {
        if (createHash("sha256").update(buf.subarray(o, o + len)).digest("hex") !== hash) {
          throw corruptChunk(r, entry);
        }
        o += len;
      }
      await writing;
      writing = writeAll(out, buf.subarray(0, r.length)).then(() => {
        free.push(buf);
      });
    }
    await writing;
  } finally {
    // Let reads and writes in flight finish before their files close.
    await Promise.allSettled([reading, writing]);
    packs.close();
  }
}

/**
 * Checkout's path for a local store: read each range of packs straight into one of a few reused
 * buffers, verify its chunks, and write it, as a pipeline: the next range is read and this one
 * verified in the `hasher` worker while the previous one is written (without a hasher:
 * {@link writeFromLocalPacksInThread}).
 * Reusing buffers keeps memory flat (no garbage buffers for the collector to chase).
 *
 * @internal Exported for tests.
 */
export async function writeFromLocalPacks(
  store: LocalStore,
  entry: FileEntry,
  out: Deno.FsFile,
  hasher: Hasher | null = null,
): Promise<void> {
  if (!hasher) return writeFromLocalPacksInThread(store, entry, out);
  const ranges = groupRanges(entry);
  if (!ranges.length) return;
  // Sized to the largest range (small files get small buffers); whole buffers, for the worker.
  const size = ranges.reduce((m, r) => Math.max(m, r.length), 0);
  const free = new Queue<Uint8Array>();
  for (let i = 0; i < Math.min(CHECKOUT_BUFFERS, ranges.length); i++) {
    free.put(new Uint8Array(size));
  }
  const blocks = new Queue<{ r: Range; hashed: Promise<{ buf: Uint8Array; hashes: string[] }> }>();
  const owned = new Set<Promise<unknown>>();
  const packs = new PackReader(store, entry);
  let failed = false;
  const readRange = (r: Range, buf: Uint8Array): Promise<void> => packs.read(r, buf);
  const produce = async () => {
    // One read ahead: the next range is read while this one is verified.
    let reading: Promise<void> | null = null;
    try {
      let buf = await free.take();
      if (!buf || failed) return;
      reading = readRange(ranges[0]!, buf);
      for (let k = 0; k < ranges.length; k++) {
        const r = ranges[k]!;
        await reading;
        reading = null;
        if (failed) return;
        let next: Uint8Array | null = null;
        if (k + 1 < ranges.length) {
          next = await free.take();
          if (!next || failed) return;
          reading = readRange(ranges[k + 1]!, next);
        }
        let hashed: Promise<{ buf: Uint8Array; hashes: string[] }>;
        if (hasher?.ready && hasher.pending < WORKER_BACKLOG) {
          const spans: number[] = [];
          let o = 0;
          for (const [len] of r.chunks) spans.push(o, o += len);
          hashed = hasher.hash(buf, spans);
          owned.add(hashed);
          hashed.catch(() => {}).finally(() => owned.delete(hashed));
        } else {
          hashed = Promise.resolve({ buf, hashes: hashChunks(buf, r) });
        }
        blocks.put({ r, hashed });
        if (!next) return;
        buf = next;
      }
    } finally {
      // Never leave a read in flight (the pack file closes after this).
      if (reading) await (reading as Promise<void>).catch(() => {});
      blocks.close();
    }
  };
  const producing = produce();
  producing.catch(() => {
    failed = true;
  });
  try {
    for (;;) {
      const blk = await blocks.take();
      if (!blk) break;
      const { buf, hashes } = await blk.hashed;
      for (let i = 0; i < hashes.length; i++) {
        if (hashes[i] !== blk.r.chunks[i]![1]) throw corruptChunk(blk.r, entry);
      }
      await writeAll(out, buf.subarray(0, blk.r.length));
      free.put(buf);
    }
    await producing;
  } finally {
    failed = true;
    free.close();
    // Let the read in flight and the worker finish before the pack file closes.
    await producing.catch(() => {});
    await Promise.allSettled([...owned]);
    packs.close();
  }
}
