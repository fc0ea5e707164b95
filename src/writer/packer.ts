/**
 * Writes chunks into pack files in a local staging directory. A pack is a plain concatenation of
 * chunks, sealed at {@link PACK_TARGET} bytes, named by a random id, and stored under
 * `packs/<id>`. Chunks already known (in this process or in the chunk index) are not written again.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { newId } from "../format/ids.ts";
import type { ChunkRef } from "../format/records.ts";

/** A pack is sealed once it holds this many bytes. */
export const PACK_TARGET = 64 * 1024 * 1024;
const WRITE_BUFFER = 4 * 1024 * 1024;
/** Buffer writes in flight per pack before {@link Packer.add} waits. */
const MAX_INFLIGHT = 2;

/** A sealed pack, ready to upload. */
export interface SealedPack {
  id: string;
  path: string;
  size: number;
}

/** Location of a known chunk. */
export type ChunkLoc = [pack: string, offset: number, length: number];

/** Hex sha256 of bytes. */
export function sha256hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Appends chunks to packs in `dir`; calls `onSeal` for each finished pack.
 *
 * New chunks are copied into write buffers, so the caller may reuse a chunk's memory as soon as
 * {@link Packer.add} returns (before its promise settles). Buffers are written in the background,
 * at most two per pack at a time, and `add` waits only when that many are in flight.
 * A full pack is synced, closed and handed to `onSeal` in the background while the next pack fills;
 * {@link Packer.seal} waits for all of that, so after it returns every pack holding an added chunk
 * has been handed to `onSeal`.
 */
export class Packer {
  readonly dir: string;
  /** chunk sha256 → where it is stored. Shared with the dedup index. */
  readonly known: Map<string, ChunkLoc>;
  #onSeal: (p: SealedPack) => void | Promise<void>;
  #file: Deno.FsFile | null = null;
  #opening: Promise<void> | null = null;
  #id = "";
  #path = "";
  #size = 0;
  /** The buffer being filled. */
  #buf: Uint8Array | null = null;
  #bufBytes = 0;
  /** Written buffers, free for reuse. */
  #free: Uint8Array[] = [];
  /** Writes in flight on the current pack, oldest first; each waits for the one before it. */
  #inflight: Promise<void>[] = [];
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
  ) {
    this.dir = dir;
    this.known = known;
    this.#onSeal = onSeal;
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
      return Promise.resolve([hit[0], hit[1], hit[2], hash]);
    }
    if (!this.#file) {
      const copy = chunk.slice();
      this.#opening ??= this.#open().finally(() => {
        this.#opening = null;
      });
      return this.#opening.then(() => this.add(copy, hash));
    }
    const loc: ChunkLoc = [this.#id, this.#size, chunk.length];
    this.known.set(hash, loc);
    this.#append(chunk);
    this.#size += chunk.length;
    this.written += chunk.length;
    const ref: ChunkRef = [loc[0], loc[1], loc[2], hash];
    if (this.#size >= PACK_TARGET) this.#sealInBackground();
    if (this.#inflight.length >= MAX_INFLIGHT) return this.#waitWrite(ref);
    return Promise.resolve(ref);
  }

  async #waitWrite(ref: ChunkRef): Promise<ChunkRef> {
    await this.#inflight[0];
    if (this.#error) throw this.#error;
    return ref;
  }

  /** Copy bytes into the write buffer(s), starting writes of full buffers. */
  #append(chunk: Uint8Array): void {
    let o = 0;
    while (o < chunk.length) {
      this.#buf ??= this.#free.pop() ?? new Uint8Array(WRITE_BUFFER);
      const n = Math.min(chunk.length - o, WRITE_BUFFER - this.#bufBytes);
      this.#buf.set(n === chunk.length ? chunk : chunk.subarray(o, o + n), this.#bufBytes);
      this.#bufBytes += n;
      o += n;
      if (this.#bufBytes === WRITE_BUFFER) this.#startWrite();
    }
  }

  /** Write the filled part of the current buffer after the writes in flight. */
  #startWrite(): void {
    const file = this.#file;
    const buf = this.#buf;
    const len = this.#bufBytes;
    this.#buf = null;
    this.#bufBytes = 0;
    if (!file || !buf || len === 0) return;
    const inflight = this.#inflight;
    const prev = inflight[inflight.length - 1];
    const p = (async () => {
      if (prev) await prev;
      if (this.#error) return;
      const data = buf.subarray(0, len);
      let off = 0;
      while (off < len) off += await file.write(data.subarray(off));
    })().catch((e) => {
      this.#error ??= e;
    }).finally(() => {
      inflight.shift();
      if (this.#free.length < MAX_INFLIGHT) this.#free.push(buf);
    });
    inflight.push(p);
  }

  async #open(): Promise<void> {
    await Deno.mkdir(this.dir, { recursive: true });
    const id = newId();
    const path = join(this.dir, `${id}.pack`);
    const file = await Deno.open(path, { write: true, createNew: true });
    this.#id = id;
    this.#path = path;
    this.#file = file;
    this.#size = 0;
    this.#inflight = [];
  }

  /** Detach the current pack and finish it (write, sync, close, onSeal) without waiting. */
  #sealInBackground(): void {
    const file = this.#file;
    if (!file) return;
    this.#startWrite();
    const writes = this.#inflight;
    const last = writes[writes.length - 1];
    const sealed: SealedPack = { id: this.#id, path: this.#path, size: this.#size };
    this.#file = null;
    this.#inflight = [];
    const p: Promise<void> = (async () => {
      try {
        if (last) await last;
        if (this.#error) throw this.#error;
        await file.syncData().catch(() => {});
      } finally {
        file.close();
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
    this.#buf = null;
    this.#bufBytes = 0;
    const writes = this.#inflight;
    this.#inflight = [];
    await writes[writes.length - 1];
    file.close();
    this.#forget(this.#id);
    await Deno.remove(this.#path).catch(() => {});
  }

  /** Forget the chunks of pack `id` (it will not be stored). */
  #forget(id: string): void {
    for (const [h, loc] of this.known) if (loc[0] === id) this.known.delete(h);
  }
}
