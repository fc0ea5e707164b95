/**
 * Snapshot files into a {@link Tree}: read each file, cut it into content-defined chunks, store new
 * chunks through a {@link Packer}. Files whose size, mtime and inode are unchanged since the previous
 * snapshot are not read again. A file that changes while it is read is read again; one that keeps
 * changing is reported as torn.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { Chunker } from "../format/chunker.ts";
import { type ChunkRef, type FileEntry, FORMAT_VERSION, type Tree } from "../format/records.ts";
import { type Packer, sha256hex } from "./packer.ts";

const READ_SIZE = 4 * 1024 * 1024;
const TEAR_RETRIES = 3;

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

/** Content id of a file from its chunk hashes: sha256 over the binary chunk hashes in order. */
export function contentId(chunkHashes: Iterable<string>): string {
  const h = createHash("sha256");
  for (const c of chunkHashes) h.update(Buffer.from(c, "hex"));
  return h.digest("hex");
}

/** Chunk and hash a stream without storing it: what {@link snapshotFiles} would record. */
export async function hashStream(
  stream: ReadableStream<Uint8Array>,
): Promise<{ size: number; hash: string }> {
  const chunker = new Chunker();
  const hashes: string[] = [];
  let size = 0;
  const take = (cs: Uint8Array[]) => {
    for (const c of cs) hashes.push(createHash("sha256").update(c).digest("hex"));
  };
  for await (const block of stream) {
    size += block.length;
    take(chunker.push(block));
  }
  take(chunker.finish());
  return { size, hash: contentId(hashes) };
}

/** Read buffers, reused across files (and snapshots) to avoid allocating and faulting in memory. */
const bufferPool: Uint8Array[] = [];

function takeBuffer(): Uint8Array {
  return bufferPool.pop() ?? new Uint8Array(READ_SIZE);
}

function returnBuffer(buf: Uint8Array): void {
  if (bufferPool.length < 4) bufferPool.push(buf);
}

/** Fill `buf` from the file; returns the bytes read (less than its length only at the end). */
async function readFull(file: Deno.FsFile, buf: Uint8Array): Promise<number> {
  let n = 0;
  while (n < buf.length) {
    const r = await file.read(buf.subarray(n));
    if (r === null) break;
    n += r;
  }
  return n;
}

async function readOnce(
  abs: string,
  packer: Packer,
): Promise<{ entry: Omit<FileEntry, "path">; before: StatKey; after: StatKey; read: number }> {
  using file = await Deno.open(abs, { read: true });
  const st0 = await file.stat();
  const before = statKey(st0);
  const mode = (st0.mode ?? 0o644) & 0o777;
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
 */
export async function snapshotFiles(
  root: string,
  files: string[],
  packer: Packer,
  cache?: StatCache,
): Promise<SnapshotResult> {
  const entries: FileEntry[] = [];
  const torn: string[] = [];
  const missing: string[] = [];
  let bytesRead = 0;
  for (const rel of [...files].sort()) {
    const abs = join(root, rel);
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(abs);
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
        result = await readOnce(abs, packer);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) break;
        throw e;
      }
      bytesRead += result.read;
      // Stable when nothing changed during the read and we read exactly the size we saw.
      if (sameKey(result.before, result.after) && result.read === result.before.size) {
        // A write in the same mtime tick can hide from the fstat after the read; a path stat also
        // catches a file replaced by rename meanwhile (a new inode).
        const again = await Deno.stat(abs).catch(() => null);
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
  return { tree: { format: FORMAT_VERSION, files: entries }, torn, missing, bytesRead };
}

/** Default names never included in a code snapshot. */
export const ALWAYS_EXCLUDED = new Set([
  ".git",
  ".hg",
  ".svn",
  ".rep",
  "__pycache__",
  ".mypy_cache",
  ".pytest_cache",
  ".ruff_cache",
  ".ipynb_checkpoints",
  "node_modules",
  ".venv",
  ".DS_Store",
]);

/**
 * List files under `root` (relative POSIX paths), skipping {@link ALWAYS_EXCLUDED} names, virtualenvs
 * (folders holding `pyvenv.cfg`), symlinks, and any relative path for which `exclude` returns true.
 */
export async function walkFiles(
  root: string,
  exclude: (rel: string, isDir: boolean) => boolean = () => false,
): Promise<string[]> {
  const out: string[] = [];
  async function walk(dirRel: string): Promise<void> {
    const dir = dirRel ? join(root, dirRel) : root;
    let ents: Deno.DirEntry[];
    try {
      ents = await Array.fromAsync(Deno.readDir(dir));
    } catch {
      return;
    }
    if (dirRel && ents.some((e) => e.name === "pyvenv.cfg")) return;
    for (const e of ents) {
      if (ALWAYS_EXCLUDED.has(e.name) || e.isSymlink) continue;
      const rel = dirRel ? `${dirRel}/${e.name}` : e.name;
      if (exclude(rel, e.isDirectory)) continue;
      if (e.isDirectory) await walk(rel);
      else if (e.isFile) out.push(rel);
    }
  }
  await walk("");
  return out.sort();
}
