/**
 * Snapshot files into a {@link Tree}: read each file, cut it into content-defined chunks, store new
 * chunks through a {@link Packer}. Files whose size, mtime and inode are unchanged since the previous
 * snapshot are not read again. A file that changes while it is read is read again; one that keeps
 * changing is reported as torn.
 *
 * @module
 */
import { hash } from "node:crypto";
import { join } from "node:path";
import { Chunker, CutKernel, KERNEL_DATA, MAX_CHUNK } from "../format/chunker.ts";
import { type ChunkRef, type FileEntry, type Tree, TREE_FORMAT } from "../format/records.ts";
import { type Packer, sha256hex } from "./packer.ts";

export { contentId, WORKER_MIN_SIZE };
import { Hasher, Queue, WORKER_MIN_SIZE, workerByDefault } from "../hashing/hasher.ts";
import { contentId } from "../format/content_id.ts";

const READ_SIZE = 4 * 1024 * 1024;
const TEAR_RETRIES = 3;
/** When the worker has this many blocks queued, the main thread hashes the next one itself. */
const WORKER_BACKLOG = 2;

interface StatKey {
  size: number;
  mtime: number;
  ino: number | null;
  ctime: number;
}

/** Remembers, per absolute path, the stat and entry of its last snapshot. */
export type StatCache = Map<string, { key: StatKey; entry: Omit<FileEntry, "path"> }>;

/** Result of snapshotting a list of files. */
export interface SnapshotResult {
  tree: Tree;
  /** Paths that kept changing while read. */
  torn: string[];
  /** Paths that vanished before they could be read. */
  missing: string[];
  /** Bytes read from disk. */
  bytesRead: number;
}

/** Options of {@link snapshotFiles}. */
export interface SnapshotOptions {
  /**
   * Hash large files' chunks in a worker thread, on another core, while this one reads and finds
   * chunk boundaries. @default {@link workerByDefault}
   */
  worker?: boolean;
  /** @internal For tests: wait for the worker to load before the first file is read. */
  awaitWorker?: boolean;
}

function statKey(st: Deno.FileInfo): StatKey {
  return {
    size: st.size,
    mtime: st.mtime?.getTime() ?? 0,
    ino: st.ino,
    ctime: st.ctime?.getTime() ?? 0,
  };
}

function sameKey(a: StatKey, b: StatKey): boolean {
  return a.size === b.size && a.mtime === b.mtime && a.ino === b.ino && a.ctime === b.ctime;
}

/**
 * Fill `buf` from the file; returns the bytes read (less than its length only at the end).
 * Synchronous reads: for multi-MiB blocks Deno's async read costs about three times as much CPU
 * (measured 0.97 s against 0.35 s per GiB), and one block blocks the event loop for a millisecond
 * or two only.
 */
function readFull(file: Deno.FsFile, buf: Uint8Array): number {
  let n = 0;
  while (n < buf.length) {
    const r = file.readSync(buf.subarray(n));
    if (r === null) break;
    n += r;
  }
  return n;
}

/** Hex sha256 of `ranges` (start, end pairs) of `bytes`, in-thread. */
function hashRanges(bytes: Uint8Array, ranges: number[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < ranges.length; i += 2) {
    out.push(hash("sha256", bytes.subarray(ranges[i]!, ranges[i + 1]!), "hex"));
  }
  return out;
}

/** A block of a file on its way through {@link chunkPipelined}. */
interface Block {
  /** Its slot (offset of the slot in the pipe's memory). */
  slot: number;
  /** The chunks: start, end pairs of offsets into the pipe's memory. */
  ranges: number[];
  /** Resolves when the chunks are hashed. */
  hashed: Promise<string[]>;
}

/**
 * Slots of a pipe: {@link MAX_CHUNK} bytes of headroom, then {@link READ_SIZE} bytes read from the
 * file. The undecided tail of the previous block is copied into the headroom, just before the new
 * data, so every chunk is one range of one slot.
 */
const SLOT = MAX_CHUNK + READ_SIZE;
/**
 * Slots per pipe: one being read, one being chunked, one being packed, and with a worker up to
 * {@link WORKER_BACKLOG} more being hashed.
 */
const slotsFor = (worker: boolean) => 3 + (worker ? WORKER_BACKLOG : 0);

/**
 * The memory large files go through: the slots, in a {@link CutKernel}'s shared memory (the kernel
 * finds chunk boundaries where the file was read, and a {@link Hasher} worker reads the same bytes),
 * and the worker once one is wanted. One pipe serves one file at a time; pipes are kept for reuse.
 */
class Pipe {
  readonly kernel: CutKernel;
  hasher: Hasher | null = null;
  /** The tail of the last block (the undecided chunk, shorter than MAX_CHUNK). */
  readonly tail = new Uint8Array(MAX_CHUNK);

  /** A pipe with slots enough for a worker (`forWorker`) or for in-thread hashing. */
  constructor(readonly forWorker: boolean) {
    this.kernel = new CutKernel(slotsFor(forWorker) * SLOT);
  }

  /** Offsets of the slots in the memory. */
  slots(): number[] {
    return Array.from({ length: slotsFor(this.forWorker) }, (_, i) => KERNEL_DATA + i * SLOT);
  }

  /** The worker (started on first use). */
  worker(): Hasher {
    return this.hasher ??= new Hasher(this.kernel.memory);
  }

  /** Stop the worker, if any (a running worker keeps the process alive). */
  stopWorker(): void {
    this.hasher?.close();
    this.hasher = null;
  }
}

const idlePipes: Pipe[] = [];

/**
 * Read, chunk, hash and pack a large file as a pipeline over the slots of `pipe`: the next block
 * is read while this one is chunked on the main thread and the one before is hashed in the worker
 * (or, when there is none, it is behind or not loaded yet, in-thread); blocks are added to the
 * packer in order. Chunk boundaries are those of {@link Chunker}.
 */
async function chunkPipelined(
  file: Deno.FsFile,
  packer: Packer,
  pipe: Pipe,
  hasher: Hasher | null,
): Promise<{ size: number; chunks: ChunkRef[] }> {
  const chunks: ChunkRef[] = [];
  const bytes = pipe.kernel.bytes;
  const free = new Queue<number>();
  for (const slot of pipe.slots()) free.put(slot);
  const blocks = new Queue<Block>();
  const tail = pipe.tail;
  let tailLen = 0;
  let size = 0;
  let failed = false;
  const produce = async () => {
    try {
      for (;;) {
        const slot = await free.take();
        if (slot === null || failed) return;
        const n = readFull(file, bytes.subarray(slot + MAX_CHUNK, slot + SLOT));
        size += n;
        const final = n < READ_SIZE; // a short read is the end of the file
        let start = slot + MAX_CHUNK - tailLen;
        bytes.set(tail.subarray(0, tailLen), start);
        const end = slot + MAX_CHUNK + n;
        const cuts: number[] = [];
        const rest = pipe.kernel.cuts(start, end, final, cuts);
        const ranges: number[] = [];
        for (const cut of cuts) {
          ranges.push(start, cut);
          start = cut;
        }
        tailLen = end - rest;
        tail.set(bytes.subarray(rest, end));
        let hashed: Promise<string[]>;
        if (hasher?.ready && hasher.pending < WORKER_BACKLOG) {
          hashed = hasher.hash(ranges);
          hashed.catch(() => {});
        } else {
          hashed = Promise.resolve(hashRanges(bytes, ranges));
        }
        blocks.put({ slot, ranges, hashed });
        if (final) return;
        // Let the consumer pack what is hashed before the next synchronous read.
        await Promise.resolve();
      }
    } finally {
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
      const hashes = await blk.hashed;
      const r = blk.ranges;
      for (let i = 0; i < hashes.length; i++) {
        chunks.push(await packer.add(bytes.subarray(r[2 * i]!, r[2 * i + 1]!), hashes[i]));
      }
      free.put(blk.slot);
    }
    await producing;
  } finally {
    failed = true;
    free.close();
    await producing.catch(() => {});
    // The worker may still be reading slots: wait for its answers before the pipe is reused.
    await Promise.allSettled(blocks.drain().map((b) => b.hashed));
  }
  return { size, chunks };
}

/** Files smaller than this are read in one synchronous call (see {@link readSmall}). */
const SMALL_FILE = 1024 * 1024;

type ReadResult = {
  entry: Omit<FileEntry, "path">;
  before: StatKey;
  after: StatKey;
  read: number;
};

/**
 * Read a small file with synchronous calls: for thousands of small files (a code snapshot) the
 * round trips of async file operations, not the bytes, are the cost (measured 1.4 s of waiting
 * for 5,000 files). A file that grew past the size seen is read whole all the same; the stat
 * after the read reports the change.
 */
async function readSmall(abs: string, packer: Packer): Promise<ReadResult> {
  let data: Uint8Array;
  let before: StatKey;
  let after: StatKey;
  let mode: number;
  {
    using file = Deno.openSync(abs, { read: true });
    const st0 = file.statSync();
    before = statKey(st0);
    mode = (st0.mode ?? 0o644) & 0o777;
    let buf = new Uint8Array(st0.size + 1);
    let n = 0;
    for (;;) {
      if (n === buf.length) {
        const bigger = new Uint8Array(buf.length * 2);
        bigger.set(buf);
        buf = bigger;
      }
      const r = file.readSync(buf.subarray(n));
      if (r === null) break;
      n += r;
    }
    data = buf.subarray(0, n);
    after = statKey(file.statSync());
  }
  const chunker = new Chunker();
  const chunks: ChunkRef[] = [];
  for (const c of [...chunker.push(data), ...chunker.finish()]) {
    chunks.push(await packer.add(c, sha256hex(c)));
  }
  return {
    entry: { size: data.length, hash: contentId(chunks.map((c) => c[3])), mode, chunks },
    before,
    after,
    read: data.length,
  };
}

/** How {@link readOnce} gets a pipe (and its worker) for a large file. */
interface PipeSource {
  /** A pipe for one file (with room for a worker if it will have one), given back with release. */
  take(forWorker: boolean): Pipe;
  release(pipe: Pipe): void;
  /** Whether files of `size` bytes are hashed in the pipe's worker. */
  worker(size: number): boolean;
  /** Wait for the worker to load before reading. */
  awaitWorker: boolean;
}

async function readOnce(
  abs: string,
  packer: Packer,
  pipes: PipeSource,
  seenSize: number,
): Promise<ReadResult> {
  if (seenSize < SMALL_FILE) return await readSmall(abs, packer);
  using file = await Deno.open(abs, { read: true });
  const st0 = await file.stat();
  const before = statKey(st0);
  const mode = (st0.mode ?? 0o644) & 0o777;
  const withWorker = pipes.worker(st0.size);
  const pipe = pipes.take(withWorker);
  let res: { size: number; chunks: ChunkRef[] };
  try {
    const hasher = withWorker ? pipe.worker() : null;
    if (hasher && pipes.awaitWorker) await hasher.whenReady();
    res = await chunkPipelined(file, packer, pipe, hasher);
  } finally {
    pipes.release(pipe);
  }
  const after = statKey(await file.stat());
  const { size, chunks } = res;
  return {
    entry: { size, hash: contentId(chunks.map((c) => c[3])), mode, chunks },
    before,
    after,
    read: size,
  };
}

/**
 * Snapshot `files` (paths relative to `root`, POSIX separators) into a tree. `cache` makes
 * unchanged files free; pass the same map across snapshots of the same directory.
 *
 * Files of 1 MiB or more are read straight into the shared memory of a chunk-boundary kernel and
 * go through a pipeline there; with `options.worker` (default: {@link workerByDefault}) those of
 * {@link WORKER_MIN_SIZE} or more are hashed in a worker started for the first of them and stopped
 * before this returns.
 */
export async function snapshotFiles(
  root: string,
  files: string[],
  packer: Packer,
  cache?: StatCache,
  options: SnapshotOptions = {},
): Promise<SnapshotResult> {
  const useWorker = options.worker ?? workerByDefault();
  const taken = new Set<Pipe>();
  const pipes: PipeSource = {
    take(forWorker) {
      const i = idlePipes.findIndex((p) => p.forWorker === forWorker);
      const pipe = i >= 0 ? idlePipes.splice(i, 1)[0]! : new Pipe(forWorker);
      taken.add(pipe);
      return pipe;
    },
    release(pipe) {
      taken.delete(pipe);
      // Keep one idle pipe (its memory) for the next large file; its worker until we return.
      idlePipes.splice(0, idlePipes.length, pipe).forEach((p) => p.stopWorker());
    },
    worker: (size) => useWorker && size >= WORKER_MIN_SIZE,
    awaitWorker: options.awaitWorker ?? false,
  };
  try {
    return await snapshotWith(root, files, packer, cache, pipes);
  } finally {
    for (const pipe of [...idlePipes, ...taken]) pipe.stopWorker();
  }
}

async function snapshotWith(
  root: string,
  files: string[],
  packer: Packer,
  cache: StatCache | undefined,
  pipes: PipeSource,
): Promise<SnapshotResult> {
  const entries: FileEntry[] = [];
  const torn: string[] = [];
  const missing: string[] = [];
  let bytesRead = 0;
  for (const rel of [...files].sort()) {
    const abs = join(root, rel);
    let st: Deno.FileInfo;
    try {
      st = Deno.statSync(abs);
    } catch {
      missing.push(rel);
      continue;
    }
    if (!st.isFile) continue;
    const cached = cache?.get(abs);
    if (cached && sameKey(cached.key, statKey(st))) {
      entries.push({ path: rel, ...cached.entry });
      continue;
    }
    let result: Awaited<ReturnType<typeof readOnce>> | null = null;
    let stable = false;
    for (let attempt = 0; attempt <= TEAR_RETRIES; attempt++) {
      try {
        result = await readOnce(abs, packer, pipes, st.size);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) break;
        throw e;
      }
      bytesRead += result.read;
      // Stable when nothing changed during the read and we read exactly the size we saw.
      if (sameKey(result.before, result.after) && result.read === result.before.size) {
        // A write in the same mtime tick can hide from the fstat after the read; a path stat also
        // catches a file replaced by rename meanwhile (a new inode).
        let again: Deno.FileInfo | null = null;
        try {
          again = Deno.statSync(abs);
        } catch {
          // gone: not stable
        }
        if (again && sameKey(statKey(again), result.after)) {
          stable = true;
          break;
        }
      } else {
        await new Promise((r) => setTimeout(r, 20 * (attempt + 1)));
      }
    }
    if (!result) {
      missing.push(rel);
      continue;
    }
    if (!stable) torn.push(rel);
    else cache?.set(abs, { key: result.after, entry: result.entry });
    entries.push({ path: rel, ...result.entry });
  }
  return { tree: { format: TREE_FORMAT, files: entries }, torn, missing, bytesRead };
}
