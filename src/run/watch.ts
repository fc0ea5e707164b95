/**
 * An ordered log of file-system events under the output folder (and the metrics file), with a
 * barrier: {@link ChangeLog.sync} creates a sentinel file of a name never used before and waits
 * until its event arrives, after which every event that happened before the call has been seen.
 * (A unique name matters: with one reused sentinel, a late event of the previous sync could be
 * taken for the new one's.) The runner uses it to tell whether a file changed after a metrics line
 * was written.
 *
 * @module
 */
import { join, relative } from "node:path";

/** Prefix of the sentinels written by {@link ChangeLog.sync}; never part of a checkpoint. */
export const SYNC_FILE = ".rep-sync";

/** True for a sentinel of {@link ChangeLog.sync} (relative to the watched folder). */
export function isSyncFile(rel: string): boolean {
  return rel === SYNC_FILE || rel.startsWith(`${SYNC_FILE}-`);
}

/** Ordered file-change events. */
export class ChangeLog {
  readonly root: string;
  readonly metricsPath: string;
  /** Sequence number of the newest event. */
  seq = 0;
  /** Sequence of the newest event on the metrics file. */
  lastMetrics = 0;
  /** Sequences of metrics-file events not yet passed to {@link ChangeLog.firstMetricsAfter}. */
  #metricsSeqs: number[] = [];
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
        // Only writes place a line; closing or reading the file later says nothing about when
        // its lines were written.
        if (ev.kind === "modify" || ev.kind === "create" || ev.kind === "any") {
          this.lastMetrics = seq;
          this.#metricsSeqs.push(seq);
        }
        continue;
      }
      const rel = relative(this.root, p);
      if (rel.startsWith("..")) continue;
      if (isSyncFile(rel)) {
        // Each sync call has its own sentinel name.
        const resolve = this.#waiters.get(rel);
        if (resolve) {
          this.#waiters.delete(rel);
          resolve();
        }
        continue;
      }
      this.last.set(rel, seq);
      // A change to a folder (rename of a folder) touches everything below it.
      for (const k of this.last.keys()) if (k.startsWith(rel + "/")) this.last.set(k, seq);
    }
    this.#onEvent();
  }

  /**
   * The first metrics-file event after event `seq` (`lastMetrics` when none), forgetting older
   * ones. A file whose newest event is older changed before any line written after `seq`.
   */
  firstMetricsAfter(seq: number): number {
    let drop = 0;
    while (drop < this.#metricsSeqs.length && this.#metricsSeqs[drop]! <= seq) drop++;
    this.#metricsSeqs.splice(0, drop);
    return this.#metricsSeqs[0] ?? this.lastMetrics;
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
    const name = `${SYNC_FILE}-${Deno.pid}-${++this.#syncN}`;
    const path = join(this.root, name);
    const seen = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(name);
        resolve(false);
      }, timeoutMs);
      this.#waiters.set(name, () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    try {
      await Deno.writeFile(path, new Uint8Array(0), { createNew: true });
    } catch {
      this.#waiters.delete(name);
      return false;
    }
    const ok = await seen;
    await Deno.remove(path).catch(() => {});
    return ok;
  }

  /** Stop watching and remove a sentinel left by an earlier version. */
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
