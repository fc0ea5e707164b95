/**
 * The command's output as a log in the repository. The command writes its stdout and stderr to
 * two files in the run folder (see `child.ts`), never to a pipe, so it does not depend on rep
 * being alive. rep reads them as they grow, passes them through to its own stdout and stderr, and
 * stores the interleaved output as immutable numbered segments `logs/<nnnnnn>.log` (cut at
 * {@link SEGMENT_BYTES} or when the oldest byte not in a segment is {@link SEGMENT_AGE_MS} old),
 * plus `logs/tail.log`, rewritten every {@link TAIL_MS} with the output since the last segment
 * (after a first line `rep-log-tail <offset>`: where in the log it starts) and deleted at the end.
 *
 * `state.json` in the run folder says how far each file is stored, so when rep is killed the next
 * rep command uploads the rest ({@link recoverRunLogs}); while the command is still running it
 * keeps the folder, and a later command uploads what came since.
 *
 * @module
 */
import { hostname } from "node:os";
import { join } from "node:path";
import type { Store } from "../storage/store.ts";
import { attemptLogKey, attemptLogPrefix, attemptLogTailKey } from "../format/layout.ts";
import { pidAlive } from "../util.ts";
import { groupAlive } from "./child.ts";

/** Segment size: a segment is cut once this much output is waiting. */
export const SEGMENT_BYTES = 1 << 20;
/** A segment is also cut once the oldest output waiting is this old. */
export const SEGMENT_AGE_MS = 60_000;
/** How often the tail is rewritten while output comes. */
export const TAIL_MS = 2000;
/** First line of `logs/tail.log`. */
export const TAIL_HEADER = "rep-log-tail";

/** The tail key of the attempt a run folder's state belongs to. */
const tailKey = (s: { experiment: string; attempt?: number }) =>
  attemptLogTailKey(s.experiment, s.attempt ?? 1);
/** Segment `seq` of that attempt. */
const segmentKey = (s: { experiment: string; attempt?: number }, seq: number) =>
  attemptLogKey(s.experiment, s.attempt ?? 1, seq);

const SOURCES = ["stdout", "stderr"] as const;
type Source = typeof SOURCES[number];

/** What `state.json` of a run folder holds. */
export interface RunState {
  experiment: string;
  /** The attempt (absent: 1); attempts n ≥ 2 log under `attempts/<n>/logs/`. */
  attempt?: number;
  /** rep's pid and host. */
  pid: number;
  host: string;
  /** The command's process group, once started. */
  pgid: number | null;
  /** Segments stored so far. */
  segments: number;
  /** Bytes of each file that are in stored segments. */
  stored: Record<Source, number>;
}

interface Piece {
  src: Source;
  start: number;
  end: number;
  at: number;
}

/** Read `[start, end)` of a file. */
function readRange(path: string, start: number, end: number): Uint8Array {
  const buf = new Uint8Array(end - start);
  using f = Deno.openSync(path, { read: true });
  f.seekSync(start, Deno.SeekMode.Start);
  let n = 0;
  while (n < buf.length) {
    const r = f.readSync(buf.subarray(n));
    if (r === null) break;
    n += r;
  }
  return buf.subarray(0, n);
}

/** The log of one run. */
export class RunLog {
  readonly dir: string;
  readonly store: Store;
  readonly state: RunState;
  readonly paths: Record<Source, string>;
  /** Bytes read so far from each file. */
  readonly read: Record<Source, number> = { stdout: 0, stderr: 0 };
  #pieces: Piece[] = [];
  #pending = 0;
  #tailWritten = -1;
  #tailAt = 0;
  #busy: Promise<void> = Promise.resolve();
  #failed: string | null = null;
  #say: (m: string) => void;

  /** Create the run folder's output files and state. */
  constructor(
    dir: string,
    store: Store,
    experiment: string,
    say: (m: string) => void,
    attempt = 1,
  ) {
    this.dir = dir;
    this.store = store;
    this.#say = say;
    this.paths = { stdout: join(dir, "stdout"), stderr: join(dir, "stderr") };
    for (const p of Object.values(this.paths)) Deno.writeFileSync(p, new Uint8Array(0));
    this.state = {
      experiment,
      attempt,
      pid: Deno.pid,
      host: hostname(),
      pgid: null,
      segments: 0,
      stored: { stdout: 0, stderr: 0 },
    };
    this.saveState();
  }

  /** Write `state.json`. */
  saveState(): void {
    const tmp = join(this.dir, "state.json.tmp");
    Deno.writeTextFileSync(tmp, JSON.stringify(this.state));
    Deno.renameSync(tmp, join(this.dir, "state.json"));
  }

  /** Read what `src` has gained since the last call (at most `max` bytes); logs it. */
  pump(src: Source, max = 1 << 20): Uint8Array {
    const path = this.paths[src];
    let size: number;
    try {
      size = Deno.statSync(path).size;
    } catch {
      return new Uint8Array(0);
    }
    const start = this.read[src];
    if (size <= start) return new Uint8Array(0);
    const bytes = readRange(path, start, Math.min(size, start + max));
    if (!bytes.length) return bytes;
    const end = start + bytes.length;
    this.read[src] = end;
    const last = this.#pieces[this.#pieces.length - 1];
    if (last && last.src === src && last.end === start) last.end = end;
    else this.#pieces.push({ src, start, end, at: Date.now() });
    this.#pending += bytes.length;
    return bytes;
  }

  /** Output not yet in a stored segment, in bytes. */
  get pending(): number {
    return this.#pending;
  }

  /** Cut a segment or rewrite the tail when due (serialized; never throws). */
  tick(now = Date.now()): Promise<void> {
    this.#busy = this.#busy.then(() => this.#tick(now, false)).catch((e) => this.#fail(e));
    return this.#busy;
  }

  /** Store everything read so far as segments and delete the tail. False when storage failed. */
  async finish(): Promise<boolean> {
    this.#busy = this.#busy.then(() => this.#tick(Date.now(), true)).catch((e) => this.#fail(e));
    await this.#busy;
    return this.#pending === 0 && this.#failed === null;
  }

  #fail(e: unknown): void {
    const msg = e instanceof Error ? e.message : String(e);
    if (this.#failed === null) {
      this.#say(`rep: could not store the log yet (${msg}); it is kept on local disk\n`);
    }
    this.#failed = msg;
  }

  async #tick(now: number, final: boolean): Promise<void> {
    const oldest = this.#pieces[0]?.at ?? now;
    while (
      this.#pending > 0 &&
      (final || this.#pending >= SEGMENT_BYTES || now - oldest >= SEGMENT_AGE_MS)
    ) {
      await this.#segment();
    }
    if (final) {
      await this.store.delete([tailKey(this.state)]);
      this.#failed = null;
      return;
    }
    const size = this.#pending;
    if (size !== this.#tailWritten && now - this.#tailAt >= TAIL_MS) {
      await this.store.put(tailKey(this.state), this.#tailBytes());
      this.#tailWritten = size;
      this.#tailAt = now;
    }
    this.#failed = null;
  }

  /** Offset in the log of the first byte not in a stored segment. */
  get storedBytes(): number {
    return this.state.stored.stdout + this.state.stored.stderr;
  }

  #tailBytes(): Uint8Array {
    const head = new TextEncoder().encode(`${TAIL_HEADER} ${this.storedBytes}\n`);
    const parts = [head, ...this.#pieces.map((p) => readRange(this.paths[p.src], p.start, p.end))];
    return concat(parts);
  }

  async #segment(): Promise<void> {
    // At most 4 segment sizes per object; a long piece is split.
    const take: Piece[] = [];
    let n = 0;
    for (const p of this.#pieces) {
      const room = SEGMENT_BYTES * 4 - n;
      if (room <= 0) break;
      const len = Math.min(p.end - p.start, room);
      take.push({ ...p, end: p.start + len });
      n += len;
    }
    const bytes = concat(take.map((p) => readRange(this.paths[p.src], p.start, p.end)));
    const seq = this.state.segments + 1;
    await this.store.put(segmentKey(this.state, seq), bytes);
    for (const t of take) {
      const p = this.#pieces[0]!;
      if (t.end >= p.end) this.#pieces.shift();
      else p.start = t.end;
    }
    this.#pending -= n;
    this.state.segments = seq;
    for (const p of take) this.state.stored[p.src] = p.end;
    this.saveState();
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A run folder found on this machine. */
export interface RunFolder {
  dir: string;
  state: RunState;
}

/** The run folders under `root` (each `<experiment id>.run`). */
export function listRunFolders(root: string): RunFolder[] {
  const out: RunFolder[] = [];
  let ents: Deno.DirEntry[];
  try {
    ents = [...Deno.readDirSync(root)];
  } catch {
    return out;
  }
  for (const e of ents) {
    if (!e.isDirectory || !e.name.endsWith(".run")) continue;
    const dir = join(root, e.name);
    try {
      out.push({ dir, state: JSON.parse(Deno.readTextFileSync(join(dir, "state.json"))) });
    } catch {
      // not a run folder (or being created)
    }
  }
  return out;
}

/**
 * Upload the output that runs whose rep died left in their run folders: what is not in a stored
 * segment becomes new segments (stdout's rest, then stderr's). A folder whose command is still
 * running is kept, so a later call uploads what comes next; others are removed. Returns the
 * number of segments stored.
 */
export async function recoverRunLogs(root: string, store: Store): Promise<number> {
  let n = 0;
  const host = hostname();
  for (const { dir, state } of listRunFolders(root)) {
    if (state.host !== host || state.pid === Deno.pid || pidAlive(state.pid)) continue;
    const live = state.pgid !== null && groupAlive(state.pgid);
    for (const src of SOURCES) {
      const path = join(dir, src);
      let size = 0;
      try {
        size = Deno.statSync(path).size;
      } catch {
        continue;
      }
      let at = state.stored[src];
      while (at < size) {
        const end = Math.min(size, at + SEGMENT_BYTES * 4);
        const seq = state.segments + 1;
        await store.put(segmentKey(state, seq), readRange(path, at, end));
        state.segments = seq;
        state.stored[src] = end;
        at = end;
        n++;
        Deno.writeTextFileSync(join(dir, "state.json"), JSON.stringify(state));
      }
    }
    await store.delete([tailKey(state)]);
    if (!live) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return n;
}

/**
 * Read a stored log (of `attempt`, default 1): the segments in order, then the tail's part past
 * them. `from` skips that many bytes. Returns the bytes and the log's total length so far.
 */
export async function readStoredLog(
  store: Store,
  experiment: string,
  from = 0,
  attempt = 1,
): Promise<{ bytes: Uint8Array; total: number; tail: boolean }> {
  const key = { experiment, attempt };
  for (let round = 0;; round++) {
    const segs: { key: string; size: number }[] = [];
    let tail = false;
    for await (const info of store.list(attemptLogPrefix(experiment, attempt))) {
      if (info.key === tailKey(key)) tail = true;
      else if (/\/\d{6,}\.log$/.test(info.key)) segs.push({ key: info.key, size: info.size });
    }
    segs.sort((a, b) => a.key < b.key ? -1 : 1);
    const parts: Uint8Array[] = [];
    let offset = 0;
    for (const s of segs) {
      const end = offset + s.size;
      if (end > from) {
        const b = await store.getBytes(s.key);
        parts.push(b.subarray(Math.max(0, from - offset)));
      }
      offset = end;
    }
    if (tail) {
      let t: Uint8Array | null = null;
      try {
        t = await store.getBytes(tailKey(key));
      } catch {
        // deleted meanwhile: the run ended; its last segments are listed next time
        if (round < 2) continue;
      }
      if (t) {
        const nl = t.indexOf(10);
        const head = new TextDecoder().decode(t.subarray(0, nl));
        const start = Number(head.split(" ")[1]);
        if (nl < 0 || !head.startsWith(TAIL_HEADER) || !Number.isSafeInteger(start)) {
          return { bytes: concat(parts), total: offset, tail: false };
        }
        if (start > offset && round < 2) continue; // a segment is not listed yet
        const body = t.subarray(nl + 1);
        const skip = Math.max(offset, from) - start;
        if (skip < body.length) parts.push(body.subarray(Math.max(0, skip)));
        offset = Math.max(offset, start + body.length);
      }
    }
    return { bytes: concat(parts), total: offset, tail };
  }
}
