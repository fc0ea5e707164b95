/**
 * Checkout's path for a local store: ranges of packs read straight into reused buffers, every
 * chunk verified, and written at its place in the output file. Large files go through a
 * {@link RestorePipe}: several ranges in flight at once (read, verified in-thread or in a
 * {@link Hasher} worker, and written off the main thread by src/restore/output_file.ts, in
 * whatever order they finish).
 *
 * @module
 */
import { hash } from "node:crypto";
import * as fs from "node:fs";
import type { FileEntry } from "../format/records.ts";
import { packKey } from "../format/layout.ts";
import type { LocalStore } from "../storage/local.ts";
import { Hasher } from "../hashing/hasher.ts";
import { OutputFile } from "./output_file.ts";
import { corruptChunk, groupRanges, missingPack, type Range, shortPack } from "./ranges.ts";

/** Bytes of one slot of a {@link RestorePipe}: ranges are split to fit. */
const SLOT = 4 * 1024 * 1024;
/** Ranges in flight through a {@link RestorePipe}. */
const SLOTS = 4;
/** When the worker has this many ranges queued, the main thread verifies the next one itself. */
const WORKER_BACKLOG = 2;

const readAt = (fd: number, buf: Uint8Array, pos: number) =>
  new Promise<number>((resolve, reject) =>
    fs.read(fd, buf, 0, buf.length, pos, (e, n) => e ? reject(e) : resolve(n))
  );
const writeAt = (fd: number, buf: Uint8Array, pos: number) =>
  new Promise<number>((resolve, reject) =>
    fs.write(fd, buf, 0, buf.length, pos, (e, n) => e ? reject(e) : resolve(n))
  );
const openRead = (path: string) =>
  new Promise<number>((resolve, reject) =>
    fs.open(path, "r", (e, fd) => e ? reject(e) : resolve(fd))
  );

/** Write all of `data` at `pos` of `fd`. */
async function writeAllAt(fd: number, data: Uint8Array, pos: number): Promise<void> {
  let off = 0;
  while (off < data.length) off += await writeAt(fd, data.subarray(off), pos + off);
}

/**
 * Memory for large files' ranges: {@link SLOTS} slots in a shared memory, so that a {@link Hasher}
 * worker (started on first use when `worker` is true) verifies ranges where they were read. One
 * pipe serves one file at a time; {@link RestorePipe.close} stops its worker.
 */
export class RestorePipe {
  readonly memory: WebAssembly.Memory;
  readonly bytes: Uint8Array;
  readonly #worker: boolean;
  #hasher: Hasher | null = null;

  constructor(options: { worker: boolean }) {
    const pages = (SLOTS * SLOT) / 65536;
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    this.bytes = new Uint8Array(this.memory.buffer);
    this.#worker = options.worker;
  }

  /** The worker, if this pipe has one. */
  hasher(): Hasher | null {
    if (!this.#worker) return null;
    return this.#hasher ??= new Hasher(this.memory);
  }

  close(): void {
    this.#hasher?.close();
    this.#hasher = null;
  }
}

/** Split ranges at chunk boundaries so that none is longer than `max` (chunks are never cut). */
function splitRanges(ranges: Range[], max: number): Range[] {
  const out: Range[] = [];
  for (const r of ranges) {
    if (r.length <= max) {
      out.push(r);
      continue;
    }
    let cur: Range = { pack: r.pack, offset: r.offset, length: 0, chunks: [] };
    for (const c of r.chunks) {
      if (cur.length + c[0] > max && cur.chunks.length) {
        out.push(cur);
        cur = { pack: r.pack, offset: cur.offset + cur.length, length: 0, chunks: [] };
      }
      cur.length += c[0];
      cur.chunks.push(c);
    }
    out.push(cur);
  }
  return out;
}

/** Open packs of a local store, by id, for positional reads of `entry`'s ranges. */
class PackFiles {
  #fds = new Map<string, Promise<number>>();
  constructor(readonly store: LocalStore, readonly entry: FileEntry) {}

  /** Fill `buf` (its whole length) with the range's bytes. */
  async read(r: Range, buf: Uint8Array): Promise<void> {
    let fd = this.#fds.get(r.pack);
    if (!fd) {
      fd = openRead(this.store.path(packKey(r.pack)));
      fd.catch(() => {});
      this.#fds.set(r.pack, fd);
    }
    let n: number;
    try {
      n = await fd;
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") throw missingPack(r.pack, this.entry);
      throw e;
    }
    let got = 0;
    while (got < buf.length) {
      const k = await readAt(n, buf.subarray(got), r.offset + got);
      if (k === 0) throw shortPack(r.pack, this.entry);
      got += k;
    }
  }

  /** Close every pack (call once no read is in flight). */
  async close(): Promise<void> {
    const fds = [...this.#fds.values()];
    this.#fds.clear();
    for (const fd of await Promise.allSettled(fds)) {
      if (fd.status === "fulfilled") fs.closeSync(fd.value);
    }
  }
}

/** Check the hashes of a range's chunks. */
function verify(hashes: string[], r: Range, entry: FileEntry): void {
  for (let i = 0; i < r.chunks.length; i++) {
    if (hashes[i] !== r.chunks[i]![1]) throw corruptChunk(r, entry);
  }
}

/** Hex sha256 of each chunk of `r` read into `bytes` at `at`, in-thread. */
function hashChunks(bytes: Uint8Array, at: number, r: Range): string[] {
  const out: string[] = [];
  for (const [len] of r.chunks) {
    out.push(hash("sha256", bytes.subarray(at, at + len), "hex"));
    at += len;
  }
  return out;
}

/**
 * Write the bytes of `entry` from a local store's packs into `fd` (a new, empty file at `path`),
 * every chunk verified before its bytes are written. With a `pipe`, up to four ranges are in
 * flight at once and handed, verified, to an {@link OutputFile} in the order they finish; without
 * one, ranges go one after the other through one buffer (small files).
 * Every read and write has finished when this settles, whether it succeeds or fails.
 */
export async function writeFromLocalPacks(
  store: LocalStore,
  entry: FileEntry,
  fd: number,
  path: string,
  pipe: RestorePipe | null = null,
): Promise<void> {
  const packs = new PackFiles(store, entry);
  try {
    if (pipe) {
      const out = new OutputFile(path);
      try {
        await pipelined(entry, out, packs, pipe);
      } finally {
        await out.close();
      }
    } else {
      await inThread(entry, fd, packs);
    }
  } finally {
    await packs.close();
  }
}

async function inThread(entry: FileEntry, fd: number, packs: PackFiles): Promise<void> {
  let buf = new Uint8Array(0);
  let pos = 0;
  for (const r of groupRanges(entry)) {
    if (buf.length < r.length) buf = new Uint8Array(r.length);
    const view = buf.subarray(0, r.length);
    await packs.read(r, view);
    verify(hashChunks(view, 0, r), r, entry);
    await writeAllAt(fd, view, pos);
    pos += r.length;
  }
}

async function pipelined(
  entry: FileEntry,
  out: OutputFile,
  packs: PackFiles,
  pipe: RestorePipe,
): Promise<void> {
  const ranges = splitRanges(groupRanges(entry), SLOT);
  const bytes = pipe.bytes;
  const hasher = pipe.hasher();
  const free = Array.from({ length: SLOTS }, (_, i) => i * SLOT);
  const inflight = new Set<Promise<void>>();
  let error: unknown = null;
  const one = async (r: Range, pos: number, at: number) => {
    const view = bytes.subarray(at, at + r.length);
    await packs.read(r, view);
    let hashes: string[];
    if (hasher?.ready && hasher.pending < WORKER_BACKLOG) {
      const spans: number[] = [];
      let o = at;
      for (const [len] of r.chunks) spans.push(o, o += len);
      hashes = await hasher.hash(spans);
    } else {
      hashes = hashChunks(bytes, at, r);
    }
    verify(hashes, r, entry);
    await out.write(view, pos);
  };
  let pos = 0;
  for (const r of ranges) {
    while (!free.length && !error) await Promise.race(inflight);
    if (error) break;
    const at = free.pop()!;
    const p: Promise<void> = one(r, pos, at).catch((e) => {
      error ??= e;
    }).finally(() => {
      inflight.delete(p);
      free.push(at);
    });
    inflight.add(p);
    pos += r.length;
  }
  await Promise.all(inflight);
  if (error) throw error;
}
