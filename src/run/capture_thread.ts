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
import { join } from "node:path";
import type {
  CapturedEvent,
  CaptureMessage,
  CaptureRequest,
  HoldTiming,
  SyncMark,
} from "./capture_worker.ts";
import type { GroupHold } from "./group_hold.ts";
import type { ThreadName } from "./nice.ts";
import { type IgnoreRules, MAIN_SENTINEL } from "./watch.ts";

/** How long {@link CaptureThread.sync} waits (a hold waiting for staging room delays it). */
const SYNC_MS = 30_000;

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

/** A capture thread. Create with {@link CaptureThread.load}, then {@link CaptureThread.watch}. */
export class CaptureThread {
  #worker: Worker;
  #onEvents: (evs: CapturedEvent[]) => void = () => {};
  #syncs = new Map<string, (ok: boolean) => void>();
  #n = 0;
  #closed = false;
  #runDir = "";
  /** Received, not yet handed on (held back after a barrier; see {@link sync}). */
  #pending: (CapturedEvent | SyncMark)[] = [];
  #draining = false;
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
    this.#runDir = o.runDir;
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
    if (m.hold) this.holds.push(m.hold);
    this.#pending.push(...m.events);
    if (!this.#draining) this.#drain();
  }

  /**
   * Hand on events up to the next barrier mark, resolve its sync, and hand on the rest only in a
   * later task: the sync's caller reads the event count at exactly the barrier.
   */
  #drain(): void {
    const at = this.#pending.findIndex((e) => "synced" in e);
    const evs = this.#pending.splice(0, at < 0 ? this.#pending.length : at) as CapturedEvent[];
    if (evs.length) this.#onEvents(evs);
    if (at < 0) {
      this.#draining = false;
      return;
    }
    const mark = this.#pending.shift() as SyncMark;
    this.#syncs.get(mark.synced)?.(true);
    this.#syncs.delete(mark.synced);
    this.#draining = true;
    setTimeout(() => this.#drain(), 0);
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

  /**
   * Wait until every event before the call has been received (false: cannot tell). A sentinel
   * file made now is seen by the thread in order with the command's events; until the caller's
   * next await, no event after it has been handed on.
   */
  async sync(): Promise<boolean> {
    if (this.#closed) return false;
    const name = `${MAIN_SENTINEL}${++this.#n}`;
    const path = join(this.#runDir, name);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const seen = new Promise<boolean>((resolve) => {
      this.#syncs.set(name, resolve);
      timer = setTimeout(() => {
        this.#syncs.delete(name);
        resolve(false);
      }, SYNC_MS);
    });
    try {
      Deno.writeFileSync(path, new Uint8Array(0), { createNew: true });
    } catch {
      this.#syncs.delete(name);
      clearTimeout(timer);
      return false;
    }
    const ok = await seen;
    clearTimeout(timer);
    try {
      Deno.removeSync(path);
    } catch {
      // gone
    }
    return ok;
  }

  /** Whether OS thread `t` is one of this capture thread's (its JS thread, its watcher's). */
  owns(t: ThreadName): boolean {
    return t.name === `worker-${this.#worker.threadId}` || t.name.startsWith("notify-rs");
  }

  /** Stop the thread. */
  close(): void {
    if (this.#closed) return;
    this.#fail();
    void this.#worker.terminate();
  }
}
