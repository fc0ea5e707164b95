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

/** Appends chunks to packs in `dir`; calls `onSeal` for each finished pack. */
export class Packer {
  readonly dir: string;
  /** chunk sha256 → where it is stored. Shared with the dedup index. */
  readonly known: Map<string, ChunkLoc>;
  #onSeal: (p: SealedPack) => void | Promise<void>;
  #file: Deno.FsFile | null = null;
  #id = "";
  #path = "";
  #size = 0;
  #buf: Uint8Array[] = [];
  #bufBytes = 0;
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

  /** Store a chunk (or find it already stored) and return its reference. */
  async add(chunk: Uint8Array, hash: string = sha256hex(chunk)): Promise<ChunkRef> {
    const hit = this.known.get(hash);
    if (hit) {
      this.deduped += chunk.length;
      return [hit[0], hit[1], hit[2], hash];
    }
    if (!this.#file) await this.#open();
    const loc: ChunkLoc = [this.#id, this.#size, chunk.length];
    this.known.set(hash, loc);
    this.#buf.push(chunk);
    this.#bufBytes += chunk.length;
    this.#size += chunk.length;
    this.written += chunk.length;
    if (this.#bufBytes >= WRITE_BUFFER) await this.#flush();
    if (this.#size >= PACK_TARGET) await this.seal();
    return [loc[0], loc[1], loc[2], hash];
  }

  async #open(): Promise<void> {
    await Deno.mkdir(this.dir, { recursive: true });
    this.#id = newId();
    this.#path = join(this.dir, `${this.#id}.pack`);
    this.#file = await Deno.open(this.#path, { write: true, createNew: true });
    this.#size = 0;
  }

  async #flush(): Promise<void> {
    if (!this.#file || this.#bufBytes === 0) return;
    let data: Uint8Array;
    if (this.#buf.length === 1) {
      data = this.#buf[0]!;
    } else {
      data = new Uint8Array(this.#bufBytes);
      let o = 0;
      for (const b of this.#buf) {
        data.set(b, o);
        o += b.length;
      }
    }
    this.#buf = [];
    this.#bufBytes = 0;
    let off = 0;
    while (off < data.length) off += await this.#file.write(data.subarray(off));
  }

  /** Finish the current pack (if any) and hand it to `onSeal`. */
  async seal(): Promise<void> {
    if (!this.#file) return;
    await this.#flush();
    await this.#file.syncData().catch(() => {});
    this.#file.close();
    this.#file = null;
    await this.#onSeal({ id: this.#id, path: this.#path, size: this.#size });
  }

  /** Close without sealing and delete the partial pack (used on errors). */
  async abort(): Promise<void> {
    if (!this.#file) return;
    this.#file.close();
    this.#file = null;
    for (const [h, loc] of this.known) if (loc[0] === this.#id) this.known.delete(h);
    await Deno.remove(this.#path).catch(() => {});
  }
}
