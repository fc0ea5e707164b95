/**
 * Writes chunks into pack files in a local staging directory. A pack is a plain concatenation of
 * chunks, sealed at {@link PACK_TARGET} bytes, named by a random id, and stored under
 * `packs/<id>`. Chunks already known (in this process or in the chunk index) are not written again.
 *
 * @module
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { WriteThread, WriteThreadError } from "../hashing/write_thread.ts";
import { join } from "node:path";
import { newId } from "../format/ids.ts";
import type { ChunkRef } from "../format/records.ts";
import type { PackChunk } from "../format/pack_index.ts";

/** A pack is sealed once it holds this many bytes. */
export const PACK_TARGET = 64 * 1024 * 1024;
const WRITE_BUFFER = 4 * 1024 * 1024;
/**
 * Buffer writes in flight (in all packs of a packer) before {@link Packer.add} waits. Four rather
 * than two: with the disk shared (the bench machine), 1 GiB snapshots into direct-written packs
 * took 5.17 s against 5.78 s and 5.05 s against 5.54 s (medians of 6 alternating pairs each, load
 * 7-8; faster in 10 of 12 pairs, the same CPU time), for 8 MiB more buffers.
 */
const MAX_INFLIGHT = 4;
/** Direct writes need offsets, lengths and memory aligned to the device's block (at most this). */
const ALIGN = 4096;

/** A sealed pack, ready to upload. */
export interface SealedPack {
  id: string;
  path: string;
  size: number;
  /** The chunks written to it, in offset order (what its pack index lists). */
  chunks: PackChunk[];
  /** The same chunks as the references {@link Packer.add} returned (shared, not copies). */
  refs: ChunkRef[];
}

/**
 * Location of a known chunk. The packer stores its own chunks' {@link ChunkRef}s as their
 * locations (a reference is its location followed by the hash): one array per chunk, shared by
 * the map of known chunks, the pack's chunk list and the tree, instead of three.
 */
export type ChunkLoc = [pack: string, offset: number, length: number, ...hash: string[]];

/** Options of a {@link Packer}. */
export interface PackerOptions {
  /**
   * Write packs with `O_DIRECT` where the system and filesystem allow it (Linux; not tmpfs): the
   * bytes go from rep's buffers to the disk without passing through the page cache, which costs
   * far less CPU and keeps a checkpoint from evicting the training's cached data. Right for packs
   * that stay where they are written (a local store); wrong for packs read back soon (staged for
   * an upload). Falls back to ordinary writes wherever direct writes are refused.
   * @default false
   */
  direct?: boolean;
}

/** Hex sha256 of bytes. */
export function sha256hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Write buffers, page-aligned (each the memory of its own WebAssembly.Memory, which starts on a
 * page), so that direct writes can use them; reused across packs and packers. A packer holds at
 * most {@link MAX_INFLIGHT} + 2: the ones being written, the one being filled, and the last one of
 * a pack being sealed.
 */
const freeBuffers: Uint8Array[] = [];

/** The shared memory behind each write buffer (the write thread reads it in place). */
const memoryOf = new WeakMap<ArrayBufferLike, WebAssembly.Memory>();

function takeBuffer(): Uint8Array {
  const free = freeBuffers.pop();
  if (free) return free;
  const pages = WRITE_BUFFER / 65536;
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  memoryOf.set(memory.buffer, memory);
  return new Uint8Array(memory.buffer);
}

function giveBuffer(buf: Uint8Array): void {
  if (freeBuffers.length < MAX_INFLIGHT + 2) freeBuffers.push(buf);
}

/** `O_DIRECT`, where Node's constants have it (Linux). */
const O_DIRECT: number | undefined = (fs.constants as Record<string, number>).O_DIRECT;

function writeAt(fd: number, buf: Uint8Array, pos: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.write(fd, buf, 0, buf.length, pos, (e, n) => e ? reject(e) : resolve(n))
  );
}

const fdatasync = (fd: number) =>
  new Promise<void>((resolve, reject) => fs.fdatasync(fd, (e) => e ? reject(e) : resolve()));
const ftruncate = (fd: number, len: number) =>
  new Promise<void>((resolve, reject) => fs.ftruncate(fd, len, (e) => e ? reject(e) : resolve()));
const close = (fd: number) => new Promise<void>((resolve) => fs.close(fd, () => resolve()));

/**
 * An open pack file: written with direct writes while they work, else through the page cache.
 * Direct writes go through the {@link WriteThread} once it has loaded (from the second write of a
 * pack on: small packs never start it), in-thread before that or if it fails.
 */
class PackFile {
  /** The direct descriptor (or null) and whether it is still used; the ordinary one, once needed. */
  #direct: number | null;
  #useDirect: boolean;
  #plain: number | null;
  /** The write thread's descriptor of this file, once it has opened it; its opening. */
  #threadFd: number | null = null;
  #threadOpen: Promise<void> | null = null;
  #writes = 0;

  private constructor(readonly path: string, direct: number | null, plain: number | null) {
    this.#direct = direct;
    this.#useDirect = direct !== null;
    this.#plain = plain;
    // Keeps the write thread running from one pack to the next (released by close).
    if (direct !== null) WriteThread.shared().retain();
  }

  static create(path: string, direct: boolean): PackFile {
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL;
    if (direct && O_DIRECT !== undefined) {
      try {
        return new PackFile(path, fs.openSync(path, flags | O_DIRECT, 0o644), null);
      } catch (e) {
        // EINVAL: this filesystem has no direct I/O. Anything else: the plain open reports it.
        if ((e as { code?: string }).code !== "EINVAL") throw e;
      }
    }
    return new PackFile(path, null, fs.openSync(path, flags, 0o644));
  }

  get isDirect(): boolean {
    return this.#useDirect;
  }

  #plainFd(): number {
    return this.#plain ??= fs.openSync(this.path, fs.constants.O_WRONLY);
  }

  /**
   * Write all of `data` at `pos`. In direct mode `pos` and the memory must be aligned and the
   * length a multiple of {@link ALIGN}; a direct write that is refused is done the ordinary way,
   * and so is everything after it. (The direct descriptor stays open until {@link PackFile.close}:
   * other writes may still be using it, and a descriptor closed under them could be reused.)
   */
  async write(data: Uint8Array, pos: number): Promise<void> {
    const thread = WriteThread.shared();
    if (this.#useDirect && (this.#writes++ > 0 || thread.running)) {
      if (!this.#threadOpen) this.#openInThread();
      if (thread.ready) await this.#threadOpen;
      const memory = memoryOf.get(data.buffer);
      if (this.#threadFd !== null && memory && thread.ready) {
        try {
          await thread.write(
            this.#threadFd,
            memory,
            data.byteOffset,
            data.length,
            pos,
          );
          return;
        } catch (e) {
          // A refused direct write: the ordinary way from now on (below). The worker failed: the
          // same write in-thread.
          if (e instanceof WriteThreadError && e.code === "EINVAL") this.#useDirect = false;
          else if (e instanceof WriteThreadError) throw e;
        }
      }
    }
    let off = 0;
    while (off < data.length) {
      const direct = this.#useDirect;
      const fd = direct ? this.#direct! : this.#plainFd();
      try {
        off += await writeAt(fd, data.subarray(off), pos + off);
      } catch (e) {
        if (!direct || (e as { code?: string }).code !== "EINVAL") throw e;
        this.#useDirect = false;
      }
    }
  }

  /** Have the write thread open this file (started if need be); its writes go there once open. */
  #openInThread(): void {
    const thread = WriteThread.shared();
    thread.start();
    this.#threadOpen = thread.open(this.path, true).then(
      (fd) => {
        if (this.#direct === null) thread.close(fd).catch(() => {}); // closed meanwhile
        else this.#threadFd = fd;
      },
      () => {}, // in-thread writes, as before
    );
  }

  /** Cut the file to `size` (after a padded direct write) and make it durable. */
  async finish(size: number, padded: boolean): Promise<void> {
    await this.#threadOpen;
    if (this.#threadFd !== null && this.#plain === null && WriteThread.shared().ready) {
      try {
        await WriteThread.shared().finish(this.#threadFd, padded ? size : null);
        return;
      } catch (e) {
        if (e instanceof WriteThreadError) throw e;
        // The worker failed: in-thread below.
      }
    }
    const fd = this.#useDirect ? this.#direct! : this.#plainFd();
    if (padded) await ftruncate(fd, size);
    // The bytes must be on disk before the pack is referenced: a crash must not leave a record
    // pointing at data still in a cache.
    if (this.#plain !== null) await fdatasync(this.#plain);
    if (this.#direct !== null) await fdatasync(this.#direct);
  }

  /** Close the file (once no write is in flight). */
  async close(): Promise<void> {
    await this.#threadOpen;
    const threadFd = this.#threadFd;
    this.#threadFd = null;
    if (threadFd !== null) await WriteThread.shared().close(threadFd).catch(() => {});
    const fds = [this.#direct, this.#plain];
    if (this.#direct !== null) WriteThread.shared().release();
    this.#direct = this.#plain = null;
    this.#useDirect = false;
    for (const fd of fds) if (fd !== null) await close(fd);
  }
}

/**
 * Appends chunks to packs in `dir`; calls `onSeal` for each finished pack.
 *
 * New chunks are copied into write buffers, so the caller may reuse a chunk's memory as soon as
 * {@link Packer.add} returns (before its promise settles). Buffers are written in the background
 * (direct writes by the write thread, src/hashing/write_thread.ts, once it has loaded),
 * at most {@link MAX_INFLIGHT} at a time, and `add` waits only when that many are in flight.
 * A full pack is synced, closed and handed to `onSeal` in the background while the next pack fills;
 * {@link Packer.seal} waits for all of that, so after it returns every pack holding an added chunk
 * has been handed to `onSeal`.
 */
export class Packer {
  readonly dir: string;
  /** chunk sha256 → where it is stored. Shared with the dedup index. */
  readonly known: Map<string, ChunkLoc>;
  #onSeal: (p: SealedPack) => void | Promise<void>;
  readonly #direct: boolean;
  #file: PackFile | null = null;
  #opening: Promise<void> | null = null;
  #id = "";
  #size = 0;
  /** Chunks of the current pack, for its index. */
  #chunks: ChunkRef[] = [];
  /** Bytes of the pack handed to writes so far (a multiple of the buffer size). */
  #flushed = 0;
  /** The buffer being filled. */
  #buf: Uint8Array | null = null;
  #bufBytes = 0;
  /** Writes in flight on the current pack. */
  #inflight: Promise<void>[] = [];
  /** Writes in flight on every pack (the current one and those being sealed). */
  #writes = new Set<Promise<void>>();
  /** Packs being synced and handed over in the background. */
  #sealing = new Set<Promise<void>>();
  #error: unknown = null;
  /** Bytes of new chunk data written (not deduplicated). */
  written = 0;
  /** Bytes that matched a known chunk. */
  deduped = 0;

  constructor(
    dir: string,
    known: Map<string, ChunkLoc>,
    onSeal: (p: SealedPack) => void | Promise<void>,
    options: PackerOptions = {},
  ) {
    this.dir = dir;
    this.known = known;
    this.#onSeal = onSeal;
    this.#direct = options.direct ?? false;
  }

  /**
   * Store a chunk (or find it already stored) and return its reference. The chunk's bytes are
   * copied before this returns.
   */
  add(chunk: Uint8Array, hash: string = sha256hex(chunk)): Promise<ChunkRef> {
    if (this.#error) return Promise.reject(this.#error);
    const hit = this.known.get(hash);
    if (hit) {
      this.deduped += chunk.length;
      // The packer's own chunks are stored as their references: hand out the same array.
      const ref: ChunkRef = hit.length === 4 && hit[3] === hash
        ? hit as ChunkRef
        : [hit[0], hit[1], hit[2], hash];
      return Promise.resolve(ref);
    }
    if (!this.#file) {
      const copy = chunk.slice();
      this.#opening ??= this.#open().finally(() => {
        this.#opening = null;
      });
      return this.#opening.then(() => this.add(copy, hash));
    }
    const ref: ChunkRef = [this.#id, this.#size, chunk.length, hash];
    this.known.set(hash, ref);
    this.#chunks.push(ref);
    this.#append(chunk);
    this.#size += chunk.length;
    this.written += chunk.length;
    if (this.#size >= PACK_TARGET) this.#sealInBackground();
    if (this.#writes.size >= MAX_INFLIGHT) return this.#waitWrite(ref);
    return Promise.resolve(ref);
  }

  async #waitWrite(ref: ChunkRef): Promise<ChunkRef> {
    while (this.#writes.size >= MAX_INFLIGHT) await Promise.race(this.#writes);
    if (this.#error) throw this.#error;
    return ref;
  }

  /** Copy bytes into the write buffer(s), starting writes of full buffers. */
  #append(chunk: Uint8Array): void {
    let o = 0;
    while (o < chunk.length) {
      this.#buf ??= takeBuffer();
      const n = Math.min(chunk.length - o, WRITE_BUFFER - this.#bufBytes);
      this.#buf.set(n === chunk.length ? chunk : chunk.subarray(o, o + n), this.#bufBytes);
      this.#bufBytes += n;
      o += n;
      if (this.#bufBytes === WRITE_BUFFER) this.#startWrite();
    }
  }

  /**
   * Write the filled part of the current buffer at its place in the pack. Only the last write of
   * a pack is partial: in direct mode it is padded with zeros to a whole block (see
   * {@link PackFile.finish}). Returns whether it was padded.
   */
  #startWrite(): boolean {
    const file = this.#file;
    const buf = this.#buf;
    const len = this.#bufBytes;
    this.#buf = null;
    this.#bufBytes = 0;
    if (!buf) return false;
    if (!file || len === 0) {
      giveBuffer(buf);
      return false;
    }
    const pos = this.#flushed;
    this.#flushed += len;
    let out = len;
    if (file.isDirect && len % ALIGN) {
      out = Math.ceil(len / ALIGN) * ALIGN;
      buf.fill(0, len, out);
    }
    const inflight = this.#inflight;
    const p: Promise<void> = (async () => {
      if (this.#error) return;
      await file.write(buf.subarray(0, out), pos);
    })().catch((e) => {
      this.#error ??= e;
    }).finally(() => {
      inflight.splice(inflight.indexOf(p), 1);
      this.#writes.delete(p);
      giveBuffer(buf);
    });
    inflight.push(p);
    this.#writes.add(p);
    return out !== len;
  }

  async #open(): Promise<void> {
    await Deno.mkdir(this.dir, { recursive: true });
    const id = newId();
    this.#file = PackFile.create(join(this.dir, `${id}.pack`), this.#direct);
    this.#id = id;
    this.#size = 0;
    this.#chunks = [];
    this.#flushed = 0;
    this.#inflight = [];
  }

  /** Detach the current pack and finish it (write, sync, close, onSeal) without waiting. */
  #sealInBackground(): void {
    const file = this.#file;
    if (!file) return;
    const padded = this.#startWrite();
    const writes = this.#inflight;
    const sealed: SealedPack = {
      id: this.#id,
      path: file.path,
      size: this.#size,
      chunks: this.#chunks.map((r) => [r[3], r[1], r[2]]),
      refs: this.#chunks,
    };
    this.#file = null;
    this.#inflight = [];
    const p: Promise<void> = (async () => {
      try {
        await Promise.all(writes);
        if (this.#error) throw this.#error;
        await file.finish(sealed.size, padded);
      } finally {
        await file.close();
      }
      await this.#onSeal(sealed);
    })().catch(async (e) => {
      this.#error ??= e;
      // The pack is not stored: its chunks must not be found by later snapshots (dedup).
      this.#forget(sealed.id);
      await Deno.remove(sealed.path).catch(() => {});
    }).finally(() => {
      this.#sealing.delete(p);
    });
    this.#sealing.add(p);
  }

  /** Finish the current pack (if any) and hand it to `onSeal`; also waits for earlier packs. */
  async seal(): Promise<void> {
    if (this.#opening) await this.#opening.catch(() => {});
    this.#sealInBackground();
    while (this.#sealing.size) await Promise.all(this.#sealing);
    if (this.#error) {
      const e = this.#error;
      this.#error = null;
      throw e;
    }
  }

  /** Close without sealing and delete the partial pack (used on errors). */
  async abort(): Promise<void> {
    if (this.#opening) await this.#opening.catch(() => {});
    while (this.#sealing.size) await Promise.all(this.#sealing);
    this.#error = null;
    const file = this.#file;
    if (!file) return;
    this.#file = null;
    if (this.#buf) giveBuffer(this.#buf);
    this.#buf = null;
    this.#bufBytes = 0;
    const writes = this.#inflight;
    this.#inflight = [];
    await Promise.all(writes);
    await file.close();
    this.#forget(this.#id);
    await Deno.remove(file.path).catch(() => {});
  }

  /** Packs that failed to be written (their chunks are forgotten; nothing may refer to them). */
  readonly failed: Set<string> = new Set();

  /** Forget the chunks of pack `id` (it will not be stored). */
  #forget(id: string): void {
    this.failed.add(id);
    for (const [h, loc] of this.known) if (loc[0] === id) this.known.delete(h);
  }
}
