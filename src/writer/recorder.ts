/**
 * The recorder: the one code path that writes experiments and checkpoints, shared by the library's
 * `init()`/`checkpoint()` and by `rep run`. Files are chunked into packs in a local outbox and
 * uploaded in the background; each record is queued after the data it refers to.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { hostname, userInfo } from "node:os";
import { join } from "node:path";
import { newId } from "../format/ids.ts";
import {
  type AttemptRecord,
  type CheckpointRecord,
  type ExperimentRecord,
  FORMAT_VERSION,
  type GitInfo,
  type MetricValue,
  type ParamValue,
  type PrimaryMetric,
  type StatusRecord,
  type Tree,
  type TreeRef,
} from "../format/records.ts";
import { Packer } from "./packer.ts";
import { Outbox, type OutboxState } from "./outbox.ts";
import type { Repository } from "../repository.ts";
import { snapshotFiles, type SnapshotResult, type StatCache } from "./snapshot.ts";
import { LocalStore } from "../storage/local.ts";
import { Dedup, dedupFromEnv } from "./dedup.ts";
import { gcCandidates } from "../catalog/gc_listings.ts";
import { encodePackIndex } from "../format/pack_index.ts";
import { cacheDir, jsonBytes } from "../util.ts";
import { VERSION } from "../version.ts";
import {
  attemptKey,
  attemptLogKey,
  attemptStatusKey,
  checkpointKey,
  experimentKey,
  heartbeatKey,
  packIndexKey,
  packKey,
  treeKey,
} from "../format/layout.ts";

/** Seconds between heartbeats. */
export const HEARTBEAT_INTERVAL = 10;

/** What an experiment records when it starts. */
export interface StartOptions {
  /** Use this id instead of a random one. */
  id?: string;
  /** A human name, unique in the repository (the caller has claimed it). */
  name?: string | null;
  params?: Record<string, ParamValue>;
  command?: string[];
  cwd?: string;
  /** The output folder `rep run` watches, relative to `cwd`. */
  output?: string | null;
  /** Files of the code snapshot, relative to `codeRoot`; null skips the snapshot. */
  code?: { root: string; files: string[] } | null;
  git?: GitInfo | null;
  tags?: string[];
  note?: string | null;
  primaryMetric?: PrimaryMetric | null;
  provenance?: Record<string, unknown>;
  /** Called when uploads start failing (error) and when they recover (null). */
  onStorageError?: (error: Error | null) => void;
  /**
   * Reuse chunks the repository already holds, known from the local chunk cache (see
   * `src/writer/dedup.ts`); false deduplicates within this experiment only (as does
   * `REP_DEDUP=off` in the environment). @default true
   */
  dedup?: boolean;
}

/** What a resumed experiment's new attempt records when it starts. */
export interface ResumeOptions {
  /** The experiment record of the experiment resumed (read from the store). */
  record: ExperimentRecord;
  /** The attempt number, n ≥ 2, already claimed by the caller (src/catalog/claims.ts). */
  attempt: number;
  command?: string[];
  cwd?: string;
  /** The checkpoint whose files were restored for this attempt, or null. */
  resumedFrom?: CheckpointRecord | null;
  /** Trees whose chunks this attempt may reuse instead of storing them again. */
  seed?: Tree[];
  /** Called when uploads start failing (error) and when they recover (null). */
  onStorageError?: (error: Error | null) => void;
}

/** The outbox folder name of an attempt: `<id>` for attempt 1, `<id>-<n>` after. */
export function outboxName(experiment: string, attempt: number): string {
  return attempt <= 1 ? experiment : `${experiment}-${attempt}`;
}

/** A checkpoint to commit. */
export interface CommitOptions {
  tree: Tree | null;
  step?: number | null;
  metrics?: Record<string, MetricValue>;
  primaryMetric?: PrimaryMetric | null;
  torn?: string[];
  /** Why the files of this step are uncertain, in words. */
  warnings?: string[];
}

/** The user name: `$USER` (`$USERNAME`, `$LOGNAME`), else the account name (containers, cron). */
export function currentUser(): string {
  const env = Deno.env.get("USER") || Deno.env.get("USERNAME") || Deno.env.get("LOGNAME");
  if (env) return env;
  try {
    return userInfo().username;
  } catch {
    return ""; // no --allow-sys, or an account without a name
  }
}

/** Serialize a tree and return its bytes and sha256. */
export function encodeTree(tree: Tree): { bytes: Uint8Array; hash: string; ref: TreeRef } {
  const bytes = jsonBytes(tree);
  const hash = createHash("sha256").update(bytes).digest("hex");
  return {
    bytes,
    hash,
    ref: { tree: hash, files: tree.files.length, size: tree.files.reduce((n, f) => n + f.size, 0) },
  };
}

/** `first` with the files of `redo` replaced by their entries in `again` (a second read). */
function mergeSnapshots(
  first: SnapshotResult,
  again: SnapshotResult,
  redo: Set<string>,
): SnapshotResult {
  const files = [...first.tree.files.filter((f) => !redo.has(f.path)), ...again.tree.files]
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return {
    tree: { ...first.tree, files },
    torn: [...first.torn.filter((p) => !redo.has(p)), ...again.torn],
    missing: [...first.missing, ...again.missing],
    bytesRead: first.bytesRead + again.bytesRead,
  };
}

/** Records one experiment. Create with {@link Recorder.start}. */
export class Recorder {
  readonly repo: Repository;
  readonly record: ExperimentRecord;
  /** The attempt this recorder writes: 1 for a new experiment, n ≥ 2 for a resume. */
  readonly attempt: number;
  /** The attempt record (attempts n ≥ 2), else null. */
  readonly attemptRecord: AttemptRecord | null;
  readonly outbox: Outbox;
  readonly packer: Packer;
  /** Repository-wide dedup: the chunk cache and the checks of chunks reused from it. */
  readonly dedup: Dedup;
  readonly statCache: StatCache = new Map();
  #trees = new Set<string>();
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #lock: Promise<unknown> = Promise.resolve();
  #stopped = false;
  /** Checkpoints committed so far. */
  readonly checkpoints: CheckpointRecord[] = [];

  private constructor(
    repo: Repository,
    record: ExperimentRecord,
    outbox: Outbox,
    packer: Packer,
    dedup: Dedup,
    attempt: AttemptRecord | null = null,
  ) {
    this.repo = repo;
    this.record = record;
    this.attempt = attempt?.attempt ?? 1;
    this.attemptRecord = attempt;
    this.outbox = outbox;
    this.packer = packer;
    this.dedup = dedup;
  }

  static async #open(
    repo: Repository,
    id: string,
    attempt: number,
    onStorageError: ((error: Error | null) => void) | undefined,
    useCache = true,
  ): Promise<{ outbox: Outbox; packer: Packer; dedup: Dedup }> {
    const [, dedup] = await Promise.all([
      repo.init(),
      Dedup.open(repo.store, { cache: useCache && dedupFromEnv() }),
    ]);
    let outbox: Outbox;
    try {
      outbox = await Outbox.create(
        join(Recorder.outboxRoot(repo), outboxName(id, attempt)),
        repo.store,
        onStorageError ? { onStorageError } : {},
      );
    } catch (e) {
      dedup.close();
      throw e;
    }
    // While uploads fail, reused chunks cannot be checked: do not wait for storage then.
    dedup.storageFailing = () => outbox.state().error !== null;
    // Packs staged for a local store stay where they are written: direct writes (no page cache).
    const packer = new Packer(outbox.tmpDir, dedup.known, async (p) => {
      await outbox.addFile(packKey(p.id), p.path, "data");
      // The pack index goes up after its pack: writers that learn of the chunks from it can rely
      // on the pack being stored.
      const key = packIndexKey(p.id);
      const entry = { id: p.id, size: p.size, chunks: p.chunks };
      await outbox.addBytes(key, encodePackIndex([entry]), "index");
      dedup.sealed(p, key);
    }, { direct: repo.store instanceof LocalStore });
    return { outbox, packer, dedup };
  }

  /** Where outboxes of this repository live. */
  static outboxRoot(repo: Repository): string {
    const store = repo.store;
    if (store instanceof LocalStore) return join(store.root, "staging");
    const h = createHash("sha256").update(store.url).digest("hex").slice(0, 24);
    return join(cacheDir(), "outbox", h);
  }

  /** Start an experiment: snapshot the code, queue the experiment record, start the heartbeat. */
  static async start(repo: Repository, options: StartOptions = {}): Promise<Recorder> {
    const id = options.id ?? newId();
    const { outbox, packer, dedup } = await Recorder.#open(
      repo,
      id,
      1,
      options.onStorageError,
      options.dedup ?? true,
    );
    const record: ExperimentRecord = {
      format: FORMAT_VERSION,
      type: "experiment",
      id,
      created: new Date().toISOString(),
      name: options.name ?? null,
      params: options.params ?? {},
      command: options.command ?? [],
      cwd: options.cwd ?? Deno.cwd(),
      output: options.output ?? null,
      host: hostname(),
      user: currentUser(),
      platform: `${Deno.build.os}-${Deno.build.arch}`,
      rep_version: VERSION,
      git: options.git ?? null,
      code: null,
      tags: options.tags ?? [],
      note: options.note ?? null,
      primary_metric: options.primaryMetric ?? null,
      provenance: options.provenance ?? {},
    };
    const rec = new Recorder(repo, record, outbox, packer, dedup);
    try {
      // The heartbeat first, and kept fresh from now on: the experiment reads as running, also to
      // a process that would take its name or resume it, however long the code snapshot takes.
      await rec.#writeHeartbeat();
      rec.#beat();
      if (options.code) {
        const snap = await rec.#snapshotChecked(options.code.root, options.code.files, true);
        await packer.seal();
        record.code = await rec.#queueTree(snap.tree);
      }
      await outbox.addBytes(experimentKey(id), jsonBytes(record), "record");
    } catch (e) {
      await rec.#fail();
      throw e;
    }
    return rec;
  }

  /**
   * Start attempt n ≥ 2 of an existing experiment (a resume). The caller has claimed the attempt
   * and restored the files it resumes from; this writes the heartbeat (with `attempt`), queues
   * the attempt record, and from then on checkpoints carry `attempt: n`, the status goes to
   * `attempts/<n>/status.json` and logs under `attempts/<n>/logs/`. Nothing the earlier attempts
   * wrote is rewritten.
   */
  static async resume(repo: Repository, options: ResumeOptions): Promise<Recorder> {
    if (!Number.isSafeInteger(options.attempt) || options.attempt < 2) {
      throw new RangeError(`A resume is attempt 2 or later, not ${options.attempt}`);
    }
    const id = options.record.id;
    const { outbox, packer, dedup } = await Recorder.#open(
      repo,
      id,
      options.attempt,
      options.onStorageError,
    );
    const from = options.resumedFrom ?? null;
    const attempt: AttemptRecord = {
      format: FORMAT_VERSION,
      type: "attempt",
      experiment: id,
      attempt: options.attempt,
      created: new Date().toISOString(),
      host: hostname(),
      user: currentUser(),
      pid: Deno.pid,
      command: options.command ?? options.record.command,
      cwd: options.cwd ?? Deno.cwd(),
      resumed_from: from?.id ?? null,
      resume_step: from?.step ?? null,
    };
    const rec = new Recorder(repo, options.record, outbox, packer, dedup, attempt);
    try {
      await rec.#writeHeartbeat();
      rec.#beat();
      rec.#seedFrom(options.seed ?? []);
      await outbox.addBytes(
        attemptKey(id, options.attempt),
        jsonBytes(attempt),
        "record",
      );
    } catch (e) {
      await rec.#fail();
      throw e;
    }
    return rec;
  }

  #beat(): void {
    this.#heartbeat = setInterval(() => {
      this.#writeHeartbeat().catch(() => {});
    }, HEARTBEAT_INTERVAL * 1000);
    Deno.unrefTimer(this.#heartbeat as unknown as number);
  }

  /** Undo a start that failed before anything was queued for readers. */
  async #fail(): Promise<void> {
    clearInterval(this.#heartbeat);
    this.#stopped = true;
    this.outbox.stop();
    await this.packer.abort();
    await this.outbox.remove();
    await this.repo.store.delete([heartbeatKey(this.record.id)]).catch(() => {});
    this.dedup.close();
  }

  /**
   * Let the packer reuse the chunks of `trees`: as chunks of other writers, so they go through the
   * same check before a record refers to them (never data `rep gc` has listed or deleted).
   */
  #seedFrom(trees: Tree[]): void {
    for (const tree of trees) {
      for (const f of tree.files) {
        for (const [pack, off, len, hash] of f.chunks) {
          this.dedup.known.addForeign(hash, [pack, off, len]);
        }
      }
    }
  }

  /** The key of log segment `seq` of this attempt. */
  logKey(seq: number): string {
    return attemptLogKey(this.record.id, this.attempt, seq);
  }

  /**
   * Snapshot `files`, then check the packs of other writers whose chunks it reused (see
   * {@link Dedup.check}); files that took chunks from a pack that failed are read again and
   * stored without it. After a few rounds (a repository where gc keeps deleting what the cache
   * offers), the cache is left out for the rest of this experiment. `atStart` (the code snapshot,
   * before the command runs) waits for every check.
   */
  async #snapshotChecked(
    root: string,
    files: string[],
    atStart = false,
  ): Promise<SnapshotResult> {
    // The chunk cache's refresh (started in the background at open) is given its moment here,
    // not at start: a run that never snapshots does not wait for it.
    await this.dedup.refreshWait();
    let result = await snapshotFiles(root, files, this.packer, this.statCache);
    for (let round = 0;; round++) {
      // At start nothing runs yet: wait for every check. During training, small reuse does not
      // wait (see Dedup.check).
      const bad = await this.dedup.check(atStart ? undefined : result.tree);
      if (!bad.size) return result;
      if (round >= 3) this.dedup.known.useCache(null);
      const redo = result.tree.files.filter((f) => f.chunks.some((c) => bad.has(c[0])))
        .map((f) => f.path);
      if (!redo.length) continue;
      for (const rel of redo) this.statCache.delete(join(root, rel));
      const again = await snapshotFiles(root, redo, this.packer, this.statCache);
      result = mergeSnapshots(result, again, new Set(redo));
    }
  }

  async #queueTree(tree: Tree): Promise<TreeRef> {
    const { bytes, hash, ref } = encodeTree(tree);
    if (!this.#trees.has(hash)) {
      // Marked only once queued: a tree that failed to be written (disk full) is written again.
      await this.outbox.addBytes(treeKey(hash), bytes, "data");
      this.#trees.add(hash);
    }
    return ref;
  }

  async #writeHeartbeat(): Promise<void> {
    if (this.#stopped) return;
    const hb = {
      pid: Deno.pid,
      host: this.attemptRecord?.host ?? this.record.host,
      updated: new Date().toISOString(),
      interval: HEARTBEAT_INTERVAL,
      attempt: this.attempt,
      pending: this.outbox.state(),
    };
    await this.repo.store.put(heartbeatKey(this.record.id), jsonBytes(hb));
  }

  /** Serialize snapshot/commit work: one at a time. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  /** Store the current content of `files` (relative to `root`); returns their tree. */
  snapshot(root: string, files: string[]): Promise<SnapshotResult> {
    return this.#serial(() => this.#snapshotChecked(root, files));
  }

  /**
   * The pack of `entry` that failed to be written (disk full), or null: an entry from an earlier
   * {@link snapshot} must not be committed when its data was lost with a pack.
   */
  lostPack(entry: { chunks: [string, ...unknown[]][] }): string | null {
    for (const [pack] of entry.chunks) if (this.packer.failed.has(pack)) return pack;
    return null;
  }

  /** Queue a checkpoint record (after sealing and queueing its data). */
  commit(options: CommitOptions): Promise<CheckpointRecord> {
    return this.#serial(async () => {
      await this.packer.seal();
      const files = options.tree ? await this.#queueTree(options.tree) : null;
      const record: CheckpointRecord = {
        format: FORMAT_VERSION,
        type: "checkpoint",
        id: newId(),
        experiment: this.record.id,
        attempt: this.attempt,
        created: new Date().toISOString(),
        step: options.step ?? null,
        metrics: options.metrics ?? {},
        primary_metric: options.primaryMetric ?? this.record.primary_metric,
        files,
        torn: options.torn ?? [],
        warnings: options.warnings ?? [],
      };
      await this.outbox.addBytes(
        checkpointKey(this.record.id, record.id),
        jsonBytes(record),
        "record",
      );
      this.checkpoints.push(record);
      return record;
    });
  }

  /**
   * Resolve once checkpoint `id` of this recorder is stored, with every record queued before it.
   * Rejects when uploads stop first (the run ended leaving them for `rep push`).
   */
  stored(id: string): Promise<void> {
    return this.outbox.whenStored(checkpointKey(this.record.id, id));
  }

  /**
   * Stop reusing this writer's own chunks in packs that `rep gc` has listed for deletion since
   * they were written (a long run whose earlier checkpoints were removed must not point new ones
   * at them; chunks of other writers' packs are checked by {@link Dedup} before each use).
   */
  async forgetListed(): Promise<number> {
    const listed = await gcCandidates(this.repo.store);
    let n = 0;
    if (!listed.size) return n;
    for (const [hash, [pack]] of this.packer.known) {
      if (listed.has(packKey(pack))) {
        this.packer.known.delete(hash);
        n++;
      }
    }
    return n;
  }

  /** Upload progress. */
  pending(): OutboxState {
    return this.outbox.state();
  }

  /**
   * Finish: queue the status record and wait for uploads (unless `wait` is false, in which case
   * the outbox stays on disk for a later `rep` command to finish).
   */
  async stop(
    status: StatusRecord["status"],
    options: { exitCode?: number | null; signal?: string | null; wait?: boolean } = {},
  ): Promise<void> {
    await this.#serial(async () => {
      await this.packer.seal();
      const rec: StatusRecord = {
        format: FORMAT_VERSION,
        type: "status",
        status,
        exit_code: options.exitCode ?? null,
        signal: options.signal ?? null,
        finished: new Date().toISOString(),
      };
      await this.outbox.addBytes(
        attemptStatusKey(this.record.id, this.attempt),
        jsonBytes(rec),
        "record",
      );
    });
    clearInterval(this.#heartbeat);
    if (options.wait === false) {
      this.outbox.stop();
      this.dedup.close();
      return;
    }
    await this.outbox.drain();
    this.#stopped = true;
    this.dedup.publish();
    this.dedup.close();
    await this.repo.store.delete([heartbeatKey(this.record.id)]).catch(() => {});
    await this.outbox.remove();
  }

  /** Stop the heartbeat and uploads without writing a status (the experiment will read as crashed). */
  abandon(): void {
    clearInterval(this.#heartbeat);
    this.#stopped = true;
    this.outbox.stop();
    this.dedup.close();
  }
}
