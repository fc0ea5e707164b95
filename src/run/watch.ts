/**
 * The output watcher: one ordered stream of file events (one inotify queue) for the output folder,
 * the metrics file and the run folder that holds the command's stdout and stderr files, turned
 * into {@link Change}s and numbered. Because it is one queue, the order of a metrics line (an
 * append to the metrics file or to stdout) and of a file version (a close after writing, or a
 * rename into place) is the order in which the command did them.
 *
 * A barrier ({@link EventLog.sync}) creates a sentinel file of a never-used name in the run folder
 * and waits for its event: after it, every event that happened before the call has been seen.
 *
 * Deno reports inotify's close-after-write as kind `"access"` (reads report nothing), a rename
 * into the folder as `"rename"` with the destination last, and a rename out of it as `"remove"`.
 *
 * @module
 */
import { join, relative } from "node:path";
import type { CaptureThread, CaptureThreadOptions } from "./capture_thread.ts";

/** One change, classified. Paths are relative to the output folder (POSIX). */
export type Change =
  /** A file is being written (created, written, or its metadata changed). */
  | { kind: "write"; path: string }
  /** A file version is complete: closed after writing, or moved into place. */
  | { kind: "complete"; path: string }
  /** A file or folder is gone (removed, or moved away). */
  | { kind: "remove"; path: string }
  /** A folder appeared (created, or moved in whole); `moved` when it was moved in. */
  | { kind: "dir"; path: string; moved: boolean }
  /** A tracked append-only file grew (the metrics file, stdout, stderr). */
  | { kind: "append"; source: string }
  /** The watcher lost events (queue overflow). */
  | { kind: "overflow" };

/**
 * What the capture thread did with a completed version: copied it into the staging folder (file
 * `staged` there, `size` bytes), or could not keep it (`lost`, why in words).
 */
export type Capture = { staged: string; size: number } | { lost: string };

/** A numbered change. */
export interface WatchEvent {
  seq: number;
  /** When rep received it (ms since epoch). */
  time: number;
  change: Change;
  /** A `complete` change's copy, when the capture thread made it. */
  copy?: Capture;
}

/**
 * Which paths under the output folder are never file versions, as data (so that it can be sent
 * to the capture thread): exact paths, folders (with everything under them), name prefixes at the
 * top, and names excluded at any depth.
 */
export interface IgnoreRules {
  exact: string[];
  under: string[];
  prefixes: string[];
  names: string[];
}

/** The {@link WatchPaths.ignore} test of `rules`. */
export function ignoreBy(rules: IgnoreRules): (rel: string) => boolean {
  const names = new Set(rules.names);
  const under = rules.under.filter((b) => b !== "" && !b.startsWith(".."));
  return (rel) =>
    rules.exact.includes(rel) || rules.prefixes.some((p) => rel.startsWith(p)) ||
    under.some((b) => rel === b || rel.startsWith(b + "/")) ||
    rel.split("/").some((s) => names.has(s));
}

/** What {@link classify} needs to know about the watched paths. */
export interface WatchPaths {
  /** The output folder (absolute). */
  output: string;
  /** Absolute path → source name, for the append-only files. */
  sources: Map<string, string>;
  /** The run folder, where barrier sentinels are made (absolute). */
  runDir: string;
  /** Paths under the output folder that are never file versions (the lock, the metrics file). */
  ignore: (rel: string) => boolean;
  /** Whether an absolute path is a folder now (null: gone). */
  isDir?: (abs: string) => boolean | null;
}

/** Name prefix of barrier sentinel files in the run folder. */
export const SENTINEL = "barrier-";
/** Name prefix of the sentinels of barriers the capture thread reports in order (its user's). */
export const MAIN_SENTINEL = `${SENTINEL}m`;

/** The folders and files to watch: the output and run folders, and sources outside them. */
export function watchRoots(p: Pick<WatchPaths, "output" | "runDir" | "sources">): string[] {
  const roots = [p.output, p.runDir];
  for (const s of p.sources.keys()) {
    if (!s.startsWith(p.output + "/") && !s.startsWith(p.runDir + "/")) roots.push(s);
  }
  return roots;
}

function statDir(abs: string): boolean | null {
  try {
    return Deno.statSync(abs).isDirectory;
  } catch {
    return null;
  }
}

/**
 * Turn one Deno file event into changes (empty when it means nothing here). Pure apart from the
 * `isDir` question; exported for tests.
 */
export function classify(
  ev: Pick<Deno.FsEvent, "kind" | "paths">,
  p: WatchPaths,
): (Change | { kind: "barrier"; name: string })[] {
  const isDir = p.isDir ?? statDir;
  const out: (Change | { kind: "barrier"; name: string })[] = [];
  if (ev.kind === "other" || ev.kind === "any") {
    // notify reports a queue overflow as a rescan: events were lost.
    if (ev.kind === "other") out.push({ kind: "overflow" });
  }
  const paths = ev.kind === "rename" ? ev.paths.slice(-1) : ev.paths;
  if (ev.kind === "rename" && ev.paths.length === 2) {
    const from = rel(ev.paths[0]!, p);
    if (from !== null) out.push({ kind: "remove", path: from });
  }
  for (const abs of paths) {
    const source = p.sources.get(abs);
    if (source !== undefined) {
      if (ev.kind === "modify" || ev.kind === "any") out.push({ kind: "append", source });
      continue;
    }
    if (abs.startsWith(p.runDir + "/")) {
      const name = abs.slice(p.runDir.length + 1);
      if (name.startsWith(SENTINEL) && ev.kind === "create") out.push({ kind: "barrier", name });
      continue;
    }
    const r = rel(abs, p);
    if (r === null) continue;
    switch (ev.kind) {
      case "access":
        out.push({ kind: "complete", path: r });
        break;
      case "modify":
        out.push({ kind: "write", path: r });
        break;
      case "create": {
        const d = isDir(abs);
        if (d) out.push({ kind: "dir", path: r, moved: false });
        else out.push({ kind: "write", path: r });
        break;
      }
      case "rename": {
        const d = isDir(abs);
        if (d) out.push({ kind: "dir", path: r, moved: true });
        else if (d === false) out.push({ kind: "complete", path: r });
        else out.push({ kind: "remove", path: r });
        break;
      }
      case "remove":
        out.push({ kind: "remove", path: r });
        break;
    }
  }
  return out;
}

function rel(abs: string, p: WatchPaths): string | null {
  if (abs !== p.output && !abs.startsWith(p.output + "/")) return null;
  const r = relative(p.output, abs);
  if (!r || r.startsWith("..") || p.ignore(r)) return null;
  return r;
}

/** The ordered event stream. */
export class EventLog {
  readonly paths: WatchPaths;
  /** Sequence number of the newest event. */
  seq = 0;
  #watcher: Deno.FsWatcher | null = null;
  /** The capture thread, when it does the watching (and copies each version). */
  capture: CaptureThread | null = null;
  #waiters = new Map<string, () => void>();
  #syncN = 0;
  #listener: (ev: WatchEvent) => void;

  /** `listener` is called synchronously for each event, in order. */
  constructor(paths: WatchPaths, listener: (ev: WatchEvent) => void) {
    this.paths = paths;
    this.#listener = listener;
  }

  /** Start watching; false when the platform cannot watch (rep then polls, less exactly). */
  start(): boolean {
    try {
      this.#watcher = Deno.watchFs(watchRoots(this.paths), { recursive: true });
    } catch {
      return false;
    }
    (async () => {
      try {
        for await (const ev of this.#watcher!) this.feed(ev);
      } catch {
        // closed
      }
    })();
    return true;
  }

  /**
   * Start watching on the capture thread `thread` (see {@link CaptureThread}), which also copies
   * each completed version into `o.staging` while holding the command; falls back to
   * {@link start} when the thread cannot watch. False when the platform cannot watch.
   */
  async startCapture(
    thread: CaptureThread,
    o: Pick<CaptureThreadOptions, "ignore" | "staging" | "limit">,
  ): Promise<boolean> {
    const ok = await thread.watch({
      ...o,
      output: this.paths.output,
      runDir: this.paths.runDir,
      sources: this.paths.sources,
    }, (evs) => {
      for (const e of evs) {
        const ev: WatchEvent = { seq: ++this.seq, time: e.time, change: e.change };
        if (e.copy) ev.copy = e.copy;
        this.#listener(ev);
      }
    });
    if (ok) this.capture = thread;
    else thread.close();
    return ok || this.start();
  }

  /** True while watching. */
  get watching(): boolean {
    return this.#watcher !== null || this.capture !== null;
  }

  /** Handle one raw event (exported for tests, which feed events by hand). */
  feed(ev: Pick<Deno.FsEvent, "kind" | "paths">): void {
    for (const c of classify(ev, this.paths)) {
      if (c.kind === "barrier") {
        const resolve = this.#waiters.get(c.name);
        if (resolve) {
          this.#waiters.delete(c.name);
          resolve();
        }
        continue;
      }
      this.#listener({ seq: ++this.seq, time: Date.now(), change: c });
    }
  }

  /**
   * Wait until every event that happened before this call has been seen. Returns false when not
   * watching or when the sentinel's event did not arrive within `timeoutMs`.
   */
  async sync(timeoutMs = 2000): Promise<boolean> {
    if (this.capture) return await this.capture.sync();
    if (!this.#watcher) return false;
    const name = `${SENTINEL}${++this.#syncN}`;
    const path = join(this.paths.runDir, name);
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
      Deno.writeFileSync(path, new Uint8Array(0), { createNew: true });
    } catch {
      this.#waiters.delete(name);
      return false;
    }
    const ok = await seen;
    try {
      Deno.removeSync(path);
    } catch {
      // gone
    }
    return ok;
  }

  /** Stop watching. */
  close(): void {
    this.capture?.close();
    this.capture = null;
    try {
      this.#watcher?.close();
    } catch {
      // already closed
    }
    this.#watcher = null;
  }
}
