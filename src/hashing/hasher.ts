/**
 * sha256 off the main thread. A {@link Hasher} owns a module worker that reads a shared memory
 * (a {@link CutKernel}'s: where the main thread reads files and finds chunk boundaries);
 * {@link Hasher.hash} sends it byte ranges of that memory and resolves with their hex digests.
 * Nothing is copied: the caller must leave those bytes alone until the promise settles. Several
 * requests may be in flight; they are answered in order.
 *
 * The worker costs a few tens of milliseconds to start and runs on another core: worth it for large
 * files, not for small ones (callers hash those in-thread, and also while {@link Hasher.ready} is
 * false). After {@link RECYCLE_BYTES} a fresh worker takes over and the old one is stopped once it
 * has answered: node:crypto's native state is freed only by a worker's rare full collections, and
 * this bounds what a long file costs. Always {@link Hasher.close} a Hasher: a running worker keeps
 * the process alive.
 *
 * `deno compile` must include the worker module (`--include src/hashing/hash_worker.ts`).
 *
 * @module
 */
import type { HashAnswer, HashRequest, HashSetup } from "./hash_worker.ts";

const READY = "ready"; // what the worker sends once loaded (hash_worker.ts)

/** Bytes one worker hashes before a fresh one replaces it. */
export const RECYCLE_BYTES = 1024 * 1024 * 1024;

type Waiter = { resolve: (a: HashAnswer) => void; reject: (e: unknown) => void };

/** One worker and the requests it has not answered yet (it answers in order). */
interface Generation {
  worker: Worker;
  waiting: Waiter[];
  ready: boolean;
  /** Set once a newer generation took over: stop when the last answer arrives. */
  retired: boolean;
  bytes: number;
}

/** Hashes ranges of a shared memory in a worker. */
export class Hasher {
  readonly memory: WebAssembly.Memory;
  #gen: Generation | null;
  #old = new Set<Generation>();
  #error: Error | null = null;
  #closed = false;
  #onReady: (() => void)[] = [];
  readonly #recycle: number;

  /**
   * A worker hashing ranges of `memory` (which must be shared). `recycleBytes`: hash this many
   * bytes per worker (default {@link RECYCLE_BYTES}).
   */
  constructor(memory: WebAssembly.Memory, options: { recycleBytes?: number } = {}) {
    if (!(memory.buffer instanceof SharedArrayBuffer)) {
      throw new TypeError("Hasher needs a shared WebAssembly.Memory");
    }
    this.memory = memory;
    this.#recycle = options.recycleBytes ?? RECYCLE_BYTES;
    this.#gen = this.#spawn();
  }

  #spawn(): Generation {
    const worker = new Worker(new URL("./hash_worker.ts", import.meta.url).href, {
      type: "module",
    });
    const gen: Generation = { worker, waiting: [], ready: false, retired: false, bytes: 0 };
    worker.onmessage = (e: MessageEvent<HashAnswer | typeof READY>) => {
      if (e.data === READY) {
        gen.ready = true;
        if (gen === this.#gen) { for (const r of this.#onReady.splice(0)) r(); }
        return;
      }
      const w = gen.waiting.shift();
      if (gen.retired && gen.waiting.length === 0) {
        worker.terminate();
        this.#old.delete(gen);
      }
      if (!w) return;
      if (e.data.error !== undefined) w.reject(new Error(`hashing failed: ${e.data.error}`));
      else w.resolve(e.data);
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#fail(new Error(`hashing worker failed: ${e.message}`));
    };
    worker.onmessageerror = () =>
      this.#fail(new Error("hashing worker sent an unreadable message"));
    const setup: HashSetup = { memory: this.memory };
    worker.postMessage(setup);
    return gen;
  }

  /**
   * Whether the worker has loaded. Until then a request waits for the load (tens of milliseconds):
   * callers may hash in-thread meanwhile.
   */
  get ready(): boolean {
    return !!this.#gen?.ready && !this.#error;
  }

  /** Resolves once the worker has loaded (or failed, or was closed). */
  whenReady(): Promise<void> {
    if (this.ready || this.#error || this.#closed) return Promise.resolve();
    return new Promise((r) => this.#onReady.push(r));
  }

  /** Requests not yet answered. */
  get pending(): number {
    let n = this.#gen?.waiting.length ?? 0;
    for (const g of this.#old) n += g.waiting.length;
    return n;
  }

  /**
   * The hex sha256 of each range (start, end pairs of offsets into {@link Hasher.memory}). The
   * bytes must not change until the promise settles.
   */
  hash(ranges: number[]): Promise<string[]> {
    if (this.#error) return Promise.reject(this.#error);
    let gen = this.#gen;
    if (!gen) return Promise.reject(new Error("Hasher is closed"));
    const size = this.memory.buffer.byteLength;
    let hashed = 0;
    for (let i = 0; i < ranges.length; i += 2) {
      const a = ranges[i]!;
      const b = ranges[i + 1]!;
      if (!(a >= 0 && b >= a && b <= size)) {
        return Promise.reject(new RangeError(`Hasher.hash: bad range [${a}, ${b})`));
      }
      hashed += b - a;
    }
    if (gen.bytes >= this.#recycle) {
      gen.retired = true;
      if (gen.waiting.length) this.#old.add(gen);
      else gen.worker.terminate();
      gen = this.#gen = this.#spawn();
    }
    gen.bytes += hashed;
    const p = new Promise<HashAnswer>((resolve, reject) => {
      gen.waiting.push({ resolve, reject });
    });
    const msg: HashRequest = { ranges };
    gen.worker.postMessage(msg);
    return p.then((a) => a.hashes);
  }

  #fail(e: Error): void {
    this.#error ??= e;
    for (const r of this.#onReady.splice(0)) r();
    for (const g of [this.#gen, ...this.#old]) {
      for (const w of g?.waiting.splice(0) ?? []) w.reject(this.#error);
    }
  }

  /** Stop the worker(s); requests not yet answered are rejected. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const g of [this.#gen, ...this.#old]) g?.worker.terminate();
    this.#fail(new Error("Hasher is closed"));
    this.#gen = null;
    this.#old.clear();
  }
}

/**
 * A minimal async queue: {@link Queue.take} waits for an item; after {@link Queue.close} it gives
 * the items left, then null. Used to hand buffers between the stages of a pipeline.
 */
export class Queue<T> {
  #items: T[] = [];
  #waiters: ((v: T | null) => void)[] = [];
  #closed = false;

  /** Add an item (handed straight to a waiting taker, if any). */
  put(v: T): void {
    const w = this.#waiters.shift();
    if (w) w(v);
    else this.#items.push(v);
  }

  /** The next item, or null once closed and empty. */
  take(): Promise<T | null> {
    if (this.#items.length) return Promise.resolve(this.#items.shift()!);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((r) => this.#waiters.push(r));
  }

  /** No more items will come: waiting takers get null. */
  close(): void {
    this.#closed = true;
    for (const w of this.#waiters.splice(0)) w(null);
  }

  /** Remove and return the items left. */
  drain(): T[] {
    return this.#items.splice(0);
  }
}

/**
 * Files at least this large are hashed in a worker, on another core, while the main thread reads,
 * chunks and packs; smaller ones are hashed in-thread (a worker costs tens of milliseconds to
 * start). Exported for tests.
 */
export const WORKER_MIN_SIZE = 16 * 1024 * 1024;
/**
 * Whether a hashing worker is used by default: only with three or more cores. Measured on the
 * 2-core bench machine (shared with other work; bench/RESULTS.md): sha256 in the main thread and in
 * a worker at once ran only 1.47× faster than one after the other (2× would be a free second
 * core), and with pack writes in the write thread (src/hashing/write_thread.ts) a 1 GiB snapshot
 * took as long with the worker as without it (1.89 s against 1.88 s, median of 3), for 10-25 MiB
 * more memory; a checkout was sometimes faster, sometimes slower with it.
 */
export function workerByDefault(): boolean {
  return (navigator.hardwareConcurrency ?? 1) >= 3;
}

/**
 * Whether a checkout verifies large files' chunks partly in a hashing worker by default: with two
 * or more cores. A checkout's main thread only reads, verifies and hands writes over, so a worker
 * that takes some of the verifying shortens it even when the second core is shared: on the 2-core
 * bench machine (load 1-11, other work on both cores), alternating checkouts of 1 GiB with and
 * without it were 1.08×, 1.19×, 1.26× and 1.40× faster with the worker in four runs and 0.71× and
 * 0.76× in two (medians of 3-8 pairs each; bench/PROFILE.md), for 0.1-0.15 s more CPU time per GiB
 * and 10-25 MiB more memory. A checkpoint's main thread has the chunking too and its writes wait on
 * the disk: there the worker stays off on two cores ({@link workerByDefault}).
 */
export function checkoutWorkerByDefault(): boolean {
  return (navigator.hardwareConcurrency ?? 1) >= 2;
}
