/**
 * The capture thread behind {@link ./capture_thread.ts} (a node:worker_threads worker): it owns
 * the output watcher and does nothing else, so a file version's close reaches it at once however
 * busy rep's main thread is with chunking. For each version the command completes it holds the
 * command's process group (SIGSTOP, then waits until every thread is stopped), copies the file into
 * the staging folder, confirms with a barrier of its own that no event on that path came after
 * the close, lets the group go, and posts the events, in order, with what became of each copy.
 *
 * Staging space is bounded: when a copy would not fit, the thread waits (the command still held)
 * until the main thread reports bytes freed.
 *
 * `deno compile` must include this module (`--include src/run/capture_worker.ts`).
 *
 * @module
 */
import { join } from "node:path";
import { parentPort } from "node:worker_threads";
import { allStopped, ProcReader } from "./child.ts";
import { GroupHold } from "./group_hold.ts";
import { copyVersion, versionSize } from "./versions.ts";
import {
  type Capture,
  type Change,
  classify,
  ignoreBy,
  type IgnoreRules,
  MAIN_SENTINEL,
  SENTINEL,
  type WatchPaths,
  watchRoots,
} from "./watch.ts";

/** A message from the main thread. */
export type CaptureRequest =
  | {
    t: "init";
    output: string;
    runDir: string;
    sources: [string, string][];
    ignore: IgnoreRules;
    staging: string;
    limit: number;
  }
  /** The command started: its group, and the shared hold count (freezing allowed). */
  | { t: "group"; pgid: number; memory: SharedArrayBuffer }
  /** Staged copies of this many bytes were deleted. */
  | { t: "freed"; bytes: number };

/** One event as the capture thread saw it. */
export interface CapturedEvent {
  time: number;
  change: Change;
  copy?: Capture;
}

/**
 * The main thread's barrier sentinel `name` (see {@link MAIN_SENTINEL}) was seen here, in order:
 * every event before it has been posted.
 */
export interface SyncMark {
  synced: string;
}

/** What one hold of the command cost (ms): all of it, and its copies' share. */
export interface HoldTiming {
  held: number;
  copy: number;
  stop: number;
  barrier: number;
  bytes: number;
}

/** A message to the main thread. */
export type CaptureMessage =
  | { t: "ready"; error?: string }
  | { t: "events"; events: (CapturedEvent | SyncMark)[]; hold?: HoldTiming };

const REWRITTEN = "it was rewritten before rep could copy it";
const UNCONFIRMED = "rep could not confirm that it was unchanged while copied";
const BARRIER_MS = 2000;
/** Rounds of copy-and-barrier in one hold when the group could not be seen stopped. */
const MAX_ROUNDS = 8;

const port = parentPort!;

let paths: WatchPaths;
let staging = "";
let limit = Infinity;
let hold: GroupHold | null = null;
let reader: ProcReader | null = null;
/** Events not yet posted, in order (with the main thread's barriers among them). */
const queue: (CapturedEvent | SyncMark)[] = [];
let busy = false;
let staged = 0;
const roomWaiters: (() => void)[] = [];
let copies = 0;
const barriers = new Map<string, () => void>();
let barrierN = 0;
let timing: HoldTiming | null = null;

port.on("message", (m: CaptureRequest) => {
  switch (m.t) {
    case "init":
      init(m);
      break;
    case "group":
      hold = new GroupHold(m.pgid, m.memory);
      reader ??= ProcReader.start();
      break;
    case "freed":
      free(m.bytes);
      break;
  }
});

function init(m: Extract<CaptureRequest, { t: "init" }>): void {
  paths = {
    output: m.output,
    runDir: m.runDir,
    sources: new Map(m.sources),
    ignore: ignoreBy(m.ignore),
  };
  staging = m.staging;
  limit = m.limit;
  let watcher: Deno.FsWatcher;
  try {
    watcher = Deno.watchFs(watchRoots(paths), { recursive: true });
  } catch (e) {
    post({ t: "ready", error: (e as Error).message });
    return;
  }
  (async () => {
    try {
      for await (const ev of watcher) feed(ev);
    } catch {
      // closed
    }
  })();
  post({ t: "ready" });
}

function post(m: CaptureMessage): void {
  port.postMessage(m);
}

function feed(ev: Deno.FsEvent): void {
  const time = Date.now();
  for (const c of classify(ev, paths)) {
    if (c.kind === "barrier") {
      if (c.name.startsWith(MAIN_SENTINEL)) queue.push({ synced: c.name });
      else barriers.get(c.name)?.();
      continue;
    }
    queue.push({ time, change: c });
  }
  void step();
}

const needsCopy = (e: CapturedEvent | SyncMark) =>
  "change" in e && e.change.kind === "complete" && !e.copy;

/** Post what is queued, capturing the versions in it first. */
async function step(): Promise<void> {
  if (busy) return;
  busy = true;
  try {
    while (queue.some(needsCopy)) {
      await capture();
      flush();
    }
    flush();
  } finally {
    busy = false;
  }
}

/** Post the queued events up to the first version not yet copied (it is next). */
function flush(): void {
  const next = queue.findIndex(needsCopy);
  const events = queue.splice(0, next < 0 ? queue.length : next);
  if (!events.length && !timing) return;
  post(timing ? { t: "events", events, hold: timing } : { t: "events", events });
  timing = null;
}

/**
 * Hold the command, copy every completed version queued, and keep each copy only if a barrier
 * shows no later event on its path. The copies start as soon as the stop signal is sent: a write
 * that overlaps a copy ends before its thread stops, and the barrier after the stop shows it.
 * Versions completed before the stop took effect are copied in further rounds of the same hold.
 */
async function capture(): Promise<void> {
  const t0 = performance.now();
  const h = hold;
  const held = h?.stop() ?? false;
  const stopped = held ? allStopped(h!.pgid, BARRIER_MS, reader) : Promise.resolve(false);
  // Let the look at /proc start (it runs in a shell) before the copy blocks this thread.
  if (held) await new Promise((r) => setTimeout(r, 0));
  const t = { held: 0, copy: 0, stop: 0, barrier: 0, bytes: 0 };
  try {
    for (let round = 0; round < (held ? MAX_ROUNDS : 1); round++) {
      const c0 = performance.now();
      for (let i = 0; i < queue.length; i++) {
        const e = queue[i]!;
        if (!needsCopy(e) || !("change" in e)) continue;
        if (touchedAfter(i)) e.copy = { lost: REWRITTEN };
        else e.copy = await copy((e.change as { path: string }).path);
        if ("size" in e.copy) t.bytes += e.copy.size;
      }
      t.copy += performance.now() - c0;
      if (round === 0) {
        await stopped;
        t.stop = performance.now() - t0;
      }
      const b0 = performance.now();
      const ok = await barrier();
      t.barrier += performance.now() - b0;
      for (let i = 0; i < queue.length; i++) {
        const e = queue[i]!;
        if (!("copy" in e) || !e.copy || !("staged" in e.copy)) continue;
        if (!ok) discard(e, UNCONFIRMED);
        else if (touchedAfter(i)) discard(e, REWRITTEN);
      }
      if (!ok || !queue.some(needsCopy)) break;
    }
  } finally {
    if (held) h!.resume();
  }
  t.held = performance.now() - t0;
  timing = t;
}

/** Whether an event after queue[i] touches its path (the copy may hold the next version). */
function touchedAfter(i: number): boolean {
  const path = ((queue[i] as CapturedEvent).change as { path: string }).path;
  for (let j = i + 1; j < queue.length; j++) {
    const e = queue[j]!;
    if (!("change" in e)) continue;
    const c = e.change;
    if (!("path" in c)) continue;
    if (c.path === path) return true;
    if ((c.kind === "remove" || c.kind === "dir") && path.startsWith(c.path + "/")) return true;
  }
  return false;
}

async function copy(path: string): Promise<Capture> {
  const abs = join(paths.output, path);
  const found = versionSize(abs);
  if ("lost" in found) return found;
  const { size } = found;
  // Room: wait (the command still held) until the main thread has freed space.
  while (staged > 0 && staged + size > limit) {
    await new Promise<void>((r) => roomWaiters.push(r));
  }
  const name = `c${++copies}`;
  const failed = copyVersion(abs, join(staging, name));
  if (failed) return { lost: failed };
  staged += size;
  return { staged: name, size };
}

function discard(e: CapturedEvent, reason: string): void {
  const c = e.copy as { staged: string; size: number };
  try {
    Deno.removeSync(join(staging, c.staged));
  } catch {
    // gone
  }
  free(c.size);
  e.copy = { lost: reason };
}

function free(bytes: number): void {
  staged = Math.max(0, staged - bytes);
  for (const w of roomWaiters.splice(0)) w();
}

/** Wait until every event before the call has been seen (false: the sentinel did not come). */
async function barrier(): Promise<boolean> {
  const name = `${SENTINEL}t${++barrierN}`; // never MAIN_SENTINEL's
  const path = join(paths.runDir, name);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const seen = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), BARRIER_MS);
    barriers.set(name, () => resolve(true));
  });
  try {
    Deno.writeFileSync(path, new Uint8Array(0), { createNew: true });
  } catch {
    barriers.delete(name);
    clearTimeout(timer);
    return false;
  }
  const ok = await seen;
  clearTimeout(timer);
  barriers.delete(name);
  try {
    Deno.removeSync(path);
  } catch {
    // gone
  }
  return ok;
}
