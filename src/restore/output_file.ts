/**
 * The file a large checkout writes, written off the main thread. In Deno, node:fs's writes run on
 * the calling thread, so a checkout's writes and its verification took turns on the main thread
 * (through the page cache a GiB of writes costs this VM 0.5-2 s of system time). Deno's own
 * `FsFile.write` runs on a runtime I/O thread, and writes a view of a shared memory in place: the
 * main thread hands each verified range over and goes on verifying the next ones.
 *
 * Writes are done one at a time, in the order they are given (each a seek, then writes until the
 * whole range is written); every write has finished when {@link OutputFile.close} returns.
 *
 * Measured and not kept: the file-writing worker of checkpoints (src/hashing/write_thread.ts) did
 * the same at the cost of a second isolate (about 27 MiB, and 0.1 s to load), and its direct
 * (`O_DIRECT`) writes took 3.5 s per GiB on the shared disk, against 1.4-1.9 s through the page
 * cache.
 *
 * @module
 */

/** A file being written from ranges of memory, off the main thread. */
export class OutputFile {
  readonly #file: Deno.FsFile;
  /** The last write given (never rejects: each caller gets its own write's error). */
  #tail: Promise<void> = Promise.resolve();
  #closed = false;

  /** Open `path` (an existing file) for writing. */
  constructor(readonly path: string) {
    this.#file = Deno.openSync(path, { write: true });
  }

  /**
   * Write all of `view` at `pos`, after the writes given before it. The bytes must not change
   * until the promise settles.
   */
  write(view: Uint8Array, pos: number): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("OutputFile is closed"));
    const file = this.#file;
    const p = this.#tail.then(async () => {
      await file.seek(pos, Deno.SeekMode.Start);
      let off = 0;
      while (off < view.length) off += await file.write(view.subarray(off));
    });
    this.#tail = p.catch(() => {});
    return p;
  }

  /** Wait for the writes given, then close the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#tail;
    this.#file.close();
  }
}
