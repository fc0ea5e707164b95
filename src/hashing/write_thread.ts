/**
 * File writes on another thread. In Deno, node:fs's callback and promise writes (`fs.write`,
 * `FileHandle.write`) run on the calling thread: a 4 MiB direct write blocks the main thread for
 * the whole transfer to disk (measured: 0.61 s of 0.61 s for 256 MiB), so a checkpoint's writes did
 * not overlap its chunking and hashing at all. Deno's own async file writes do run off-thread, but
 * cannot open a file with `O_DIRECT`, and through the page cache this VM spends 2-3 s of system
 * time per GiB. So a small worker does the direct writes: it opens the file itself (descriptors are
 * not shared between Deno's isolates), writes ranges of shared memories at positions, truncates,
 * syncs and closes, and the main thread only posts requests.
 *
 * One {@link WriteThread} serves the process ({@link WriteThread.shared}). Its worker is started by
 * {@link WriteThread.start} and stopped when its last user (see {@link WriteThread.retain}) is done
 * and nothing is pending; it keeps the process alive only while a request is pending (so a file
 * left open by a failed caller cannot hold the process, and no write is cut short). Until it has loaded ({@link WriteThread.ready}), callers write
 * in-thread. Errors keep their system code (`EINVAL` when a direct write is refused).
 *
 * `deno compile` must include the worker module (`--include src/hashing/write_worker.ts`).
 *
 * @module
 */
import { Worker } from "node:worker_threads";
import type { WriteAnswer, WriteRequest } from "./write_worker.ts";

const READY = "ready"; // what the worker sends once loaded (write_worker.ts)

/** A failed request, with the system error's code where there was one. */
export class WriteThreadError extends Error {
  /** The system error code (EINVAL, ENOSPC, ...), if any. */
  readonly code: string | undefined;
  constructor(message: string, code?: string) {
    super(message);
    this.name = "WriteThreadError";
    this.code = code;
  }
}

type Waiter = { resolve: (v: number) => void; reject: (e: unknown) => void };
/** A request without its id. */
type Request = WriteRequest extends infer R ? R extends { id: number } ? Omit<R, "id"> : never
  : never;

let shared: WriteThread | null = null;

/** A worker that opens, writes, syncs and closes files for the main thread. */
export class WriteThread {
  #worker: Worker | null = null;
  #ready = false;
  #waiting = new Map<number, Waiter>();
  #next = 0;
  #users = 0;
  /** Bytes written through the worker so far (all the workers this thread has run). */
  bytesWritten = 0;
  #broken: Error | null = null;

  /** The process's write thread (created on first use; its worker is not started). */
  static shared(): WriteThread {
    return shared ??= new WriteThread();
  }

  /** Whether the worker is running and loaded: requests are then answered without delay. */
  get ready(): boolean {
    return this.#ready && !this.#broken;
  }

  /** Whether a worker is running (loaded or not). */
  get running(): boolean {
    return this.#worker !== null;
  }

  /** Start the worker if it is not running (it loads in the background; see ready). */
  start(): void {
    if (this.#worker || this.#broken) return;
    const worker = new Worker(new URL("./write_worker.ts", import.meta.url));
    // Referenced only while a request is pending: an idle worker never keeps the process alive.
    worker.unref();
    this.#worker = worker;
    worker.on("message", (m: WriteAnswer | typeof READY) => {
      if (m === READY) {
        if (this.#worker === worker) this.#ready = true;
        return;
      }
      const w = this.#waiting.get(m.id);
      this.#waiting.delete(m.id);
      if (this.#waiting.size === 0) worker.unref();
      if (m.error) w?.reject(new WriteThreadError(m.error.message, m.error.code));
      else w?.resolve(m.value!);
      this.#stopIfIdle();
    });
    worker.on("error", (e: Error) => {
      this.#fail(new Error(`the file-writing worker failed: ${e.message}`));
    });
    worker.on(
      "messageerror",
      () => this.#fail(new Error("the file-writing worker sent an unreadable message")),
    );
  }

  #call(req: Request): Promise<number> {
    const worker = this.#worker;
    if (this.#broken) return Promise.reject(this.#broken);
    if (!worker) return Promise.reject(new Error("WriteThread: the worker is not running"));
    const id = this.#next++;
    return new Promise<number>((resolve, reject) => {
      if (this.#waiting.size === 0) worker.ref();
      this.#waiting.set(id, { resolve, reject });
      worker.postMessage({ ...req, id } as WriteRequest);
    });
  }

  /**
   * Count a user (a file that may be written through the thread): the worker, once started, keeps
   * running until every user has called {@link WriteThread.release} and nothing is pending.
   */
  retain(): void {
    this.#users++;
  }

  /** The user is done; the worker stops if it was the last and nothing is pending. */
  release(): void {
    this.#users--;
    this.#stopIfIdle();
  }

  /** Open an existing file for writing (with `O_DIRECT` when `direct`); resolves with its handle. */
  open(path: string, direct: boolean): Promise<number> {
    return this.#call({ op: "open", path, direct });
  }

  /**
   * Write bytes [at, at + len) of `memory` (a shared WebAssembly memory) at `pos` of file `fd`.
   * The bytes must not change until the promise settles.
   */
  write(
    fd: number,
    memory: WebAssembly.Memory,
    at: number,
    len: number,
    pos: number,
  ): Promise<number> {
    const buffer = memory.buffer as SharedArrayBuffer;
    return this.#call({ op: "write", fd, memory: buffer, at, len, pos }).then((n) => {
      this.bytesWritten += n;
      return n;
    });
  }

  /** Cut the file to `size` bytes (unless null), then fdatasync it. */
  finish(fd: number, size: number | null): Promise<number> {
    return this.#call({ op: "finish", fd, size });
  }

  /** Close the file. */
  async close(fd: number): Promise<void> {
    await this.#call({ op: "close", fd });
  }

  #stopIfIdle(): void {
    if (this.#users > 0 || this.#waiting.size > 0 || !this.#worker) return;
    this.#worker.terminate().catch(() => {});
    this.#worker = null;
    this.#ready = false;
  }

  /** The worker failed: reject what waits and stop using it (callers write in-thread). */
  #fail(e: Error): void {
    this.#broken ??= e;
    this.#worker?.terminate().catch(() => {});
    this.#worker = null;
    this.#ready = false;
    for (const w of this.#waiting.values()) w.reject(e);
    this.#waiting.clear();
  }
}
