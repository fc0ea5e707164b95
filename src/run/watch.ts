/**
 * An ordered log of file-system events under the output folder (and the metrics file), with a
 * barrier: {@link ChangeLog.sync} writes a sentinel file and waits until its event arrives, after
 * which every event that happened before the call has been seen. The runner uses it to tell whether
 * a file changed after a metrics line was written.
 *
 * @module
 */
import { join, relative } from "node:path";

/** The sentinel written by {@link ChangeLog.sync}; never part of a checkpoint. */
export const SYNC_FILE = ".rep-sync";

/** Ordered file-change events. */
export class ChangeLog {
  readonly root: string;
  readonly metricsPath: string;
  /** Sequence number of the newest event. */
  seq = 0;
  /** Sequence of the newest event on the metrics file. */
  lastMetrics = 0;
  /** Relative path → sequence of its newest event. */
  readonly last = new Map<string, number>();
  #watcher: Deno.FsWatcher | null = null;
  #waiters = new Map<string, () => void>();
  #onEvent: () => void;
  #syncN = 0;

  constructor(root: string, metricsPath: string, onEvent: () => void) {
    this.root = root;
    this.metricsPath = metricsPath;
    this.#onEvent = onEvent;
  }

  /** Start watching; returns false when the platform cannot watch (polling still works). */
  start(): boolean {
    try {
      const paths = [this.root];
      if (!this.metricsPath.startsWith(this.root + "/")) paths.push(this.metricsPath);
      this.#watcher = Deno.watchFs(paths, { recursive: true });
    } catch {
      return false;
    }
    (async () => {
      try {
        for await (const ev of this.#watcher!) this.#record(ev);
      } catch {
        // closed
      }
    })();
    return true;
  }

  get watching(): boolean {
    return this.#watcher !== null;
  }

  #record(ev: Deno.FsEvent): void {
    const seq = ++this.seq;
    for (const p of ev.paths) {
      if (p === this.metricsPath) {
        this.lastMetrics = seq;
        continue;
      }
      const rel = relative(this.root, p);
      if (rel.startsWith("..")) continue;
      if (rel === SYNC_FILE) {
        // The sentinel's content names the sync call it belongs to.
        for (const [token, resolve] of this.#waiters) {
          try {
            if (Deno.readTextFileSync(p) === token) {
              this.#waiters.delete(token);
              resolve();
            }
          } catch {
            // removed meanwhile
          }
        }
        continue;
      }
      this.last.set(rel, seq);
      // A change to a folder (rename of a folder) touches everything below it.
      for (const k of this.last.keys()) if (k.startsWith(rel + "/")) this.last.set(k, seq);
    }
    this.#onEvent();
  }

  /** True when `rel` (or a folder above it) changed after event `seq`. */
  changedAfter(rel: string, seq: number): boolean {
    if ((this.last.get(rel) ?? 0) > seq) return true;
    const parts = rel.split("/");
    for (let i = 1; i < parts.length; i++) {
      if ((this.last.get(parts.slice(0, i).join("/")) ?? 0) > seq) return true;
    }
    return false;
  }

  /**
   * Wait until every event that happened before this call has been recorded. Returns false when
   * not watching or when the sentinel's event did not arrive within `timeoutMs`.
   */
  async sync(timeoutMs = 2000): Promise<boolean> {
    if (!this.#watcher) return false;
    const token = `${Deno.pid}-${++this.#syncN}`;
    const seen = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(token);
        resolve(false);
      }, timeoutMs);
      this.#waiters.set(token, () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    try {
      await Deno.writeTextFile(join(this.root, SYNC_FILE), token);
    } catch {
      this.#waiters.delete(token);
      return false;
    }
    return await seen;
  }

  /** Stop watching and remove the sentinel. */
  close(): void {
    try {
      this.#watcher?.close();
    } catch {
      // already closed
    }
    this.#watcher = null;
    try {
      Deno.removeSync(join(this.root, SYNC_FILE));
    } catch {
      // not there
    }
  }
}
