/**
 * Snapshot files into a {@link Tree}: read each file, cut it into content-defined chunks, store new
 * chunks through a {@link Packer}. Files whose size, mtime and inode are unchanged since the previous
 * snapshot are not read again. A file that changes while it is read is read again; one that keeps
 * changing is reported as torn.
 *
 * @module
 */
import { join } from "node:path";
import { Chunker, findCut, MAX_CHUNK } from "../format/chunker.ts";
import { type ChunkRef, type FileEntry, type Tree, TREE_FORMAT } from "../format/records.ts";
import { type Packer, sha256hex } from "./packer.ts";

export { contentId, WORKER_MIN_SIZE };
import { Hasher, Queue, WORKER_MIN_SIZE, workerByDefault } from "../hashing/hasher.ts";
import { contentId } from "../format/content_id.ts";

const READ_SIZE = 4 * 1024 * 1024;
const TEAR_RETRIES = 3;
/**
 * Read buffers per large file: one being read, one being chunked, one being packed, and with a
 * worker one more being hashed.
 */
const PIPELINE_BUFFERS = 4;
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

/** Read buffers, reused across files (and snapshots) to avoid allocating and faulting in memory. */
const bufferPool: Uint8Array[] = [];

function takeBuffer(): Uint8Array {
  return bufferPool.pop() ?? new Uint8Array(READ_SIZE);
}

function returnBuffer(buf: Uint8Array): void {
  // A buffer lost to a worker (detached) or of another size is dropped.
  if (bufferPool.length < 4 && buf.length === READ_SIZE) bufferPool.push(buf);
}

/**
 * Fill `buf` from the file; returns the bytes read (less than its length only at the end).
 * Synchronous reads: for multi-MiB blocks Deno's async read costs about three times as much CPU
 * (measured 0.97 s against 0.35 s per GiB), and one block blocks the event loop for a millisecond
 * or two only.
 */
// deno-lint-ignore require-await
async function readFull(file: Deno.FsFile, buf: Uint8Array): Promise<number> {
  let n = 0;
  while (n < buf.length) {
    const r = file.readSync(buf.subarray(n));
    if (r === null) break;
    n += r;
  }
  return n;
}

/** Hex sha256 of `ranges` (start, end pairs) of `buf`, in-thread. */
function hashRanges(buf: Uint8Array, ranges: number[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < ranges.length; i += 2) {
    out.push(sha256hex(buf.subarray(ranges[i], ranges[i + 1])));
  }
  return out;
}

/** A block of a file on its way through {@link chunkPipelined}. */
interface Block {
  /** Resolves when the chunks are hashed, with the buffer (handed back by the worker). */
  hashed: Promise<{ buf: Uint8Array; hashes: string[] }>;
  /** The chunks: start, end pairs in the buffer. */
  ranges: number[];
}

/**
 * Pipeline buffers: {@link MAX_CHUNK} bytes of headroom, then {@link READ_SIZE} bytes read from the
 * file. The undecided tail of the previous block is copied into the headroom, just before the new
 * data, so every chunk is one range of one buffer: nothing else is allocated per block, and the
 * worker hashes all of them.
 */
const PIPE_SIZE = MAX_CHUNK + READ_SIZE;
const pipePool: Uint8Array[] = [];

/**
 * Read, chunk, hash and pack a large file as a pipeline over a few reused buffers: the next block is
 * read (off the main thread) while this one is chunked on the main thread and the one before is
 * hashed in the worker (or, when the worker is behind or not loaded yet, in-thread); blocks are
 * added to the packer in order. Chunk boundaries are those of {@link Chunker}.
 */
async function chunkPipelined(
  file: Deno.FsFile,
  packer: Packer,
  hasher: Hasher | null,
): Promise<{ size: number; chunks: ChunkRef[] }> {
  const chunks: ChunkRef[] = [];
  const free = new Queue<Uint8Array>();
  for (let i = hasher ? 0 : 1; i < PIPELINE_BUFFERS; i++) {
    free.put(pipePool.pop() ?? new Uint8Array(PIPE_SIZE));
  }
  const blocks = new Queue<Block>();
  const owned = new Set<Promise<unknown>>();
  // The undecided tail of the last block (always shorter than MAX_CHUNK).
  const tail = new Uint8Array(MAX_CHUNK);
  let tailLen = 0;
  let size = 0;
  let failed = false;
  const produce = async () => {
    // One read ahead: the next block is read while this one is chunked and hashed.
    let reading: Promise<number> | null = null;
    try {
      let buf = await free.take();
      if (!buf || failed) return;
      reading = readFull(file, buf.subarray(MAX_CHUNK));
      for (;;) {
        const n: number = await reading!;
        reading = null;
        if (failed) {
          free.put(buf);
          return;
        }
        size += n;
        const final = n < READ_SIZE; // a short read is the end of the file
        let next: Uint8Array | null = null;
        if (!final) {
          next = await free.take();
          if (!next || failed) {
            free.put(buf);
            if (next) free.put(next);
            return;
          }
          reading = readFull(file, next.subarray(MAX_CHUNK));
        }
        let start = MAX_CHUNK - tailLen;
        buf.set(tail.subarray(0, tailLen), start);
        const end = MAX_CHUNK + n;
        const ranges: number[] = [];
        while (start < end) {
          const cut = findCut(buf, start, end, final);
          if (cut < 0) break;
          ranges.push(start, cut);
          start = cut;
        }
        tailLen = end - start;
        tail.set(buf.subarray(start, end));
        let hashed: Block["hashed"];
        if (hasher?.ready && hasher.pending < WORKER_BACKLOG) {
          hashed = hasher.hash(buf, ranges);
          owned.add(hashed);
          hashed.catch(() => {}).finally(() => owned.delete(hashed));
        } else {
          hashed = Promise.resolve({ buf, hashes: hashRanges(buf, ranges) });
        }
        blocks.put({ hashed, ranges });
        if (!next) return;
        buf = next;
      }
    } finally {
      // Never leave a read in flight (its file is about to close).
      if (reading) await reading.catch(() => 0);
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
      const r = blk.ranges;
      for (let i = 0; i < hashes.length; i++) {
        chunks.push(await packer.add(buf.subarray(r[2 * i], r[2 * i + 1]), hashes[i]));
      }
      free.put(buf);
    }
    await producing;
  } finally {
    failed = true;
    free.close();
    // Wait for the read in flight and for the worker to hand back its buffers.
    await producing.catch(() => {});
    const left = new Set<Promise<{ buf: Uint8Array }>>(owned as Set<Promise<{ buf: Uint8Array }>>);
    for (const blk of blocks.drain()) left.add(blk.hashed);
    const bufs = free.drain();
    for (const r of await Promise.all([...left].map((p) => p.catch(() => null)))) {
      if (r) bufs.push(r.buf);
    }
    for (const buf of bufs) {
      // A buffer lost to a closed worker comes back detached (length 0): dropped.
      if (buf.length === PIPE_SIZE && pipePool.length < PIPELINE_BUFFERS) pipePool.push(buf);
    }
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

async function readOnce(
  abs: string,
  packer: Packer,
  hasher: (() => Hasher) | null,
  seenSize: number,
): Promise<ReadResult> {
  if (seenSize < SMALL_FILE) return await readSmall(abs, packer);
  using file = await Deno.open(abs, { read: true });
  const st0 = await file.stat();
  const before = statKey(st0);
  const mode = (st0.mode ?? 0o644) & 0o777;
  if (st0.size >= WORKER_MIN_SIZE) {
    const { size, chunks } = await chunkPipelined(file, packer, hasher ? hasher() : null);
    const after = statKey(await file.stat());
    return {
      entry: { size, hash: contentId(chunks.map((c) => c[3])), mode, chunks },
      before,
      after,
      read: size,
    };
  }
  const chunker = new Chunker();
  const chunks: ChunkRef[] = [];
  let size = 0;
  // Two buffers: the next block is read (off the main thread) while this one is chunked, hashed
  // and copied into the packer; a buffer is reused only once the packer has copied its chunks.
  const bufs = [takeBuffer(), takeBuffer()] as const;
  let pending: Promise<number> | null = readFull(file, bufs[0]);
  let cur = 0;
  try {
    while (pending) {
      const n: number = await pending;
      pending = null;
      const buf = bufs[cur]!;
      if (n === buf.length) {
        cur ^= 1;
        pending = readFull(file, bufs[cur]!);
      }
      if (n === 0) break;
      size += n;
      for (const c of chunker.push(buf.subarray(0, n))) {
        chunks.push(await packer.add(c, sha256hex(c)));
      }
    }
    for (const c of chunker.finish()) chunks.push(await packer.add(c, sha256hex(c)));
  } finally {
    // Never hand back a buffer a read is still filling.
    if (pending) await (pending as Promise<number>).catch(() => 0);
    returnBuffer(bufs[0]);
    returnBuffer(bufs[1]);
  }
  const after = statKey(await file.stat());
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
 * Files of {@link WORKER_MIN_SIZE} or more go through a pipeline of reused buffers and, with
 * `options.worker` true (default: {@link workerByDefault}), are hashed in a worker started for the
 * first of them and stopped before this returns. A {@link Hasher} given as `options.worker` is used
 * (and left open) instead of a new one.
 */
export async function snapshotFiles(
  root: string,
  files: string[],
  packer: Packer,
  cache?: StatCache,
  options: { worker?: boolean | Hasher } = {},
): Promise<SnapshotResult> {
  const given = options.worker instanceof Hasher ? options.worker : null;
  if (given || !(options.worker ?? workerByDefault())) {
    return snapshotWith(root, files, packer, cache, given && (() => given));
  }
  let hasher: Hasher | null = null;
  try {
    return await snapshotWith(root, files, packer, cache, () => (hasher ??= new Hasher()));
  } finally {
    (hasher as Hasher | null)?.close();
  }
}

async function snapshotWith(
  root: string,
  files: string[],
  packer: Packer,
  cache: StatCache | undefined,
  hasher: (() => Hasher) | null,
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
        result = await readOnce(abs, packer, hasher, st.size);
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
