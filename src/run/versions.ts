/**
 * File versions of the output folder. Every version the command completes (closes after writing,
 * or moves into place) is copied, while the command is held (frozen) for the moment of the copy,
 * into a staging folder: an in-kernel copy (`copy_file_range`, a reflink where the file system has
 * them) is far cheaper than hashing while frozen. The copies are then chunked into the outbox in
 * the background and deleted. Staging space is bounded: when it is full, the command stays held
 * until chunking has made room (backpressure), so no version is dropped and disk use never grows
 * without bound.
 *
 * A version that was overwritten before rep could copy it is _lost_; one that was being written
 * when the command was interrupted (or closed just before it failed) is _untrusted_. Neither is
 * ever stored as a complete version: a checkpoint that needs one lists its path as torn and says
 * why in its warnings.
 *
 * Nothing here spawns the command: {@link Holder} and {@link Chunk} are what it needs from the
 * rest, so tests drive it with plain files.
 *
 * @module
 */
import { join } from "node:path";
import type { FileEntry } from "../format/records.ts";
import type { Capture, WatchEvent } from "./watch.ts";

/** Holds the command still while a copy is made. */
export interface Holder {
  /** Stop the command; false when it cannot be (gone, or not supported). */
  freeze(): Promise<boolean>;
  thaw(): void;
  /** Wait until every event before the call has been seen (false: cannot tell). */
  sync(): Promise<boolean>;
}

/** Chunk a staged copy into the repository; returns its tree entry (path as given). */
export type Chunk = (dir: string, name: string) => Promise<Omit<FileEntry, "path">>;

/** One version of one file. */
export interface Version {
  /** Path relative to the output folder. */
  path: string;
  /** Event sequence at which it was completed (or removed). */
  seq: number;
  time: number;
  /** When its writing started (sequence and time), when seen. */
  startSeq: number;
  startTime: number;
  /** `removed`: the file is gone from this point on. */
  status: "pending" | "staged" | "stored" | "lost" | "untrusted" | "dropped" | "removed";
  /** Why it is lost or untrusted, in words. */
  reason?: string;
  /** Found in a new folder rather than seen being closed. */
  discovered?: boolean;
  size?: number;
  entry?: Omit<FileEntry, "path">;
  /** Resolves once the version is stored, lost or dropped. */
  done: Promise<void>;
  resolve: () => void;
}

interface FileState {
  versions: Version[];
  /** Sequence of the newest event on this path. */
  lastEvent: number;
  /** Writing in progress since (sequence, time), or null. */
  writing: { seq: number; time: number } | null;
}

/** Options of {@link VersionStore}. */
export interface VersionStoreOptions {
  output: string;
  staging: string;
  holder: Holder;
  chunk: Chunk;
  /** Most bytes of copies waiting to be chunked (at least one file is always allowed). */
  stagingLimit: number;
  /** Whether a line may sit between two events (then the older version may be needed). */
  lineBetween: (from: number, to: number) => boolean;
  /** Called when a copy the capture thread made (an event's `copy`) is deleted, with its size. */
  freed?: (bytes: number) => void;
  debug?: (m: string) => void;
}

/** A version with its staged copy: the file's name in the staging folder, and who made it. */
type StagedVersion = Version & { staged?: string; captured?: boolean };

function newVersion(
  path: string,
  seq: number,
  time: number,
  start: { seq: number; time: number },
  status: Version["status"],
): Version {
  let resolve = () => {};
  const done = new Promise<void>((r) => resolve = r);
  const v: Version = {
    path,
    seq,
    time,
    startSeq: start.seq,
    startTime: start.time,
    status,
    done,
    resolve,
  };
  if (status === "removed") resolve();
  return v;
}

/** The versions of every file the command wrote during this run. */
export class VersionStore {
  readonly o: VersionStoreOptions;
  readonly files = new Map<string, FileState>();
  #pending: Version[] = [];
  #capturing: Promise<void> | null = null;
  #chunkQueue: Version[] = [];
  #chunking: Promise<void> | null = null;
  #staged = 0;
  #roomWaiters: (() => void)[] = [];
  #n = 0;
  /** Time of the newest completed version (ms), 0 when none. */
  lastCompleted = 0;
  /** Versions whose writing started at or before this event are untrusted (interrupted). */
  interrupt: { seq: number; why: string } | null = null;
  /** Pauses spent waiting for staging room, ms. */
  roomWaits: number[] = [];

  constructor(o: VersionStoreOptions) {
    this.o = o;
  }

  #state(path: string): FileState {
    let st = this.files.get(path);
    if (!st) {
      st = { versions: [], lastEvent: 0, writing: null };
      this.files.set(path, st);
    }
    return st;
  }

  /** Bytes of copies waiting to be chunked. */
  get stagedBytes(): number {
    return this.#staged;
  }

  /** Note one event (called in order, synchronously). */
  note(ev: WatchEvent): void {
    const c = ev.change;
    switch (c.kind) {
      case "write": {
        const st = this.#state(c.path);
        st.lastEvent = ev.seq;
        st.writing ??= { seq: ev.seq, time: ev.time };
        break;
      }
      case "complete":
        this.#complete(c.path, ev, false);
        break;
      case "remove":
        for (const [path, st] of this.files) {
          if (path === c.path || path.startsWith(c.path + "/")) {
            st.lastEvent = ev.seq;
            st.writing = null;
            const last = st.versions[st.versions.length - 1];
            if (last && last.status !== "removed") {
              this.#supersede(last, ev.seq);
              st.versions.push(newVersion(path, ev.seq, ev.time, ev, "removed"));
            }
          }
        }
        break;
      case "dir": {
        // Files in a folder moved in are complete; those found in a new folder were written
        // before its watch existed (their later writes, if any, are seen).
        let files: string[] = [];
        try {
          files = walkSync(join(this.o.output, c.path));
        } catch {
          // gone
        }
        for (const f of files) {
          const path = `${c.path}/${f}`;
          if (!c.moved && this.files.has(path)) continue;
          this.#complete(path, ev, !c.moved);
        }
        break;
      }
    }
  }

  #complete(path: string, ev: WatchEvent, discovered: boolean): void {
    const st = this.#state(path);
    st.lastEvent = ev.seq;
    const start = st.writing ?? { seq: ev.seq, time: ev.time };
    st.writing = null;
    const v = newVersion(path, ev.seq, ev.time, start, "pending");
    if (discovered) v.discovered = true;
    const prev = st.versions[st.versions.length - 1];
    if (prev) this.#supersede(prev, ev.seq);
    st.versions.push(v);
    this.lastCompleted = ev.time;
    if (ev.copy) return this.#adopt(v, ev.copy);
    if (this.interrupt && start.seq <= this.interrupt.seq) {
      this.#untrust(v, this.interrupt.why);
      v.resolve();
      return;
    }
    this.#pending.push(v);
    this.#capturing ??= this.#captureLoop().finally(() => this.#capturing = null);
  }

  /** Take the copy the capture thread made of `v` (or the reason it could not). */
  #adopt(v: StagedVersion, copy: Capture): void {
    this.o.debug?.(`copied ${v.path}@${v.seq}: ${"lost" in copy ? copy.lost : copy.staged}`);
    if ("lost" in copy) return this.#lose(v, copy.lost);
    v.staged = copy.staged;
    v.captured = true;
    v.size = copy.size;
    v.status = "staged";
    this.#staged += copy.size;
    if (this.interrupt && v.startSeq <= this.interrupt.seq) {
      this.#lose(v, this.interrupt.why); // frees the copy
      v.status = "untrusted";
      return;
    }
    this.#chunkQueue.push(v);
    this.#chunking ??= this.#chunkLoop().finally(() => this.#chunking = null);
  }

  /** A copy is deleted: count its bytes free (and tell the capture thread when it made it). */
  #unstage(v: StagedVersion): void {
    this.#staged -= v.size ?? 0;
    if (v.captured) this.o.freed?.(v.size ?? 0);
    for (const w of this.#roomWaiters.splice(0)) w();
  }

  /** A newer version exists: the older one is not needed when no line can sit between them. */
  #supersede(prev: Version, seq: number): void {
    if (prev.status === "removed" || this.o.lineBetween(prev.seq, seq)) return;
    if (prev.status === "pending" || prev.status === "staged") {
      prev.status = "dropped";
      if (!this.#chunkQueue.includes(prev)) prev.resolve();
    }
  }

  /**
   * Copy pending versions, holding the command meanwhile. The copy starts as soon as the stop
   * signal is sent, while the command's threads are still stopping: a write that overlaps the
   * copy ends before its thread stops, so once every thread is stopped, a barrier shows it, and
   * that copy is not used. Exact or left out, and the pause is the copy's time, not copy + stop.
   */
  async #captureLoop(): Promise<void> {
    while (this.#pending.length) {
      const batch = this.#pending.splice(0);
      const t0 = performance.now();
      const freezing = this.o.holder.freeze(); // the stop signal is sent now
      let frozen = false;
      try {
        for (const v of batch) {
          if (v.status !== "pending") {
            v.resolve();
            continue;
          }
          if (this.files.get(v.path)!.lastEvent > v.seq) {
            this.#lose(v, "it was rewritten before rep could copy it");
            continue;
          }
          await this.#copy(v);
        }
        frozen = await freezing;
        const t1 = performance.now();
        const synced = await this.o.holder.sync();
        this.o.debug?.(
          `held: copy and stop ${(t1 - t0).toFixed(1)} ms, barrier ${
            (performance.now() - t1).toFixed(1)
          } ms`,
        );
        for (const v of batch) {
          if (v.status !== "staged") continue;
          if (!synced) this.#lose(v, "rep could not confirm that it was unchanged while copied");
          else if (this.files.get(v.path)!.lastEvent > v.seq) {
            this.#lose(v, "it was rewritten before rep could copy it");
          }
        }
      } finally {
        if (!frozen) frozen = await freezing.catch(() => false);
        if (frozen) this.o.holder.thaw();
      }
      for (const v of batch) if (v.status === "staged") this.#chunkQueue.push(v);
      this.#chunking ??= this.#chunkLoop().finally(() => this.#chunking = null);
    }
  }

  async #copy(v: Version): Promise<void> {
    const abs = join(this.o.output, v.path);
    const found = versionSize(abs);
    if ("lost" in found) return this.#lose(v, found.lost);
    const { size } = found;
    // Room: wait (still holding the command) until chunking has made space.
    if (this.#staged > 0 && this.#staged + size > this.o.stagingLimit) {
      const t0 = performance.now();
      while (this.#staged > 0 && this.#staged + size > this.o.stagingLimit) {
        await new Promise<void>((r) => this.#roomWaiters.push(r));
      }
      this.roomWaits.push(performance.now() - t0);
    }
    const name = `${++this.#n}`;
    const failed = copyVersion(abs, join(this.o.staging, name));
    if (failed) return this.#lose(v, failed);
    v.size = size;
    v.status = "staged";
    this.#staged += size;
    (v as StagedVersion).staged = name;
  }

  #lose(v: StagedVersion, reason: string): void {
    if (v.status === "staged" && v.staged) {
      try {
        Deno.removeSync(join(this.o.staging, v.staged));
      } catch {
        // gone
      }
      this.#unstage(v);
    }
    v.status = "lost";
    v.reason = reason;
    v.resolve();
    this.o.debug?.(`lost ${v.path}@${v.seq}: ${reason}`);
  }

  async #chunkLoop(): Promise<void> {
    while (this.#chunkQueue.length) {
      const v: StagedVersion = this.#chunkQueue.shift()!;
      try {
        if (v.status === "staged") {
          v.entry = await this.o.chunk(this.o.staging, v.staged!);
          v.status = "stored";
        }
      } catch (e) {
        v.status = "lost";
        v.reason = `rep could not store it (${(e as Error).message})`;
      } finally {
        try {
          Deno.removeSync(join(this.o.staging, v.staged!));
        } catch {
          // gone
        }
        this.#unstage(v);
        v.resolve();
      }
    }
  }

  /**
   * Mark versions completed after `seq` whose writing had started by then as untrusted (the
   * command was interrupted while writing them).
   */
  interruptedAt(seq: number, why: string): void {
    this.interrupt = { seq, why };
    for (const st of this.files.values()) {
      for (const v of st.versions) {
        if (v.seq > seq && v.startSeq <= seq && v.status !== "removed") this.#untrust(v, why);
      }
    }
  }

  /**
   * Mark versions completed at or after `time` (ms), and after event `afterSeq` (the last metrics
   * line: a version the script went on to log after was complete), as untrusted.
   */
  untrustSince(time: number, afterSeq: number, why: string): void {
    for (const st of this.files.values()) {
      for (const v of st.versions) {
        if (v.time >= time && v.seq > afterSeq && v.status !== "removed") this.#untrust(v, why);
      }
    }
  }

  #untrust(v: Version, why: string): void {
    if (v.status === "lost" || v.status === "dropped") return;
    v.status = "untrusted";
    v.reason = why;
  }

  /**
   * The state at a cut: for each file, its newest version completed before `seq` (removed files
   * left out), and files being written at that point that had no version yet.
   */
  at(seq: number): { versions: Version[]; writing: string[] } {
    const versions: Version[] = [];
    const writing: string[] = [];
    for (const [path, st] of this.files) {
      let v: Version | undefined;
      for (let i = st.versions.length - 1; i >= 0; i--) {
        if (st.versions[i]!.seq < seq) {
          v = st.versions[i];
          break;
        }
      }
      if (v && v.status !== "removed") versions.push(v);
      else if (!v && st.writing && st.writing.seq < seq) writing.push(path);
    }
    return { versions: versions.sort((a, b) => a.path < b.path ? -1 : 1), writing };
  }

  /** Wait until every version noted so far is copied (and its chunking queued). */
  async settled(): Promise<void> {
    while (this.#capturing) await this.#capturing;
  }

  /** Wait until all chunking is done. */
  async drained(): Promise<void> {
    await this.settled();
    while (this.#chunking) await this.#chunking;
  }
}

/** The size of the file version at `abs`, or why it cannot be copied. */
export function versionSize(abs: string): { size: number } | { lost: string } {
  try {
    const st = Deno.statSync(abs);
    return st.isFile ? { size: st.size } : { lost: "it is not a regular file" };
  } catch {
    return { lost: "it was removed before rep could copy it" };
  }
}

/**
 * Copy the file version at `abs` to `to` (in the kernel: `copy_file_range`, a reflink where the
 * file system has them). Null when copied; else why not, with nothing left at `to`.
 */
export function copyVersion(abs: string, to: string): string | null {
  try {
    Deno.copyFileSync(abs, to);
    return null;
  } catch (e) {
    try {
      Deno.removeSync(to);
    } catch {
      // not made
    }
    return e instanceof Deno.errors.NotFound
      ? "it was removed before rep could copy it"
      : `rep could not copy it (${(e as Error).message})`;
  }
}

function walkSync(dir: string): string[] {
  const out: string[] = [];
  const rec = (rel: string) => {
    for (const e of Deno.readDirSync(rel ? join(dir, rel) : dir)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) rec(r);
      else if (e.isFile) out.push(r);
    }
  };
  rec("");
  return out;
}
