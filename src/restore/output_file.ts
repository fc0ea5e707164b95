/**
 * The file a large checkout writes, written off the main thread. Verified ranges of a shared
 * memory are handed to the {@link WriteThread}, which writes them in place (no copy) at their
 * positions; the main thread goes on verifying the next ranges meanwhile. In Deno, node:fs's
 * writes run on the calling thread, so in-thread writes and verification took turns: through the
 * page cache a GiB of writes costs this VM 0.5-2 s of system time, all of it on the main thread.
 *
 * Until the thread has loaded and opened the file, ranges are written in-thread (a small file is
 * done before the thread has loaded). The writes go through the page cache, like `cp`'s: direct
 * writes (`O_DIRECT`, as packs are written) were measured and not kept: with one 4 MiB write in
 * flight the shared disk took 3.5 s for a GiB, against 1.4-1.9 s through the page cache.
 *
 * @module
 */
import * as fs from "node:fs";
import { WriteThread, WriteThreadError } from "../hashing/write_thread.ts";

const writeAt = (fd: number, buf: Uint8Array, pos: number) =>
  new Promise<number>((resolve, reject) =>
    fs.write(fd, buf, 0, buf.length, pos, (e, n) => e ? reject(e) : resolve(n))
  );

/** Write all of `data` at `pos` of `fd`, in-thread. */
async function writeAllAt(fd: number, data: Uint8Array, pos: number): Promise<void> {
  let off = 0;
  while (off < data.length) off += await writeAt(fd, data.subarray(off), pos + off);
}

/** A file being written from ranges of one shared memory. */
export class OutputFile {
  readonly #thread = WriteThread.shared();
  #threadFd: number | null = null;
  #opening: Promise<void>;
  #closed = false;
  /** Bytes the write thread wrote (the rest was written in-thread). */
  threadBytes = 0;

  /**
   * `path` is the file, already open as `fd` for writing (the caller closes `fd` after
   * {@link OutputFile.close}); `memory` holds every range given to {@link OutputFile.write}.
   */
  constructor(readonly path: string, readonly fd: number, readonly memory: WebAssembly.Memory) {
    this.#thread.retain();
    this.#thread.start();
    // A failed open leaves the writes in-thread.
    this.#opening = this.#open().catch(() => {});
  }

  /**
   * Resolves once the write thread has the file open (or failed to open it): writes before that
   * are done in-thread.
   */
  async opened(): Promise<void> {
    await this.#opening;
  }

  async #open(): Promise<void> {
    const thread = this.#thread;
    await thread.whenReady();
    if (!thread.ready || this.#closed) return;
    const fd = await thread.open(this.path, false);
    if (this.#closed) await thread.close(fd).catch(() => {});
    else this.#threadFd = fd;
  }

  /** Write `view` (a range of {@link OutputFile.memory}) at `pos`. */
  async write(view: Uint8Array, pos: number): Promise<void> {
    const fd = this.#thread.ready ? this.#threadFd : null;
    if (fd === null) return await writeAllAt(this.fd, view, pos);
    try {
      await this.#thread.write(fd, this.memory, view.byteOffset, view.length, pos);
      this.threadBytes += view.length;
    } catch (e) {
      // A system error (ENOSPC, ...) is the checkout's; a failed worker: in-thread from now on.
      if (e instanceof WriteThreadError) throw e;
      if (this.#threadFd === fd) this.#threadFd = null;
      await writeAllAt(this.fd, view, pos);
    }
  }

  /** Close the thread's descriptor (call once no write is in flight). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#opening;
    const fd = this.#threadFd;
    this.#threadFd = null;
    if (fd !== null) await this.#thread.close(fd).catch(() => {});
    this.#thread.release();
  }
}
