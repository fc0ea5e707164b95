/**
 * The main thread's side of the capture thread ({@link ./capture_worker.ts}): starts the worker,
 * receives its events (each completed version with its copy already made, or the reason it could
 * not be kept), asks it for barriers, and tells it when staged bytes are freed.
 *
 * Why a thread: file events reach a Deno program through its event loop, and rep's main thread is
 * busy chunking and hashing. A close seen late is a version lost when the command rewrites the
 * file first (measured: 2-3 of 8 checkpoints of a 256 MiB file saved every 0.5 s on a loaded
 * machine); the worker's loop does nothing but wait for events.
 *
 * Made with {@link CaptureThread.load} as early as possible (loading a worker takes 0.2-0.4 s on a
 * loaded machine, and the command is started only once the watcher runs), then
 * {@link CaptureThread.watch}.
 *
 * `deno compile` must include the worker module (`--include src/run/capture_worker.ts`).
 *
 * @module
 */
import { Worker } from "node:worker_threads";
import type {
  CapturedEvent,
  CaptureMessage,
  CaptureRequest,
  HoldTiming,
} from "./capture_worker.ts";
import type { GroupHold } from "./group_hold.ts";
import type { IgnoreRules } from "./watch.ts";

/** What the capture thread watches and where it copies to. */
export interface CaptureThreadOptions {
  output: string;
  runDir: string;
  /** Absolute path → source name, for the append-only files. */
  sources: Map<string, string>;
  ignore: IgnoreRules;
  /** The staging folder. */
  staging: string;
  /** Most bytes of copies waiting to be chunked (at least one file is always allowed). */
  limit: number;
}

/** A running capture thread. Create with {@link CaptureThread.start}. */
export class CaptureThread {
  #worker: Worker;
  #onEvents: (evs: CapturedEvent[]) => void = () => {};
  #syncs = new Map<number, (ok: boolean) => void>();
  #n = 0;
  #closed = false;
  /** Each hold of the command the thread made, in order. */
  readonly holds: HoldTiming[] = [];

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.on("error", () => this.#fail());
  }

  /**
   * Start loading the thread (its module loads while rep prepares the run); null when no worker
   * can be started. `onEvents` gets every event, in order, once {@link watch} has started.
   */
  static load(): CaptureThread | null {
    let worker: Worker;
    try {
      worker = new Worker(new URL("./capture_worker.ts", import.meta.url));
    } catch {
      return null;
    }
    return new CaptureThread(worker);
  }

  /**
   * Start watching; resolves once the watcher is running (every event after that is seen), or
   * false when it cannot (the worker failed, or the platform cannot watch).
   */
  watch(o: CaptureThreadOptions, onEvents: (evs: CapturedEvent[]) => void): Promise<boolean> {
    this.#onEvents = onEvents;
    const worker = this.#worker;
    return new Promise((resolve) => {
      worker.on("message", (m: CaptureMessage) => {
        if (m.t === "ready") {
          if (m.error) this.close();
          resolve(!m.error);
        } else this.#receive(m);
      });
      worker.on("error", () => resolve(false));
      this.#send({
        t: "init",
        output: o.output,
        runDir: o.runDir,
        sources: [...o.sources],
        ignore: o.ignore,
        staging: o.staging,
        limit: o.limit,
      });
      if (this.#closed) resolve(false);
    });
  }

  #receive(m: Exclude<CaptureMessage, { t: "ready" }>): void {
    if (m.t === "events") {
      if (m.hold) this.holds.push(m.hold);
      if (m.events.length) this.#onEvents(m.events);
    } else {
      for (const id of m.ids) {
        this.#syncs.get(id)?.(m.ok);
        this.#syncs.delete(id);
      }
    }
  }

  #fail(): void {
    this.#closed = true;
    for (const s of this.#syncs.values()) s(false);
    this.#syncs.clear();
  }

  #send(m: CaptureRequest): void {
    if (!this.#closed) this.#worker.postMessage(m);
  }

  /** The command started: the thread holds its group (through `hold`) for each copy. */
  group(hold: GroupHold): void {
    this.#send({ t: "group", pgid: hold.pgid, memory: hold.memory });
  }

  /** Staged copies the thread made, of `bytes` in all, were deleted. */
  freed(bytes: number): void {
    this.#send({ t: "freed", bytes });
  }

  /** Wait until every event before the call has been received (false: cannot tell). */
  sync(): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    const id = ++this.#n;
    return new Promise((resolve) => {
      this.#syncs.set(id, resolve);
      this.#send({ t: "sync", id });
    });
  }

  /** Stop the thread. */
  close(): void {
    if (this.#closed) return;
    this.#fail();
    void this.#worker.terminate();
  }
}
